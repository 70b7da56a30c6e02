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

/// Metrics text as the Prometheus project's own Python parsers read it (OpenMetrics, strict,
/// and the classic text format; `scripts/parse_metrics.py`): every sample as
/// `(name, labels, value)`. Panics with the parser's message when the text is not valid.
pub fn parse_metrics(text: &str) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/setup.sh` (it installs prometheus_client from \
         scripts/requirements-peers.txt)",
        python.display()
    );
    let mut child = std::process::Command::new(&python)
        .arg(root.join("scripts/parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n--- the text:\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (
                s[0].as_str().unwrap().to_string(),
                labels,
                s[2].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The value of the sample `name` whose labels include every `(key, value)` of `labels`
/// (summed over the others); 0 when there is none.
pub fn sample(
    samples: &[(String, std::collections::BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}
