//! The audit trail: one record per order from every entry point (the C ABI, `identify`,
//! FastAGI, `flow run`, the agent page), BankID's evidence when an identification completes,
//! and what agents and supervisors did, kept in SQLite or PostgreSQL.
//!
//! - [`db`]: which databases, how to connect, the versioned migrations (`migrations/`).
//! - [`pseudonym`]: the keyed pseudonym that lets a supervisor find a person's records.

pub mod db;
pub mod pseudonym;

pub use db::Database;
pub use pseudonym::PseudonymKey;

/// Where an order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Channel {
    /// A host of the C ABI (an IVR runtime's custom-block hook, an integrator's program).
    #[default]
    CAbi,
    /// `bankid-ivr identify` (Cally Square's System block).
    Identify,
    /// `bankid-ivr fastagi` (the AGI block).
    FastAgi,
    /// `bankid-ivr flow run`.
    FlowRun,
    /// The agent page (`bankid-agent`).
    Agent,
}

impl Channel {
    /// Every channel, for filters and charts.
    pub const ALL: [Channel; 5] = [
        Channel::CAbi,
        Channel::Identify,
        Channel::FastAgi,
        Channel::FlowRun,
        Channel::Agent,
    ];

    /// `c-abi`, `identify`, `fastagi`, `flow-run`, `agent`: as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::CAbi => "c-abi",
            Channel::Identify => "identify",
            Channel::FastAgi => "fastagi",
            Channel::FlowRun => "flow-run",
            Channel::Agent => "agent",
        }
    }

    /// The inverse of [`Channel::as_str`].
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Who and what an order is for, as the entry point knows it: goes into its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The entry point.
    pub channel: Channel,
    /// The agent's login name (agent page).
    pub agent: Option<String>,
    /// The host's identifier of the call (Asterisk's `uniqueid`).
    pub call_id: Option<String>,
}

/// Where and how records are kept (the `audit_*` configuration keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The database; `None` only when records are turned off explicitly (`audit_database =
    /// "off"`), never because nothing was configured.
    pub database: Option<Database>,
    /// The local spool: records wait here (fsynced) until the database has them.
    pub spool_dir: std::path::PathBuf,
    /// At most this many records wait in the spool; beyond it a record is lost, loudly (an
    /// error in the log and `bankid_audit_records_lost_total`).
    pub spool_max_records: usize,
    /// The pseudonym key (hex; made when missing unless the database is shared).
    pub key_file: std::path::PathBuf,
    /// Whether BankID's completionData is kept (default on, as BankID recommends).
    pub keep_evidence: bool,
    /// Records and evidence older than this many days are purged, daily.
    pub retention_days: u32,
}
