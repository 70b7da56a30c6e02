//! Where BankID is, for every tool that answers callers (`bankid-ivr identify`, `fastagi`,
//! `flow run`, and the agent page): the configured service (a TOML file, or `BANKID_*`
//! environment variables), or an embedded simulator — which answers "identified" for every
//! valid number, so it runs only where the tool's [`SimulatorPolicy`] allows it.
//!
//! A crate of its own so both tools share one decision without the agent page depending on the
//! IVR tools, and so the library an IVR loads (`libbankid.so`) links no simulator.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bankid::config::{Config, ConfigError};
use bankid::order::Reloadable;
use bankid_sim::{Lab, SimConfig, SimError};

/// A configuration and, when it points at one, the embedded simulator that must outlive it.
pub struct Backend {
    /// The library configuration.
    pub config: Config,
    /// A TOML file with the same configuration, for `bankid_init` in a dlopen'ed library.
    pub config_file: Option<PathBuf>,
    /// The embedded simulator and its private directory (certificates and a client key),
    /// removed on drop.
    lab: Option<Lab>,
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

/// Why no backend could be had.
#[derive(Debug)]
pub enum BackendError {
    /// Nothing is configured and the policy does not allow the simulator ([`NOT_CONFIGURED`]).
    NotConfigured,
    /// `BANKID_SIMULATOR` holds something other than 1/0 (fail closed: never a guess).
    BadSimulatorSetting(String),
    /// The simulator was asked for while BankID is configured too (`--config` or the
    /// environment, named here): one of the two is a mistake.
    Ambiguous(&'static str),
    /// The configuration cannot be used.
    Config(ConfigError),
    /// The embedded simulator did not start, or its configuration could not be written.
    Simulator(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NotConfigured => f.write_str(NOT_CONFIGURED),
            BackendError::BadSimulatorSetting(v) => write!(f, "{v}: use 1 (the embedded simulator) or 0"),
            BackendError::Ambiguous(by) => write!(
                f,
                "the embedded simulator was asked for (--simulator or BANKID_SIMULATOR) but BankID is also configured ({by}): choose one"
            ),
            BackendError::Config(e) => e.fmt(f),
            BackendError::Simulator(e) => write!(f, "embedded simulator: {e}"),
        }
    }
}

impl std::error::Error for BackendError {}

impl From<ConfigError> for BackendError {
    fn from(e: ConfigError) -> Self {
        BackendError::Config(e)
    }
}

impl From<SimError> for BackendError {
    fn from(e: SimError) -> Self {
        BackendError::Simulator(e.0)
    }
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
pub fn simulator_asked(flag: bool) -> Result<bool, BackendError> {
    let env = match std::env::var("BANKID_SIMULATOR") {
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "" | "0" | "false" | "no" => false,
            _ => {
                return Err(BackendError::BadSimulatorSetting(format!(
                    "BANKID_SIMULATOR={v:?}"
                )))
            }
        },
        Err(std::env::VarError::NotPresent) => false,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(BackendError::BadSimulatorSetting(
                "BANKID_SIMULATOR is not UTF-8".into(),
            ))
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
    ) -> Result<Backend, BackendError> {
        let asked = simulator_asked(simulator_flag)?;
        let configured = config_file.is_some() || Config::env_is_configured();
        if asked && configured {
            return Err(BackendError::Ambiguous(if config_file.is_some() {
                "--config"
            } else {
                "BANKID_PRESET/BANKID_URL"
            }));
        }
        if let Some(path) = config_file {
            return Ok(Backend {
                config: Config::from_file(path)?,
                config_file: Some(path.to_path_buf()),
                lab: None,
            });
        }
        if configured {
            return Ok(Backend {
                config: Config::from_env()?,
                config_file: None,
                lab: None,
            });
        }
        if asked || policy == SimulatorPolicy::Default {
            return Backend::embedded(sim_speed(default_speed));
        }
        Err(BackendError::NotConfigured)
    }

    /// Starts an embedded simulator (a [`Lab`]: certificates and client key in a fresh private
    /// directory, removed when the backend is dropped) and a configuration for it, collecting
    /// every 100 ms scaled to the simulator's speed, never slower than BankID's 2 s. The
    /// configuration is read back from the file it writes, so the engine and a `bankid_init`
    /// of that file cannot differ.
    pub fn embedded(speed: f64) -> Result<Backend, BackendError> {
        let lab = Lab::start(SimConfig {
            speed,
            ..Default::default()
        })?;
        let poll = Duration::from_secs_f64((2.0 * speed).clamp(0.01, 2.0));
        let file = lab
            .write_client_toml(&format!("poll_interval_ms = {}", poll.as_millis().max(1)))
            .map_err(|e| BackendError::Simulator(format!("{}: {e}", lab.dir().display())))?;
        Ok(Backend {
            config: Config::from_file(&file)?,
            config_file: Some(file),
            lab: Some(lab),
        })
    }

    /// On SIGHUP: re-reads the configuration from where it came (`--config`, or the
    /// `BANKID_*` variables and the files they name — a renewed certificate) into `engine`:
    /// new orders use it, running ones finish on theirs. What cannot be read or loaded is
    /// logged and the running configuration stays; the embedded simulator has nothing to
    /// re-read.
    pub fn reload_into(&self, engine: &Reloadable) {
        if self.is_simulated() {
            log::info!("SIGHUP: the embedded simulator has no BankID configuration to reload");
            return;
        }
        let config = match &self.config_file {
            Some(path) => Config::from_file(path),
            None => Config::from_env(),
        };
        match config
            .map_err(bankid::order::Error::Config)
            .and_then(|c| engine.reload(c))
        {
            Ok(()) => log::info!("SIGHUP: BankID configuration reloaded"),
            Err(e) => {
                log::error!("SIGHUP: BankID configuration not reloaded, the running one stays: {e}")
            }
        }
    }

    /// Whether this is the embedded simulator.
    pub fn is_simulated(&self) -> bool {
        self.lab.is_some()
    }

    /// The embedded simulator and its directory, if any.
    pub fn lab(&self) -> Option<&Lab> {
        self.lab.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_embedded_simulator_directory_is_private_and_removed_on_drop() {
        let b = Backend::embedded(0.05).unwrap();
        let dir = b.lab().unwrap().dir().to_path_buf();
        assert!(dir.join("client.key").is_file());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(b.config.url(), b.lab().unwrap().base_url());
        assert_eq!(b.config.poll_interval, Duration::from_millis(100));
        drop(b);
        assert!(!dir.exists());
    }
}
