//! What agents and supervisors did on the page, one row each in `audit_agent_events`: logins,
//! failed logins, logouts, identifications started and cancelled, evidence downloaded and
//! records exported. A supervisor can then answer "who looked at this person's evidence?" as
//! well as "who identified them?".
//!
//! A personal number enters an event only masked: [`AgentEvent::about`] takes a
//! [`Personnummer`] and keeps nothing but `YYMMDD-XXXX`.

use bankid::personnummer::Personnummer;
use sqlx::any::Any;

use super::{new_id, now_ms, AgentDb, StoreError};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Logged in (written in the same transaction as the session).
    Login,
    /// A login that did not succeed: wrong name or password, or refused by the limits.
    LoginFailed,
    /// Logged out (in the same transaction as the session's end).
    Logout,
    /// Started an identification or signing at BankID.
    IdentifyStarted,
    /// Cancelled one.
    IdentifyCancelled,
    /// A supervisor downloaded a record's evidence.
    EvidenceDownloaded,
    /// A supervisor exported records as CSV.
    RecordsExported,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 7] = [
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::IdentifyStarted,
        Action::IdentifyCancelled,
        Action::EvidenceDownloaded,
        Action::RecordsExported,
    ];

    /// As stored: `login`, `login-failed`, `logout`, `identify-started`, `identify-cancelled`,
    /// `evidence-downloaded`, `records-exported`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login-failed",
            Action::Logout => "logout",
            Action::IdentifyStarted => "identify-started",
            Action::IdentifyCancelled => "identify-cancelled",
            Action::EvidenceDownloaded => "evidence-downloaded",
            Action::RecordsExported => "records-exported",
        }
    }

    /// The inverse of [`Action::as_str`].
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One event, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEvent {
    /// The login name (for a failed login: the name typed, trimmed, lower-case, ≤ 64).
    pub agent: String,
    /// What was done.
    pub action: Action,
    /// `YYMMDD-XXXX` of the person concerned, if any.
    pnr_masked: Option<String>,
    /// The record concerned: `audit_orders.id` for an evidence download; BankID's `orderRef`
    /// (`audit_orders.order_ref`) for a cancelled identification.
    pub order_id: Option<String>,
    /// The client's address.
    pub remote: Option<String>,
}

impl AgentEvent {
    /// `agent` did `action` from `remote`.
    pub fn new(agent: &str, action: Action, remote: &str) -> AgentEvent {
        AgentEvent {
            agent: agent.to_string(),
            action,
            pnr_masked: None,
            order_id: None,
            remote: Some(remote.to_string()),
        }
    }

    /// About this person (kept masked).
    pub fn about(mut self, pnr: &Personnummer) -> AgentEvent {
        self.pnr_masked = Some(pnr.masked());
        self
    }

    /// About a record whose number is already masked (as the records hold it).
    pub(crate) fn about_masked(mut self, masked: &str) -> AgentEvent {
        self.pnr_masked = Some(masked.to_string());
        self
    }

    /// About this record or order.
    pub fn on(mut self, order_id: Option<String>) -> AgentEvent {
        self.order_id = order_id;
        self
    }

    /// The masked number, if any.
    pub fn pnr_masked(&self) -> Option<&str> {
        self.pnr_masked.as_deref()
    }
}

/// Writes `event` through `conn` (a pool or a transaction), stamped now and with `host`.
pub(crate) async fn insert<'c, E>(conn: E, event: &AgentEvent, host: &str) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit_agent_events (id, at, agent, action, pnr_masked, order_id, remote, host) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(now_ms())
    .bind(event.agent.clone())
    .bind(event.action.as_str())
    .bind(event.pnr_masked.clone())
    .bind(event.order_id.clone())
    .bind(event.remote.clone())
    .bind(host.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Where events go: the database, or nowhere when records are off (the log still says what
/// happened).
#[derive(Debug, Clone)]
pub(crate) struct Events {
    db: Option<AgentDb>,
}

impl Events {
    pub(crate) fn new(db: Option<AgentDb>) -> Events {
        Events { db }
    }

    /// Writes `event` on its own.
    pub(crate) async fn record(&self, event: &AgentEvent) -> Result<(), StoreError> {
        match &self.db {
            Some(db) => insert(db.pool(), event, db.host()).await,
            None => Ok(()),
        }
    }
}
