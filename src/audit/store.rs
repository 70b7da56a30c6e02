//! The writer's connection to the audit database, and every statement it runs: the insert of
//! a batch in one transaction (`ON CONFLICT (id) DO NOTHING`, so replaying a batch the
//! database already has adds nothing), the retention purge, and the read-only probe `doctor`
//! uses. One connection, not a pool: the writer is one task that writes batch after batch.
//!
//! SQLite runs each connection on a thread of sqlx's own, which sqlx never joins. The library
//! must have no thread left when `bankid_shutdown` returns (a host may `dlclose` it), so the
//! store notes which of those threads its connection started and, once the connection is
//! closed or dropped — also when a connect is abandoned halfway — waits until they are gone.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::{AnyConnection, Connection};

use super::db::{self, Database, DatabaseError, MIGRATOR};
use super::record::{Row, UnixMs};

/// How sqlx's SQLite threads are named, as `/proc` shows it (the kernel keeps 15 bytes of
/// `sqlx-sqlite-worker-N`).
const SQLITE_THREAD: &str = "sqlx-sqlite-wor";
/// How long a closed SQLite connection's thread may take to end.
const THREAD_END: Duration = Duration::from_secs(2);

/// One connection to the audit database, schema up to date.
pub struct Store {
    /// Declared first, so dropped before `threads` waits for its thread.
    conn: AnyConnection,
    /// The SQLite threads this connection started.
    threads: Threads,
    database: Database,
}

/// SQLite threads (Linux thread ids) a connection started: dropping this waits (at most
/// [`THREAD_END`]) until they have ended, which they do once their connection is dropped.
struct Threads(Vec<u32>);

impl Drop for Threads {
    fn drop(&mut self) {
        wait_for_threads(&self.0);
    }
}

/// A connect under way: if it is abandoned (its future dropped, a timeout), the SQLite
/// threads that appeared since it began are waited for when this is dropped.
struct Connecting {
    before: Option<HashSet<u32>>,
}

impl Connecting {
    fn begin(sqlite: bool) -> Connecting {
        Connecting {
            before: sqlite.then(sqlite_threads),
        }
    }

    /// The threads the connection started; the guard is then disarmed.
    fn threads(mut self) -> Threads {
        Threads(match self.before.take() {
            Some(before) => sqlite_threads().difference(&before).copied().collect(),
            None => Vec::new(),
        })
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(before) = self.before.take() {
            let new: Vec<u32> = sqlite_threads().difference(&before).copied().collect();
            wait_for_threads(&new);
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.database)
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Order records (with their evidence).
    pub orders: u64,
    /// Evidence rows.
    pub evidence: u64,
    /// Agent-page events.
    pub agent_events: u64,
    /// Expired agent-page sessions.
    pub sessions: u64,
}

/// The SQLite threads of the process now.
fn sqlite_threads() -> HashSet<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashSet::new();
    };
    tasks
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.trim_end().starts_with(SQLITE_THREAD).then_some(tid)
        })
        .collect()
}

/// Connections are made one at a time in the process, so the SQLite threads that appear
/// during one are that connection's.
static CONNECTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const INSERT_ORDER: &str = "INSERT INTO audit_orders (id, started_at, finished_at, duration_ms, \
    channel, agent, call_id, caller_id, host, mode, call_initiator, state, hint_code, \
    error_code, order_ref, pnr_masked, pnr_pseudonym, pseudonym_key_id) VALUES ($1, $2, $3, \
    $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
    ON CONFLICT (id) DO NOTHING";
const INSERT_EVIDENCE: &str = "INSERT INTO audit_evidence (order_id, completion_data) \
    VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING";

impl Store {
    /// Connects (creating an SQLite file and its directory when missing) and brings the schema
    /// up to date, within `timeout`.
    pub async fn open(database: &Database, timeout: Duration) -> Result<Store, DatabaseError> {
        db::prepare(database)?;
        let options = database.connect_options()?;
        let failed = |e: String| DatabaseError(format!("audit database {database}: {e}"));
        let sqlite = matches!(database, Database::Sqlite(_));
        let mut store = {
            let _one_at_a_time = if sqlite {
                Some(CONNECTING.lock().await)
            } else {
                None
            };
            let connecting = Connecting::begin(sqlite);
            match tokio::time::timeout(timeout, AnyConnection::connect_with(&options)).await {
                Ok(Ok(conn)) => Store {
                    conn,
                    threads: connecting.threads(),
                    database: database.clone(),
                },
                // `connecting` waits for a thread the failed connect left.
                Ok(Err(e)) => return Err(failed(e.to_string())),
                Err(_) => return Err(failed(format!("no connection within {timeout:?}"))),
            }
        };
        let set_up = async {
            if sqlite {
                db::set_up_sqlite(&mut store.conn)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            }
            MIGRATOR
                .run(&mut store.conn)
                .await
                .map_err(|e| failed(format!("migration: {e}")))
        };
        match tokio::time::timeout(timeout, set_up).await {
            Ok(Ok(())) => {
                db::restrict_sqlite_side_files(database);
                Ok(store)
            }
            Ok(Err(e)) => {
                store.close().await;
                Err(e)
            }
            Err(_) => {
                store.close().await;
                Err(failed(format!("no schema within {timeout:?}")))
            }
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Inserts `rows` (and their evidence) in one transaction; rows whose id is there already
    /// are left as they are. Returns how many records were new.
    pub async fn insert(&mut self, rows: &[Row]) -> Result<u64, sqlx::Error> {
        let mut tx = self.conn.begin().await?;
        let mut new = 0;
        for r in rows {
            new += sqlx::query(INSERT_ORDER)
                .bind(&r.id)
                .bind(r.started_at)
                .bind(r.finished_at)
                .bind(r.duration_ms)
                .bind(&r.channel)
                .bind(&r.agent)
                .bind(&r.call_id)
                .bind(&r.caller_id)
                .bind(&r.host)
                .bind(&r.mode)
                .bind(&r.call_initiator)
                .bind(&r.state)
                .bind(&r.hint_code)
                .bind(&r.error_code)
                .bind(&r.order_ref)
                .bind(&r.pnr_masked)
                .bind(&r.pnr_pseudonym)
                .bind(&r.pseudonym_key_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let Some(evidence) = &r.completion_data {
                sqlx::query(INSERT_EVIDENCE)
                    .bind(&r.id)
                    .bind(evidence)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Removes order records (and their evidence) that finished before `before`, agent-page
    /// events before it, and agent-page sessions that expired before `now`, in one transaction.
    pub async fn purge(&mut self, before: UnixMs, now: UnixMs) -> Result<Purged, sqlx::Error> {
        let mut tx = self.conn.begin().await?;
        let evidence = sqlx::query(
            "DELETE FROM audit_evidence WHERE order_id IN \
             (SELECT id FROM audit_orders WHERE finished_at < $1)",
        )
        .bind(before.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let orders = sqlx::query("DELETE FROM audit_orders WHERE finished_at < $1")
            .bind(before.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let agent_events = sqlx::query("DELETE FROM audit_agent_events WHERE at < $1")
            .bind(before.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let sessions = sqlx::query("DELETE FROM agent_sessions WHERE expires_at < $1")
            .bind(now.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Purged {
            orders,
            evidence,
            agent_events,
            sessions,
        })
    }

    /// Closes the connection and, for SQLite, waits (at most 2 s) until its thread has ended.
    pub async fn close(self) {
        let Store {
            conn,
            threads,
            database,
        } = self;
        if let Err(e) = conn.close().await {
            log::debug!("audit database {database}: close: {e}");
        }
        drop(threads);
    }
}

/// Waits until none of `threads` runs any more (at most [`THREAD_END`]). Blocking, briefly: a
/// closed connection's thread ends on its own, needing nothing from the caller's runtime.
fn wait_for_threads(threads: &[u32]) {
    if threads.is_empty() {
        return;
    }
    let until = std::time::Instant::now() + THREAD_END;
    loop {
        let running = sqlite_threads();
        if threads.iter().all(|t| !running.contains(t)) {
            return;
        }
        if std::time::Instant::now() >= until {
            log::warn!("audit database: an SQLite thread did not end within {THREAD_END:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What `doctor` found about a database, without creating or changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Reachable; `applied` of the `known` migrations of this version are in.
    Reachable {
        /// Migrations applied.
        applied: usize,
        /// Migrations this version has.
        known: usize,
    },
    /// An SQLite file that does not exist yet: the first record creates it.
    NotCreated,
}

/// Connects to `database` read-only as far as possible (an SQLite file is opened but never
/// created; no migration runs) and counts the applied migrations.
pub async fn probe(database: &Database, timeout: Duration) -> Result<Probe, DatabaseError> {
    let failed = |e: String| DatabaseError(format!("audit database {database}: {e}"));
    let url = match database {
        Database::Sqlite(path) => {
            if !path.exists() {
                return Ok(Probe::NotCreated);
            }
            format!("sqlite://{}?mode=ro", path.display())
        }
        Database::Postgres(url) => url.clone(),
    };
    db::prepare_drivers();
    let options: sqlx::any::AnyConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| failed(e.to_string()))?;
    let sqlite = matches!(database, Database::Sqlite(_));
    let _one_at_a_time = if sqlite {
        Some(CONNECTING.lock().await)
    } else {
        None
    };
    let connecting = Connecting::begin(sqlite);
    let work = async {
        let mut conn = AnyConnection::connect_with(&options).await?;
        let threads = connecting.threads();
        let applied: Result<i64, sqlx::Error> = async {
            // No table yet: nothing applied.
            match sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await
            {
                Ok(n) => Ok(n),
                Err(sqlx::Error::Database(_)) => Ok(0),
                Err(e) => Err(e),
            }
        }
        .await;
        let _ = conn.close().await;
        drop(threads);
        applied
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(applied)) => Ok(Probe::Reachable {
            applied: usize::try_from(applied).unwrap_or(0),
            known: MIGRATOR.iter().count(),
        }),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
    }
}
