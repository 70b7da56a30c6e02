//! Shared set-up for the library's integration tests: a simulator over real mTLS with its
//! certificates written to a fresh directory, and configurations pointing at it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use bankid::config::{Config, Identity};
use bankid_sim::{SimConfig, Simulator};

pub struct Env {
    pub sim: Simulator,
    pub dir: PathBuf,
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "bankid-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A simulator running 100x faster than real time, certificates in a temp dir.
pub fn sim(tag: &str) -> Env {
    sim_with(
        tag,
        SimConfig {
            speed: 0.01,
            ..Default::default()
        },
    )
}

pub fn sim_with(tag: &str, mut cfg: SimConfig) -> Env {
    let dir = temp_dir(tag);
    cfg.certs_dir = Some(dir.clone());
    let sim = Simulator::start(cfg).expect("simulator starts");
    Env { sim, dir }
}

impl Env {
    pub fn pem_identity(&self) -> Identity {
        Identity::Pem {
            cert_file: self.dir.join("client.pem"),
            key_file: self.dir.join("client.key"),
            key_password: None,
        }
    }

    /// Collects every 20 ms, 5 s local deadline, short timeouts.
    pub fn config(&self) -> Config {
        self.config_with(self.pem_identity())
    }

    pub fn config_with(&self, identity: Identity) -> Config {
        let mut c = Config::custom(&self.sim.base_url(), &self.dir.join("ca.pem"), identity);
        c.poll_interval = Duration::from_millis(20);
        c.order_timeout = Duration::from_secs(5);
        c.request_timeout = Duration::from_millis(1500);
        c.connect_timeout = Duration::from_millis(1000);
        c
    }

    /// Writes a TOML configuration for `bankid_init` / the tools and returns its path.
    pub fn write_toml(&self, extra: &str) -> PathBuf {
        let p = self.dir.join("bankid.toml");
        std::fs::write(
            &p,
            format!(
                "url = \"{}\"\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\npoll_interval_ms = 20\norder_timeout_s = 10\n{extra}",
                self.sim.base_url()
            ),
        )
        .unwrap();
        p
    }
}
