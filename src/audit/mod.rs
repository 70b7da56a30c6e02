//! The audit trail: one record per order from every entry point (the C ABI, `identify`,
//! FastAGI, `flow run`, the agent page), BankID's evidence when an identification completes,
//! and what agents and supervisors did, kept in SQLite or PostgreSQL.
//!
//! - [`db`]: which databases, how to connect, the versioned migrations (`migrations/`).
//! - [`pseudonym`]: the keyed pseudonym that lets a supervisor find a person's records.
//! - [`record`]: one order's record, typed, and its row as stored.
//! - [`spool`]: where records wait on disk (fsynced) until the database has them.
//! - [`store`]: the writer's connection and every statement it runs (insert, purge, probe).
//! - [`writer`]: [`Audit`], the writer thread the order tasks hand their records to.
//! - [`check`]: what `bankid-ivr doctor` says about it, changing nothing.
//!
//! Where records go is configured with the `audit_*` keys ([`AuditSettings`]); with nothing
//! set, an SQLite file in the state directory ([`state_dir`]).

pub mod check;
pub mod db;
pub mod pseudonym;
pub mod record;
pub mod spool;
pub mod store;
pub mod writer;

use std::path::{Path, PathBuf};

pub use db::Database;
pub use pseudonym::PseudonymKey;
pub use record::{Evidence, Failure, Record, RecordId, Row, UnixMs};
pub use writer::{Audit, AuditError};

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

/// Default `audit_spool_max_records`.
pub const DEFAULT_SPOOL_MAX_RECORDS: usize = 100_000;
/// Default `audit_retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

impl AuditSettings {
    /// The defaults in the state directory `state`: `audit.db` (SQLite), `audit-spool/`,
    /// `audit.key`; evidence kept; 100 000 records at most in the spool; 365 days kept.
    pub fn in_dir(state: &Path) -> AuditSettings {
        AuditSettings {
            database: Some(Database::Sqlite(state.join("audit.db"))),
            spool_dir: state.join("audit-spool"),
            spool_max_records: DEFAULT_SPOOL_MAX_RECORDS,
            key_file: state.join("audit.key"),
            keep_evidence: true,
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }

    /// [`AuditSettings::in_dir`] of [`state_dir`]: what applies with no `audit_*` key set.
    pub fn defaults() -> AuditSettings {
        AuditSettings::in_dir(&state_dir())
    }
}

/// Where the library keeps its state when nothing else is configured: `$STATE_DIRECTORY`
/// (systemd's `StateDirectory=`; its first entry), else `/var/lib/bankid` when it exists and
/// this process may write there, else `$XDG_STATE_HOME/bankid`, else `~/.local/state/bankid`.
/// With none of these (no `HOME`), `/var/lib/bankid` all the same: using it then fails with an
/// error naming it, never a silent guess elsewhere.
pub fn state_dir() -> PathBuf {
    let system = Path::new(SYSTEM_STATE_DIR);
    let writable =
        system.is_dir() && rustix::fs::access(system, rustix::fs::Access::WRITE_OK).is_ok();
    state_dir_from(|name| std::env::var_os(name), writable)
}

/// The system's state directory for the library (the Debian package makes it).
pub const SYSTEM_STATE_DIR: &str = "/var/lib/bankid";

/// [`state_dir`] with the environment read through `env`, and whether `/var/lib/bankid` is a
/// directory this process may write.
fn state_dir_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    system_writable: bool,
) -> PathBuf {
    let var = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dirs) = env("STATE_DIRECTORY") {
        if let Some(first) = std::env::split_paths(&dirs).find(|p| p.is_absolute()) {
            return first;
        }
    }
    let system = Path::new(SYSTEM_STATE_DIR);
    if system_writable {
        return system.to_path_buf();
    }
    if let Some(xdg) = var("XDG_STATE_HOME") {
        return xdg.join("bankid");
    }
    if let Some(home) = var("HOME") {
        return home.join(".local/state/bankid");
    }
    system.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_follows_systemd_then_the_system_then_the_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = env(&[
            ("STATE_DIRECTORY", "/var/lib/bankid-unit:/var/lib/other"),
            ("XDG_STATE_HOME", "/home/a/.state"),
            ("HOME", "/home/a"),
        ]);
        assert_eq!(state_dir_from(all, true), Path::new("/var/lib/bankid-unit"));
        let user = env(&[("XDG_STATE_HOME", "/home/a/.state"), ("HOME", "/home/a")]);
        assert_eq!(state_dir_from(user, true), Path::new("/var/lib/bankid"));
        assert_eq!(
            state_dir_from(user, false),
            Path::new("/home/a/.state/bankid")
        );
        let home = env(&[("XDG_STATE_HOME", "relative"), ("HOME", "/home/a")]);
        assert_eq!(
            state_dir_from(home, false),
            Path::new("/home/a/.local/state/bankid")
        );
        // Nothing to go on: the system directory, whose use then fails by name.
        assert_eq!(
            state_dir_from(env(&[]), false),
            Path::new("/var/lib/bankid")
        );
        let d = AuditSettings::in_dir(Path::new("/s"));
        assert_eq!(d.database, Some(Database::Sqlite("/s/audit.db".into())));
        assert_eq!(d.spool_dir, Path::new("/s/audit-spool"));
        assert_eq!(d.key_file, Path::new("/s/audit.key"));
        assert!(d.keep_evidence);
        assert_eq!((d.spool_max_records, d.retention_days), (100_000, 365));
    }
}
