//! Where BankID is for the command-line tools: the configured service (a TOML file, or
//! `BANKID_*` environment variables), or — when nothing is configured — an embedded simulator,
//! so a first run needs no certificate and no network.

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
}

/// Speed of the embedded simulator: `BANKID_SIM_SPEED`, else `default` (0.25 for the IVR
/// tools: a phone order takes about 2 s instead of 8 s, so the prompts can still be followed).
pub fn sim_speed(default: f64) -> f64 {
    std::env::var("BANKID_SIM_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(default)
}

impl Backend {
    /// The configuration file if given, else the environment if it names an endpoint, else an
    /// embedded simulator.
    pub fn resolve(config_file: Option<&Path>) -> Result<Backend, String> {
        Backend::resolve_with_speed(config_file, 0.25)
    }

    /// Like [`Backend::resolve`], with the embedded simulator's default speed given.
    pub fn resolve_with_speed(
        config_file: Option<&Path>,
        default_speed: f64,
    ) -> Result<Backend, String> {
        if let Some(path) = config_file {
            let config = Config::from_file(path).map_err(|e| e.to_string())?;
            return Ok(Backend {
                config,
                config_file: Some(path.to_path_buf()),
                sim: None,
            });
        }
        if Config::env_is_configured() {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            return Ok(Backend {
                config,
                config_file: None,
                sim: None,
            });
        }
        Backend::embedded(sim_speed(default_speed))
    }

    /// Starts an embedded simulator and a configuration for it (collecting every 100 ms,
    /// scaled to the simulator's speed, never slower than BankID's 2 s).
    pub fn embedded(speed: f64) -> Result<Backend, String> {
        let dir = std::env::temp_dir().join(format!("bankid-ivr-sim-{}", std::process::id()));
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
        })
    }

    /// Whether this is the embedded simulator.
    pub fn is_simulated(&self) -> bool {
        self.sim.is_some()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(sim) = &self.sim {
            if let Some(dir) = sim.certs().dir.clone() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
