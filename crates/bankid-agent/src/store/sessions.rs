//! Where sessions live: in this process (records off) or in `agent_sessions`, shared by every
//! instance on the database — log in on one, use the cookie on another, log out anywhere.
//!
//! Both kinds behave alike: a session is the agent's name, role and CSRF token under the
//! SHA-256 of the cookie's secret (the table alone opens no session), and it ends after
//! `idle` without a request, at logout, or when the accounts file drops or changes the agent:
//! at the reload, and — through the fingerprint of the account entry the session was made
//! from, checked at every request — after a restart or on an instance that has not reloaded.
//!
//! In the database a session's expiry moves at most every [`REFRESH_EVERY`] (not at every
//! poll of a pending order, twice a second per agent): it ends between `idle − REFRESH_EVERY`
//! and `idle` after the last request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::events::{insert, AgentEvent};
use super::{ms, now_ms, AgentDb, StoreError};
use crate::accounts::Role;
use crate::random_token;

/// How often, at most, a shared session's expiry is moved forward.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// A logged-in session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionInfo {
    /// The canonical (lower-case) agent name.
    pub name: String,
    pub role: Role,
    pub csrf: String,
    /// [`Accounts::fingerprint`](crate::accounts::Accounts::fingerprint) of the entry the
    /// session was made from (empty for sessions from before fingerprints).
    pub fingerprint: String,
}

/// What a new session gives the browser: the cookie's secret and the CSRF token.
#[derive(Debug)]
pub(crate) struct NewSession {
    pub token: String,
    pub csrf: String,
}

pub(crate) struct MemSession {
    info: SessionInfo,
    last_seen: Instant,
}

/// The session store.
pub(crate) enum SessionStore {
    /// This process only (records off).
    Memory {
        idle: Duration,
        by_hash: Mutex<HashMap<String, MemSession>>,
    },
    /// `agent_sessions`.
    Shared { idle: Duration, db: AgentDb },
}

/// hex SHA-256 of the cookie's secret: the key a session is kept under.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionStore {
    /// Sessions ending after `idle` without a request, in `db` or (without one) in memory.
    pub(crate) fn new(idle: Duration, db: Option<AgentDb>) -> SessionStore {
        match db {
            Some(db) => SessionStore::Shared { idle, db },
            None => SessionStore::Memory {
                idle,
                by_hash: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Whether sessions are shared through the database.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, SessionStore::Shared { .. })
    }

    /// A new session for `agent` with `role`, made from the account entry of `fingerprint`,
    /// and `login` recorded in the same transaction: no session without its event.
    pub(crate) async fn start(
        &self,
        agent: &str,
        role: Role,
        fingerprint: &str,
        login: &AgentEvent,
    ) -> Result<NewSession, StoreError> {
        let token = random_token(32);
        let csrf = random_token(32);
        let info = SessionInfo {
            name: agent.to_string(),
            role,
            csrf: csrf.clone(),
            fingerprint: fingerprint.to_string(),
        };
        match self {
            SessionStore::Memory { by_hash, .. } => {
                lock(by_hash).insert(
                    token_hash(&token),
                    MemSession {
                        info,
                        last_seen: Instant::now(),
                    },
                );
            }
            SessionStore::Shared { idle, db } => {
                let now = now_ms();
                let mut tx = db.pool().begin().await?;
                sqlx::query(
                    "INSERT INTO agent_sessions \
                     (token_hash, agent, csrf, created_at, expires_at, role, account_fingerprint) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(token_hash(&token))
                .bind(info.name)
                .bind(info.csrf)
                .bind(now)
                .bind(now.saturating_add(ms(*idle)))
                .bind(role.as_str())
                .bind(info.fingerprint)
                .execute(&mut *tx)
                .await?;
                insert(&mut *tx, login, db.host()).await?;
                tx.commit().await?;
            }
        }
        Ok(NewSession { token, csrf })
    }

    /// Ends the session `token` (nothing if there is none), with `logout` recorded in the same
    /// transaction when given.
    pub(crate) async fn end(
        &self,
        token: &str,
        logout: Option<&AgentEvent>,
    ) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory { by_hash, .. } => {
                lock(by_hash).remove(&token_hash(token));
            }
            SessionStore::Shared { db, .. } => {
                let mut tx = db.pool().begin().await?;
                sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1")
                    .bind(token_hash(token))
                    .execute(&mut *tx)
                    .await?;
                if let Some(event) = logout {
                    insert(&mut *tx, event, db.host()).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Whether `agent` has a live session left (in another browser, or on another instance).
    pub(crate) async fn any_of(&self, agent: &str) -> Result<bool, StoreError> {
        match self {
            SessionStore::Memory { idle, by_hash } => Ok(lock(by_hash)
                .values()
                .any(|s| s.info.name == agent && s.last_seen.elapsed() <= *idle)),
            SessionStore::Shared { db, .. } => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM agent_sessions WHERE agent = $1 AND expires_at > $2",
                )
                .bind(agent.to_string())
                .bind(now_ms())
                .fetch_one(db.pool())
                .await?;
                Ok(n > 0)
            }
        }
    }

    /// The session `token`, its idle time restarted; `None` if there is none or it was idle
    /// too long (then it is removed on sight).
    pub(crate) async fn touch(&self, token: &str) -> Result<Option<SessionInfo>, StoreError> {
        let hash = token_hash(token);
        match self {
            SessionStore::Memory { idle, by_hash } => {
                let mut sessions = lock(by_hash);
                let Some(s) = sessions.get_mut(&hash) else {
                    return Ok(None);
                };
                if s.last_seen.elapsed() > *idle {
                    sessions.remove(&hash);
                    return Ok(None);
                }
                s.last_seen = Instant::now();
                Ok(Some(s.info.clone()))
            }
            SessionStore::Shared { idle, db } => {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT agent, role, csrf, expires_at, account_fingerprint FROM agent_sessions \
                     WHERE token_hash = $1",
                )
                .bind(hash.clone())
                .fetch_optional(db.pool())
                .await?;
                let Some(row) = row else { return Ok(None) };
                let expires_at: i64 = row.try_get("expires_at")?;
                let now = now_ms();
                if expires_at <= now {
                    sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1")
                        .bind(hash)
                        .execute(db.pool())
                        .await?;
                    return Ok(None);
                }
                let role: String = row.try_get("role")?;
                // A role this version does not know opens nothing (fail closed).
                let Some(role) = Role::parse(&role) else {
                    log::warn!("a session with the unknown role {role:?} was refused");
                    return Ok(None);
                };
                let refresh = ms(REFRESH_EVERY.min(*idle / 4));
                let fresh_until = now.saturating_add(ms(*idle));
                if fresh_until - expires_at >= refresh {
                    sqlx::query(
                        "UPDATE agent_sessions SET expires_at = $2 WHERE token_hash = $1 AND expires_at < $2",
                    )
                    .bind(hash)
                    .bind(fresh_until)
                    .execute(db.pool())
                    .await?;
                }
                Ok(Some(SessionInfo {
                    name: row.try_get("agent")?,
                    role,
                    csrf: row.try_get("csrf")?,
                    fingerprint: row.try_get("account_fingerprint")?,
                }))
            }
        }
    }

    /// Ends every session of these agents (removed from the accounts file, or changed in it);
    /// how many ended.
    pub(crate) async fn end_all_of(&self, agents: &[String]) -> Result<usize, StoreError> {
        if agents.is_empty() {
            return Ok(0);
        }
        match self {
            SessionStore::Memory { by_hash, .. } => {
                let mut sessions = lock(by_hash);
                let before = sessions.len();
                sessions.retain(|_, s| !agents.contains(&s.info.name));
                Ok(before - sessions.len())
            }
            SessionStore::Shared { db, .. } => {
                let mut ended = 0;
                for agent in agents {
                    ended += sqlx::query("DELETE FROM agent_sessions WHERE agent = $1")
                        .bind(agent.clone())
                        .execute(db.pool())
                        .await?
                        .rows_affected() as usize;
                }
                Ok(ended)
            }
        }
    }

    /// Removes sessions idle too long.
    pub(crate) async fn prune(&self) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory { idle, by_hash } => {
                lock(by_hash).retain(|_, s| s.last_seen.elapsed() <= *idle);
            }
            SessionStore::Shared { db, .. } => {
                sqlx::query("DELETE FROM agent_sessions WHERE expires_at <= $1")
                    .bind(now_ms())
                    .execute(db.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// How many sessions are held (live or not yet pruned).
    #[cfg(test)]
    pub(crate) async fn len(&self) -> Result<usize, StoreError> {
        match self {
            SessionStore::Memory { by_hash, .. } => Ok(lock(by_hash).len()),
            SessionStore::Shared { db, .. } => {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_sessions")
                    .fetch_one(db.pool())
                    .await?;
                Ok(n as usize)
            }
        }
    }
}
