//! The agent page's share of the audit database: its sessions, its login and identification
//! counters, and what agents and supervisors did — kept where the order records are, so that a
//! restart logs nobody out and several instances on one PostgreSQL behave as one.
//!
//! With records off (`audit_database = "off"`, [`Options::database`](crate::Options) `None`)
//! the page keeps today's in-memory sessions and counters and records no actions: there is
//! nowhere to keep them, and inventing a file of our own would be a second, unannounced
//! database. Each store is therefore an enum of the in-memory and the database kind, chosen
//! once when the [`App`](crate::App) is made.
//!
//! Every query is written once, for SQLite and PostgreSQL alike, through sqlx's `Any` driver
//! with `$1` placeholders (see `bankid::audit::db`).

/// What agents and supervisors did (`audit_agent_events`).
pub mod events;
/// Login and identification counters shared by every instance (`agent_rate_limits`).
pub(crate) mod limits;
/// Sessions shared by every instance (`agent_sessions`).
pub(crate) mod sessions;

use std::sync::Arc;
use std::time::Duration;

use bankid::audit::Database;
use sqlx::AnyPool;

use crate::error::StartupError;

/// At most this many connections from one agent-page instance.
const MAX_CONNECTIONS: u32 = 8;

/// How often a migration that failed (another process migrating at once) is tried again.
const MIGRATION_RETRIES: u32 = 5;

/// How long a request waits for a connection before it fails (503) instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent page's connection to the audit database.
#[derive(Clone)]
pub struct AgentDb {
    pool: AnyPool,
    database: Arc<Database>,
    host: Arc<str>,
}

impl std::fmt::Debug for AgentDb {
    /// The database as its redacting `Display` shows it: never a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgentDb({})", self.database)
    }
}

impl AgentDb {
    /// Connects to `database` (creating an SQLite file and bringing the schema up to date, as
    /// every writer of it does). Errors name the database, never its password.
    ///
    /// Another process (an IVR tool, the engine's writer) may be migrating a new SQLite file at
    /// the same moment, and SQLite has no lock for that: a failed migration is tried again a
    /// few times, by when the other one has finished (PostgreSQL's migrations take a lock).
    pub async fn connect(database: &Database) -> Result<AgentDb, StartupError> {
        let mut attempt = 0;
        let pool = loop {
            match bankid::audit::db::connect(database, MAX_CONNECTIONS, CONNECT_TIMEOUT).await {
                Ok(pool) => break pool,
                Err(e) if attempt < MIGRATION_RETRIES && e.0.contains("migration") => {
                    attempt += 1;
                    log::debug!("{e}; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => return Err(StartupError::Database(e.to_string())),
            }
        };
        Ok(AgentDb {
            pool,
            database: Arc::new(database.clone()),
            host: hostname().into(),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database (its `Display` hides any password).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// This machine's name, written into every event.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Closes the pool (waits for connections in use to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The kernel's host name; `unknown` where there is no `/proc` (never a reason not to serve).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .unwrap_or_else(|| "unknown".into())
}

/// The database failed a request. The message is for the log (sqlx's, which names no bound
/// value); the client only learns that the store is unavailable.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

/// Unix milliseconds as the schema keeps times.
pub(crate) fn now_ms() -> i64 {
    crate::now_ms() as i64
}

/// 128 random bits in hex: the id of an event, made where it is born.
pub(crate) fn new_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Milliseconds of a duration, as the schema keeps them (saturating, never negative).
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
