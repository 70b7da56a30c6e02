//! A real agent server on 127.0.0.1:0 in front of a real bankid-sim (mutual TLS), both in this
//! process, and HTTP clients with cookie jars.
#![allow(dead_code)]

/// Asterisk's side of a FastAGI call (the browser test's IVR records).
pub mod agi;
/// Chromium over WebDriver (only the browser tests use it).
pub mod browser;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use bankid::audit::Database;
use bankid::config::{Config, Identity};
use bankid::order::Engine;
use bankid_agent::accounts::{Accounts, Role};
use bankid_agent::store::AgentDb;
use bankid_agent::{App, Options};
use bankid_sim::{Lab, SimConfig};
use serde_json::{json, Value};

pub const PASSWORD_A: &str = "anna-lösen-1";
pub const PASSWORD_B: &str = "bertil-lösen-2";
pub const PASSWORD_S: &str = "sara-lösen-3";

pub struct Harness {
    pub sim: Lab,
    pub app: Arc<App>,
    pub addr: SocketAddr,
    pub base: String,
    /// The pseudonym key file of the records (in the simulator's private directory).
    pub key_file: PathBuf,
    _task: tokio::task::JoinHandle<()>,
}

/// Where the harness keeps records.
pub enum Records {
    /// Off: sessions and counters in memory, nothing recorded.
    Off,
    /// A fresh SQLite file in the simulator's private directory.
    Sqlite,
    /// A shared database (a `TestDb`) and the pseudonym key every instance on it uses (a
    /// shared database takes no key made on the spot): see [`shared_records`].
    Shared(Database, PathBuf),
}

/// A pseudonym key file for a test database, removed when dropped.
pub struct KeyFile(pub PathBuf);

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Records in the PostgreSQL test database `db`, with a key file of its own (made now, as an
/// operator makes one with `openssl rand -hex 32`). Call again for a second instance.
pub fn shared_records(db: &bankid_sim::testdb::TestDb) -> (Records, KeyFile) {
    let key = std::env::temp_dir().join(format!("{}.key", db.name()));
    bankid::audit::PseudonymKey::load_or_create(&key).expect("a key file");
    (
        Records::Shared(Database::Postgres(db.url().into()), key.clone()),
        KeyFile(key),
    )
}

/// `anna` and `bertil` (agents) and `sara` (supervisor): the same entries (hashes) for every
/// instance of a test process, as instances behind a load balancer read one accounts file — a
/// session is bound to the entry it was made from.
pub fn test_accounts() -> Accounts {
    static ACCOUNTS: std::sync::OnceLock<Accounts> = std::sync::OnceLock::new();
    ACCOUNTS
        .get_or_init(|| {
            Accounts::from_entries(&[
                ("anna", PASSWORD_A, Role::Agent),
                ("bertil", PASSWORD_B, Role::Agent),
                ("sara", PASSWORD_S, Role::Supervisor),
            ])
        })
        .clone()
}

/// Starts the simulator at `speed` and an agent server with agents `anna` and `bertil` and the
/// supervisor `sara`, records off; `adjust` may change the options before the server starts.
pub async fn start(speed: f64, adjust: impl FnOnce(&mut Options)) -> Harness {
    start_recorded(speed, Records::Off, adjust).await
}

/// Like [`start`], with records (sessions, counters, agent events) kept as `records` says.
pub async fn start_recorded(
    speed: f64,
    records: Records,
    adjust: impl FnOnce(&mut Options),
) -> Harness {
    let sim = Lab::start(SimConfig {
        speed,
        ..Default::default()
    })
    .expect("simulator");
    let mut key_file = sim.dir().join("audit.key");
    let mut config = Config::custom(
        &sim.base_url(),
        &sim.ca_file(),
        Identity::Pem {
            cert_file: sim.cert_file(),
            key_file: sim.key_file(),
            key_password: None,
        },
    );
    // Several collects per scenario step, so that tests see every step.
    config.poll_interval = Duration::from_secs_f64((0.5 * speed).clamp(0.01, 2.0));
    // Never a real state directory: the key, the spool and an SQLite file live in the
    // simulator's private directory, removed with it.
    let database = match records {
        Records::Off => None,
        Records::Sqlite => Some(Database::Sqlite(sim.dir().join("audit.db"))),
        Records::Shared(db, key) => {
            key_file = key;
            Some(db)
        }
    };
    config.audit.database = database.clone();
    config.audit.key_file = key_file.clone();
    config.audit.spool_dir = sim.dir().join("audit-spool");
    // As main.rs does: the page's connection migrates a new file before the engine's writer.
    let agent_db = match &database {
        Some(db) => Some(AgentDb::connect(db).await.expect("the audit database")),
        None => None,
    };
    let engine = Engine::new(config).expect("engine");
    let mut opts = Options::new(test_accounts(), engine);
    opts.simulated = Some(bankid_agent::simulator_persons());
    opts.backend_label = "simulator".into();
    opts.database = agent_db;
    adjust(&mut opts);
    let base_path = opts.base_path.clone();
    let app = App::new(opts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    let task = tokio::spawn(async move {
        let _ = bankid_agent::serve(listener, served, None).await;
    });
    Harness {
        sim,
        app,
        addr,
        // The page's base, e.g. http://127.0.0.1:PORT/bankid: paths are appended to it.
        base: if base_path.is_root() {
            format!("http://{addr}")
        } else {
            format!("http://{addr}{base_path}")
        },
        key_file,
        _task: task,
    }
}

/// A browser-like client: a cookie jar, and the CSRF token once logged in.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Harness {
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: self.base.clone(),
            csrf: None,
        }
    }

    /// A client logged in as `name`.
    pub async fn agent(&self, name: &str) -> Client {
        let mut c = self.client();
        let password = match name {
            "anna" => PASSWORD_A,
            "sara" => PASSWORD_S,
            _ => PASSWORD_B,
        };
        let r = c.login(name, password).await;
        assert_eq!(r.status, 200, "login {name}: {}", r.body);
        c
    }
}

impl Harness {
    /// The audit database's pool (records on).
    pub fn pool(&self) -> &sqlx::AnyPool {
        self.app.database().expect("records on").pool()
    }

    /// The pseudonym of `pnr` under the records' key (made when missing, as the page does for
    /// its own SQLite file).
    pub fn pseudonym(&self, pnr: &str) -> String {
        let key = bankid::audit::PseudonymKey::load_or_create(&self.key_file).unwrap();
        key.pseudonym(&bankid::personnummer::Personnummer::parse(pnr).unwrap())
    }

    /// The agent events recorded so far, oldest first: (agent, action, pnr_masked, order_id).
    pub async fn events(&self) -> Vec<(String, String, Option<String>, Option<String>)> {
        use sqlx::Row;
        sqlx::query(
            "SELECT agent, action, pnr_masked, order_id FROM audit_agent_events ORDER BY at, id",
        )
        .fetch_all(self.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("agent"),
                r.get("action"),
                r.get("pnr_masked"),
                r.get("order_id"),
            )
        })
        .collect()
    }
}

/// A record as the engine's writer would store it, for inserting by SQL.
#[derive(Debug, Clone)]
pub struct Rec {
    pub id: String,
    pub finished_at: i64,
    pub duration_ms: i64,
    pub channel: &'static str,
    pub agent: Option<&'static str>,
    pub call_id: Option<&'static str>,
    pub caller_id: Option<&'static str>,
    pub state: &'static str,
    pub hint_code: Option<&'static str>,
    pub error_code: Option<&'static str>,
    pub pnr: &'static str,
    /// BankID's completionData, kept as evidence.
    pub evidence: Option<String>,
}

impl Rec {
    pub fn new(
        n: u32,
        finished_at: i64,
        channel: &'static str,
        state: &'static str,
        pnr: &'static str,
    ) -> Rec {
        Rec {
            id: format!("{n:032x}"),
            finished_at,
            duration_ms: 3_000 + i64::from(n) * 100,
            channel,
            agent: None,
            call_id: None,
            caller_id: None,
            state,
            hint_code: None,
            error_code: None,
            pnr,
            evidence: None,
        }
    }
}

/// Inserts records as the engine's writer does (the same columns, the same pseudonym).
pub async fn insert_records(h: &Harness, records: &[Rec]) {
    for r in records {
        let pnr = bankid::personnummer::Personnummer::parse(r.pnr).unwrap();
        let key = bankid::audit::PseudonymKey::load_or_create(&h.key_file).unwrap();
        sqlx::query(
            "INSERT INTO audit_orders (id, started_at, finished_at, duration_ms, channel, agent, \
             call_id, caller_id, host, mode, call_initiator, state, hint_code, error_code, order_ref, \
             pnr_masked, pnr_pseudonym, pseudonym_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(r.id.clone())
        .bind(r.finished_at - r.duration_ms)
        .bind(r.finished_at)
        .bind(r.duration_ms)
        .bind(r.channel)
        .bind(r.agent)
        .bind(r.call_id)
        .bind(r.caller_id)
        .bind("test-host")
        .bind("identify")
        .bind("user")
        .bind(r.state)
        .bind(r.hint_code)
        .bind(r.error_code)
        .bind(format!("ref-{}", r.id))
        .bind(pnr.masked())
        .bind(key.pseudonym(&pnr))
        .bind(key.id())
        .execute(h.pool())
        .await
        .unwrap();
        if let Some(e) = &r.evidence {
            sqlx::query("INSERT INTO audit_evidence (order_id, completion_data) VALUES ($1, $2)")
                .bind(r.id.clone())
                .bind(e.clone())
                .execute(h.pool())
                .await
                .unwrap();
        }
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Client {
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// The origin of the base: scheme and host, without the base path.
    pub fn origin(&self) -> String {
        let after_scheme = self.base.find("://").map_or(0, |i| i + 3);
        match self.base[after_scheme..].find('/') {
            Some(i) => self.base[..after_scheme + i].to_string(),
            None => self.base.clone(),
        }
    }

    /// A POST as the page sends it: JSON, same-origin, with the CSRF token.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Origin", self.origin())
            .json(&body);
        if let Some(t) = &self.csrf {
            req = req.header("X-CSRF-Token", t);
        }
        self.send(req).await
    }

    pub async fn login(&mut self, name: &str, password: &str) -> Reply {
        let r = self
            .post(
                "/api/login",
                json!({"username": name, "password": password}),
            )
            .await;
        if r.status == 200 {
            self.csrf = r.body["csrf"].as_str().map(str::to_string);
        }
        r
    }

    pub async fn identify(&self, pnr: &str, initiator: &str) -> Reply {
        self.post(
            "/api/identify",
            json!({"personalNumber": pnr, "callInitiator": initiator}),
        )
        .await
    }

    pub async fn order(&self, id: &str) -> Reply {
        self.get(&format!("/api/orders/{id}")).await
    }

    /// Polls the order as the page does until it is final (or 30 s pass).
    pub async fn wait_final(&self, id: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.order(id).await;
            assert_eq!(r.status, 200, "{}", r.body);
            if r.body["state"] != "pending" || Instant::now() > until {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the order is pending with `hint` at BankID.
    pub async fn wait_hint(&self, id: &str, hint: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.order(id).await;
            if r.body["hintCode"] == hint || Instant::now() > until {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[path = "../../../../tests/support/prom.rs"]
pub mod prom;
#[allow(unused_imports)] // not every test file that shares this module reads metrics
pub use prom::{families, parse_metrics, sample};
