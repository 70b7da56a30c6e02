//! Where BankID is for the command-line tools: the configured service (a TOML file, or
//! `BANKID_*` environment variables), or an embedded simulator — which answers "identified" for
//! every valid number, so it runs only where the tool's [`SimulatorPolicy`] allows it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bankid::config::{Config, Identity};
use bankid_sim::{SimConfig, Simulator};

/// A configuration and, when it points at one, the embedded simulator that must outlive it.
pub struct Backend {
    /// The library configuration.
    pub config: Config,
    /// A TOML file with the same configuration, for `bankid_init` in a dlopen'ed library.
    pub config_file: Option<PathBuf>,
    /// The embedded simulator, if one was started.
    pub sim: Option<Simulator>,
    /// The embedded simulator's private directory (certificates and a client key), removed on
    /// drop.
    sim_dir: Option<PathBuf>,
}

/// When a tool may fall back to the embedded simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatorPolicy {
    /// With nothing configured, the simulator (a dry run: `flow run`; the agent page on a
    /// loopback address).
    Default,
    /// Only when asked for (`--simulator` or `BANKID_SIMULATOR=1`); with nothing configured and
    /// not asked, an error naming the settings. For anything that answers real callers.
    OnlyWhenAsked,
}

/// The settings to name when nothing is configured.
pub const NOT_CONFIGURED: &str = "no BankID configured: give --config FILE (TOML), or set \
BANKID_PRESET=test|production with the client certificate (BANKID_P12_FILE and \
BANKID_P12_PASSWORD, or BANKID_CERT_FILE and BANKID_KEY_FILE), or BANKID_URL with \
BANKID_CA_FILE and the client certificate; for a lab run against the embedded simulator (it \
identifies every valid number: no real identities) give --simulator or set BANKID_SIMULATOR=1";

/// Speed of the embedded simulator: `BANKID_SIM_SPEED`, else `default` (0.25 for the IVR
/// tools: a phone order takes about 2 s instead of 8 s, so the prompts can still be followed).
pub fn sim_speed(default: f64) -> f64 {
    std::env::var("BANKID_SIM_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(default)
}

/// Whether the simulator was asked for: the `--simulator` flag, or `BANKID_SIMULATOR` set to
/// `1`/`true`/`yes`. Any other non-empty value than `0`/`false`/`no` is an error (fail closed).
pub fn simulator_asked(flag: bool) -> Result<bool, String> {
    let env = match std::env::var("BANKID_SIMULATOR") {
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "" | "0" | "false" | "no" => false,
            _ => {
                return Err(format!(
                    "BANKID_SIMULATOR={v:?}: use 1 (the embedded simulator) or 0"
                ))
            }
        },
        Err(std::env::VarError::NotPresent) => false,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("BANKID_SIMULATOR is not UTF-8: use 1 or 0".into())
        }
    };
    Ok(flag || env)
}

impl Backend {
    /// Where BankID is, by `policy`: the configuration file if given, else the environment if it
    /// names an endpoint, else the embedded simulator when `policy` allows it. `simulator_flag`
    /// is the tool's `--simulator`; `BANKID_SIMULATOR` is read here. Asking for the simulator
    /// while BankID is configured is an error: one of the two is a mistake.
    pub fn resolve(
        config_file: Option<&Path>,
        policy: SimulatorPolicy,
        simulator_flag: bool,
        default_speed: f64,
    ) -> Result<Backend, String> {
        let asked = simulator_asked(simulator_flag)?;
        let configured = config_file.is_some() || Config::env_is_configured();
        if asked && configured {
            return Err(format!(
                "the embedded simulator was asked for (--simulator or BANKID_SIMULATOR) but BankID is also configured ({}): choose one",
                if config_file.is_some() { "--config" } else { "BANKID_PRESET/BANKID_URL" }
            ));
        }
        if let Some(path) = config_file {
            let config = Config::from_file(path).map_err(|e| e.to_string())?;
            return Ok(Backend {
                config,
                config_file: Some(path.to_path_buf()),
                sim: None,
                sim_dir: None,
            });
        }
        if configured {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            return Ok(Backend {
                config,
                config_file: None,
                sim: None,
                sim_dir: None,
            });
        }
        if asked || policy == SimulatorPolicy::Default {
            return Backend::embedded(sim_speed(default_speed));
        }
        Err(NOT_CONFIGURED.into())
    }

    /// Starts an embedded simulator and a configuration for it (collecting every 100 ms,
    /// scaled to the simulator's speed, never slower than BankID's 2 s). Its certificates and
    /// client key live in a fresh directory with an unpredictable name and mode 0700, removed
    /// when the backend is dropped.
    pub fn embedded(speed: f64) -> Result<Backend, String> {
        let dir = private_dir(&std::env::temp_dir())?;
        // Removed on every way out, errors included, until the backend owns it.
        let mut cleanup = RemoveOnDrop(Some(dir.clone()));
        let sim = Simulator::start(SimConfig {
            speed,
            certs_dir: Some(dir.clone()),
            ..Default::default()
        })
        .map_err(|e| format!("embedded simulator: {e}"))?;
        let identity = Identity::Pem {
            cert_file: dir.join("client.pem"),
            key_file: dir.join("client.key"),
            key_password: None,
        };
        let mut config = Config::custom(&sim.base_url(), &dir.join("ca.pem"), identity);
        let poll = Duration::from_secs_f64((2.0 * speed).clamp(0.01, 2.0));
        config.poll_interval = poll;
        let file = dir.join("bankid.toml");
        std::fs::write(
            &file,
            format!(
                "# written by bankid-ivr for its embedded simulator\nurl = \"{}\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\npoll_interval_ms = {}\n",
                sim.base_url(),
                poll.as_millis().max(1)
            ),
        )
        .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Backend {
            config,
            config_file: Some(file),
            sim: Some(sim),
            sim_dir: cleanup.0.take(),
        })
    }

    /// Whether this is the embedded simulator.
    pub fn is_simulated(&self) -> bool {
        self.sim.is_some()
    }

    /// The embedded simulator's private directory, if any.
    pub fn sim_dir(&self) -> Option<&Path> {
        self.sim_dir.as_deref()
    }
}

/// Creates `parent/bankid-ivr-sim-<random>` with mode 0700, atomically: `mkdir` fails rather
/// than reuse a directory someone else made, and then another random name is tried.
fn private_dir(parent: &Path) -> Result<PathBuf, String> {
    use rand::Rng;
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for _ in 0..16 {
        let name = format!("bankid-ivr-sim-{:032x}", rand::rng().random::<u128>());
        let dir = parent.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                // Exactly 0700 whatever the umask (0700 & !umask could drop the owner's bits).
                use std::os::unix::fs::PermissionsExt;
                if let Err(e) =
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(format!("embedded simulator: {}: {e}", dir.display()));
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(format!(
                    "embedded simulator: cannot create a directory in {}: {e}",
                    parent.display()
                ))
            }
        }
    }
    Err(format!(
        "embedded simulator: no fresh directory name in {}: {}",
        parent.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Removes a directory when dropped.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown();
        }
        if let Some(dir) = self.sim_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
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
        assert_eq!(name.len(), "bankid-ivr-sim-".len() + 32, "{name}");
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir(a).unwrap();
        std::fs::remove_dir(b).unwrap();
    }

    #[test]
    fn the_embedded_simulator_directory_is_removed_on_drop() {
        let b = Backend::embedded(0.05).unwrap();
        let dir = b.sim_dir().unwrap().to_path_buf();
        assert!(dir.join("client.key").is_file());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(b);
        assert!(!dir.exists());
    }
}
