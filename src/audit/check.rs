//! What `bankid-ivr doctor` says about the audit trail before the first call: the database
//! answers (or the SQLite file can be made), the spool can be written, the pseudonym key
//! loads, and whether records still wait in the spool. It creates and changes nothing — an
//! operator running it as root must not leave a root-owned database behind for the service.

use std::path::Path;
use std::time::Duration;

use super::spool::{set_aside_in, waiting_in};
use super::store::{probe, Probe};
use super::{AuditSettings, Database, PseudonymKey};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Records are kept.
    Ok,
    /// Records are kept, but something needs attention (records waiting, recording off).
    Warn,
    /// Records cannot be kept as configured.
    Fail,
}

/// One finding: how bad, what was found, what to do (empty when ok).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do.
    pub fix: String,
}

fn fail(detail: String, fix: &str) -> Finding {
    Finding {
        level: Level::Fail,
        detail,
        fix: fix.into(),
    }
}

/// Whether this process may create entries in `dir`, or (when it does not exist yet) in the
/// nearest directory above it that does.
fn may_write(dir: &Path) -> Result<(), String> {
    let mut at = dir;
    loop {
        if at.exists() {
            if !at.is_dir() {
                return Err(format!("{} is not a directory", at.display()));
            }
            return rustix::fs::access(at, rustix::fs::Access::WRITE_OK)
                .map_err(|e| format!("{} is not writable: {e}", at.display()));
        }
        match at.parent() {
            Some(up) => at = up,
            None => return Err(format!("no directory above {}", dir.display())),
        }
    }
}

/// Checks `settings`, waiting at most `timeout` for a database server.
pub fn check(settings: &AuditSettings, timeout: Duration) -> Finding {
    let Some(database) = &settings.database else {
        return Finding {
            level: Level::Warn,
            detail: "records are off (audit_database = \"off\"): no order is recorded".into(),
            fix: "remove audit_database = \"off\" to keep the records (an SQLite file in the \
                  state directory by default)"
                .into(),
        };
    };
    let key = &settings.key_file;
    let key_id =
        if key.exists() || database.is_shared() {
            match PseudonymKey::load(key) {
                Ok(k) => k.id(),
                Err(e) => return fail(
                    e.0,
                    "give audit_key_file a readable file of 64 or more hex digits (`openssl rand \
                     -hex 32`), the same on every host writing one database",
                ),
            }
        } else if let Err(e) = key.parent().map_or(Ok(()), may_write) {
            return fail(
                format!("the pseudonym key {} cannot be made: {e}", key.display()),
                "make its directory writable for the service's user, or set audit_key_file",
            );
        } else {
            "made at the first start".into()
        };
    let spool = &settings.spool_dir;
    if let Err(e) = may_write(spool) {
        return fail(
            format!("the audit spool {}: {e}", spool.display()),
            "make audit_spool_dir writable for the service's user (records wait there while \
             the database is unreachable)",
        );
    }
    let waiting = match waiting_in(spool) {
        Ok(n) => n.unwrap_or(0),
        Err(e) => {
            return fail(
                format!("the audit spool {}: {e}", spool.display()),
                "make audit_spool_dir readable and writable for the service's user",
            )
        }
    };
    let schema = match block_on_probe(database, timeout) {
        Ok(Probe::NotCreated) => {
            let Database::Sqlite(file) = database else {
                unreachable!("only an SQLite file is not created yet")
            };
            if let Err(e) = file.parent().map_or(Ok(()), may_write) {
                return fail(
                    format!("the SQLite file {} cannot be made: {e}", file.display()),
                    "make its directory writable for the service's user, or set audit_database",
                );
            }
            "made at the first record".to_string()
        }
        Ok(Probe::Reachable { applied, known }) if applied > known => {
            return fail(
                format!(
                    "{database}: its schema is newer ({applied} migrations) than this version \
                     knows ({known})"
                ),
                "upgrade bankid-ivr on this host to the version the other hosts run",
            )
        }
        Ok(Probe::Reachable { applied, known }) if applied < known => {
            format!("schema {applied} of {known}: brought up to date at the next start")
        }
        Ok(Probe::Reachable { applied, .. }) => format!("schema {applied}, up to date"),
        Err(e) => {
            return fail(
                e.0,
                "start the database or correct audit_database; meanwhile records wait in the \
                 spool and are written once it answers",
            )
        }
    };
    let detail = format!(
        "{database} ({schema}); spool {} ({waiting} waiting); pseudonym key {} ({key_id}); \
         evidence {}; kept {} days",
        spool.display(),
        key.display(),
        if settings.keep_evidence {
            "kept"
        } else {
            "not kept"
        },
        settings.retention_days
    );
    let bad = set_aside_in(spool).unwrap_or_default();
    let mut fixes = Vec::new();
    if waiting > 0 {
        fixes.push(format!(
            "{waiting} record(s) wait in the spool: the database was unreachable; they are \
             written when a running service next connects (see its log)"
        ));
    }
    if !bad.is_empty() {
        fixes.push(format!(
            "{} spool file(s) set aside as unreadable, their records counted lost: {} in {} \
             (look at them, then remove them)",
            bad.len(),
            bad.join(", "),
            spool.display()
        ));
    }
    if !fixes.is_empty() {
        return Finding {
            level: Level::Warn,
            detail,
            fix: fixes.join("; "),
        };
    }
    Finding {
        level: Level::Ok,
        detail,
        fix: String::new(),
    }
}

fn block_on_probe(
    database: &Database,
    timeout: Duration,
) -> Result<Probe, super::db::DatabaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| super::db::DatabaseError(format!("a runtime for the probe: {e}")))?;
    rt.block_on(probe(database, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_directory_is_ok_and_creates_nothing() {
        let dir = std::env::temp_dir().join(format!(
            "bankid-check-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let settings = AuditSettings::in_dir(&dir);
        let f = check(&settings, Duration::from_secs(5));
        assert_eq!(f.level, Level::Ok, "{f:?}");
        assert!(f.detail.contains("made at the first record"), "{f:?}");
        assert!(!dir.exists(), "doctor made {}", dir.display());
        std::fs::create_dir_all(&settings.spool_dir).unwrap();
        std::fs::write(settings.spool_dir.join("1-2-3-1.batch.bad"), "half").unwrap();
        let f = check(&settings, Duration::from_secs(5));
        assert_eq!(f.level, Level::Warn, "{f:?}");
        assert!(f.fix.contains("1-2-3-1.batch.bad"), "{f:?}");
        let _ = std::fs::remove_dir_all(&dir);
        let off = AuditSettings {
            database: None,
            ..settings.clone()
        };
        assert_eq!(check(&off, Duration::from_secs(5)).level, Level::Warn);
        let shared = AuditSettings {
            database: Some(Database::Postgres("postgres://u@127.0.0.1:1/db".into())),
            ..settings
        };
        let f = check(&shared, Duration::from_secs(5));
        assert_eq!(f.level, Level::Fail, "{f:?}");
        assert!(
            f.detail.contains("audit.key"),
            "a shared database needs its key: {f:?}"
        );
    }
}
