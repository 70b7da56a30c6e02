//! A fresh PostgreSQL database per test, on the cluster `scripts/test.sh` starts
//! (`scripts/pg-test.sh`), named by `BANKID_TEST_POSTGRES` (a superuser URL ending in
//! `/postgres`).
//!
//! There is no fallback: without the variable the test fails and says how to get a cluster,
//! so a PostgreSQL test can never pass by not running.

use rand::Rng;
use std::process::Command;

/// The variable naming the test cluster.
pub const ENV: &str = "BANKID_TEST_POSTGRES";

/// The superuser URL of the test cluster. Panics, saying what to do, when it is not set.
pub fn cluster_url() -> String {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{ENV} is not set: the PostgreSQL tests need a cluster. Run the suite with \
             `bash scripts/test.sh` (it starts one), or `eval \"$(bash scripts/pg-test.sh start)\"` \
             first"
        ),
    }
}

/// A database of its own for one test: `bankid_t_<random>`, created now and dropped (with
/// whatever connections are left) when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    cluster: String,
    url: String,
}

impl TestDb {
    /// Creates a new empty database on the test cluster.
    pub fn new() -> TestDb {
        let cluster = cluster_url();
        let name = format!("bankid_t_{:016x}", rand::rng().random::<u64>());
        psql(&cluster, &format!("CREATE DATABASE {name}"));
        let base = cluster
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .expect("BANKID_TEST_POSTGRES ends in /DATABASE");
        TestDb {
            url: format!("{base}/{name}"),
            name,
            cluster,
        }
    }

    /// The URL of this database (`postgres://user:password@127.0.0.1:PORT/bankid_t_…`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL on the cluster as the superuser (e.g. to cut this database off for an outage
    /// test: `ALTER DATABASE … ALLOW_CONNECTIONS false` and `pg_terminate_backend`).
    pub fn admin(&self, sql: &str) -> String {
        psql(&self.cluster, sql)
    }

    /// Runs SQL in this database and returns what psql printed (unaligned, tuples only).
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Makes the database unreachable for clients (new connections refused, open ones ended),
    /// as an outage looks from here.
    pub fn cut_off(&self) {
        self.admin(&format!(
            "ALTER DATABASE {n} ALLOW_CONNECTIONS false; SELECT count(pg_terminate_backend(pid)) \
             FROM pg_stat_activity WHERE datname = '{n}'",
            n = self.name
        ));
    }

    /// Ends [`TestDb::cut_off`].
    pub fn restore(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            self.name
        ));
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.cluster,
                "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs (postgresql-client; bash scripts/setup.sh)");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_database_is_fresh_usable_and_dropped_afterwards() {
        let db = TestDb::new();
        db.query("CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1)");
        assert_eq!(db.query("SELECT sum(x) FROM t"), "42");
        let name = db.name().to_string();
        let cluster = cluster_url();
        drop(db);
        assert_eq!(
            psql(
                &cluster,
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")
            ),
            "0"
        );
    }

    #[test]
    fn a_cut_off_database_refuses_connections_until_restored() {
        let db = TestDb::new();
        db.cut_off();
        let refused = Command::new("psql")
            .args(["-X", "-d", db.url(), "-c", "SELECT 1"])
            .output()
            .unwrap();
        assert!(!refused.status.success());
        db.restore();
        assert_eq!(db.query("SELECT 1"), "1");
    }
}
