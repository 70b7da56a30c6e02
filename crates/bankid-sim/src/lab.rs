//! A simulator with its certificates in a private directory and a client configuration for it:
//! the one place that sets up "a BankID to talk to" for the tools' embedded simulator and for
//! every test in the workspace.
//!
//! The directory holds a client key, so it gets an unpredictable name and mode 0700, is made
//! atomically (never a directory somebody else prepared), and is removed when the [`Lab`] is
//! dropped. The configuration is a TOML file in the library's format (`url`, `ca_file`,
//! `cert_file`, `key_file`, then whatever the caller adds), so a tool or test that reads it gets
//! exactly what a `bankid_init(path)` in C would.

use std::io;
use std::path::{Path, PathBuf};

use crate::{SimConfig, SimError, Simulator};

/// A running simulator and its private directory (`ca.pem`, `client.pem`, `client.key`, …;
/// see [`crate::certs::FILES`]). Dereferences to the [`Simulator`].
pub struct Lab {
    sim: Simulator,
    dir: PathBuf,
}

impl Lab {
    /// Starts a simulator with its certificates in a fresh private directory under the system
    /// temporary directory. `config.certs_dir` is ignored.
    pub fn start(config: SimConfig) -> Result<Lab, SimError> {
        Lab::start_in(&std::env::temp_dir(), config)
    }

    /// Like [`Lab::start`], with the private directory made inside `parent`.
    pub fn start_in(parent: &Path, mut config: SimConfig) -> Result<Lab, SimError> {
        let dir = private_dir(parent)?;
        config.certs_dir = Some(dir.clone());
        match Simulator::start(config) {
            Ok(sim) => Ok(Lab { sim, dir }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The simulator.
    pub fn sim(&self) -> &Simulator {
        &self.sim
    }

    /// The private directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate a client trusts (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The client certificate (PEM).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client certificate's key (unencrypted PKCS#8 PEM).
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The SQLite file a client configuration of this lab records orders in.
    pub fn audit_db_file(&self) -> PathBuf {
        self.dir.join("audit.db")
    }

    /// The audit spool of a client configuration of this lab.
    pub fn audit_spool_dir(&self) -> PathBuf {
        self.dir.join("audit-spool")
    }

    /// The pseudonym key file of a client configuration of this lab.
    pub fn audit_key_file(&self) -> PathBuf {
        self.dir.join("audit.key")
    }

    /// A client configuration in the library's TOML format: the simulator's URL, its CA and
    /// the PEM client identity (paths relative to the directory), the audit trail's database,
    /// spool and key inside the directory (so no lab run writes into a real state directory,
    /// and simulated records never mix with real ones), then `extra` (more `key = value`
    /// lines, e.g. `poll_interval_ms = 20`; an `audit_*` key there replaces the lab's).
    pub fn client_toml(&self, extra: &str) -> String {
        let mut text = format!(
            "# a client of the bankid-sim at {url}\nurl = \"{url}\"\nca_file = \"ca.pem\"\n\
             cert_file = \"client.pem\"\nkey_file = \"client.key\"\n",
            url = self.sim.base_url()
        );
        let sets = |key: &str| {
            extra.lines().any(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        };
        for (key, path) in [
            ("audit_database", self.audit_db_file()),
            ("audit_spool_dir", self.audit_spool_dir()),
            ("audit_key_file", self.audit_key_file()),
        ] {
            if !sets(key) {
                text.push_str(&format!("{key} = {:?}\n", path.display().to_string()));
            }
        }
        text.push_str(extra);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }

    /// Stops the simulator (joining its thread) and removes the directory; dropping does the same.
    pub fn shutdown(self) {
        drop(self);
    }

    /// Writes [`Lab::client_toml`] to `bankid.toml` in the directory and returns its path.
    pub fn write_client_toml(&self, extra: &str) -> io::Result<PathBuf> {
        let path = self.dir.join("bankid.toml");
        std::fs::write(&path, self.client_toml(extra))?;
        Ok(path)
    }
}

impl std::ops::Deref for Lab {
    type Target = Simulator;
    fn deref(&self) -> &Simulator {
        &self.sim
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("sim", &self.sim)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Drop for Lab {
    /// The simulator holds its certificates in memory, so the directory can go first; the
    /// simulator stops when its field is dropped right after.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates `parent/bankid-sim-<128 random bits>` with mode exactly 0700. `mkdir` fails rather
/// than reuse a directory that exists (someone may have prepared it), and another name is tried.
pub fn private_dir(parent: &Path) -> Result<PathBuf, SimError> {
    use rand::Rng;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut last = None;
    for _ in 0..16 {
        let dir = parent.join(format!("bankid-sim-{:032x}", rand::rng().random::<u128>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                // Exactly 0700 whatever the umask (0700 & !umask could drop the owner's bits).
                if let Err(e) =
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(SimError(format!("{}: {e}", dir.display())));
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(SimError(format!(
                    "cannot create a directory in {}: {e}",
                    parent.display()
                )))
            }
        }
    }
    Err(SimError(format!(
        "no fresh directory name in {}: {}",
        parent.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_dirs_are_fresh_unpredictable_and_0700() {
        let parent = std::env::temp_dir();
        let a = private_dir(&parent).unwrap();
        let b = private_dir(&parent).unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), "bankid-sim-".len() + 32, "{name}");
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir(a).unwrap();
        std::fs::remove_dir(b).unwrap();
    }

    #[test]
    fn a_lab_writes_a_client_configuration_and_removes_its_directory() {
        let lab = Lab::start(SimConfig::default()).unwrap();
        let dir = lab.dir().to_path_buf();
        for f in [lab.ca_file(), lab.cert_file(), lab.key_file()] {
            assert!(f.is_file(), "{}", f.display());
        }
        let toml = lab.write_client_toml("poll_interval_ms = 20").unwrap();
        let text = std::fs::read_to_string(&toml).unwrap();
        assert!(
            text.contains(&format!("url = \"{}\"", lab.base_url())),
            "{text}"
        );
        assert!(text.ends_with("poll_interval_ms = 20\n"), "{text}");
        let in_dir = |k: &str| {
            text.lines()
                .any(|l| l.starts_with(k) && l.contains(&dir.display().to_string()))
        };
        for k in ["audit_database", "audit_spool_dir", "audit_key_file"] {
            assert!(in_dir(k), "{k} not in the lab's directory: {text}");
        }
        let own = lab.client_toml("audit_database = \"off\"");
        assert_eq!(own.matches("audit_database").count(), 1, "{own}");
        assert!(own.contains("audit_spool_dir"), "{own}");
        drop(lab);
        assert!(!dir.exists());
    }
}
