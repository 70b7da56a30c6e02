//! Metrics text as the Prometheus project's own Python parsers read it (OpenMetrics, strict,
//! and the classic text format; `scripts/parse_metrics.py` in `.venv`): one reader, shared by
//! the library's, the agent page's and the FastAGI server's tests (`#[path]`-included).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One sample: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

fn root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("scripts/parse_metrics.py").exists() {
        assert!(
            dir.pop(),
            "scripts/parse_metrics.py not found above the crate"
        );
    }
    dir
}

/// What the parsers print for `text`. Panics with their message when it is not valid.
fn run(text: &str) -> String {
    let root = root();
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
    String::from_utf8(out.stdout).unwrap()
}

/// Every sample of `text`. Panics with the parser's message when the text is not valid.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    run(text)
        .lines()
        .filter(|l| !l.starts_with("# family\t"))
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().unwrap().to_string();
            let labels = f
                .next()
                .unwrap()
                .split('\x1f')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            let value = f.next().unwrap().parse().unwrap();
            (name, labels, value)
        })
        .collect()
}

/// The family names and types the parsers found (`bankid_orders_started` → `counter`).
pub fn families(text: &str) -> BTreeMap<String, String> {
    run(text)
        .lines()
        .filter_map(|l| l.strip_prefix("# family\t"))
        .map(|l| {
            let (n, t) = l.split_once('\t').unwrap();
            (n.to_string(), t.to_string())
        })
        .collect()
}

/// The value of the sample `name` whose labels include every `(key, value)` of `labels`
/// (summed over the others); 0 when there is none.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
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
