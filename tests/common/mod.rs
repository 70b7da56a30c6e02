//! Shared set-up for the library's integration tests: a simulator over real mTLS with its
//! certificates written to a fresh directory, and configurations pointing at it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bankid::config::{Config, Identity};
use bankid_sim::{Lab, SimConfig};

/// A simulator over real mTLS with its certificates in a private directory (a
/// [`bankid_sim::Lab`]), and configurations pointing at it.
pub struct Env {
    pub lab: Lab,
}

/// A simulator running 100x faster than real time.
pub fn sim() -> Env {
    sim_with(SimConfig {
        speed: 0.01,
        ..Default::default()
    })
}

pub fn sim_with(cfg: SimConfig) -> Env {
    Env {
        lab: Lab::start(cfg).expect("simulator starts"),
    }
}

impl Env {
    pub fn pem_identity(&self) -> Identity {
        Identity::Pem {
            cert_file: self.lab.cert_file(),
            key_file: self.lab.key_file(),
            key_password: None,
        }
    }

    /// Collects every 20 ms, 5 s local deadline, short timeouts.
    pub fn config(&self) -> Config {
        self.config_with(self.pem_identity())
    }

    pub fn config_with(&self, identity: Identity) -> Config {
        let mut c = Config::custom(&self.lab.base_url(), &self.lab.ca_file(), identity);
        c.poll_interval = Duration::from_millis(20);
        c.order_timeout = Duration::from_secs(5);
        c.request_timeout = Duration::from_millis(1500);
        c.connect_timeout = Duration::from_millis(1000);
        // Records go to the lab's own directory, never to a real state directory.
        c.audit = bankid::audit::AuditSettings::in_dir(self.lab.dir());
        c
    }

    /// Writes a TOML configuration for `bankid_init` / the tools and returns its path.
    pub fn write_toml(&self, extra: &str) -> PathBuf {
        self.lab
            .write_client_toml(&format!(
                "poll_interval_ms = 20\norder_timeout_s = 10\n{extra}"
            ))
            .unwrap()
    }

    /// The simulator's private directory (its certificates in every shape).
    pub fn dir(&self) -> &Path {
        self.lab.dir()
    }
}

#[path = "../support/audit_db.rs"]
pub mod audit_db;

#[path = "../support/prom.rs"]
pub mod prom;
#[allow(unused_imports)] // not every test file that shares this module reads metrics
pub use prom::{families, parse_metrics, sample};
