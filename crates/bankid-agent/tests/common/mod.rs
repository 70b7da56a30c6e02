//! A real agent server on 127.0.0.1:0 in front of a real bankid-sim (mutual TLS), both in this
//! process, and HTTP clients with cookie jars.
#![allow(dead_code)]

/// Chromium over WebDriver (only the browser tests use it).
pub mod browser;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bankid::config::{Config, Identity};
use bankid::order::Engine;
use bankid_agent::accounts::Accounts;
use bankid_agent::{App, Options};
use bankid_sim::{Lab, SimConfig};
use serde_json::{json, Value};

pub const PASSWORD_A: &str = "anna-lösen-1";
pub const PASSWORD_B: &str = "bertil-lösen-2";

pub struct Harness {
    pub sim: Lab,
    pub app: Arc<App>,
    pub addr: SocketAddr,
    pub base: String,
    _task: tokio::task::JoinHandle<()>,
}

/// Starts the simulator at `speed` and an agent server with agents `anna` and `bertil`;
/// `adjust` may change the options before the server starts.
pub async fn start(speed: f64, adjust: impl FnOnce(&mut Options)) -> Harness {
    let sim = Lab::start(SimConfig {
        speed,
        ..Default::default()
    })
    .expect("simulator");
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
    // Records in the simulator's directory, never in a real state directory.
    config.audit = bankid::audit::AuditSettings::in_dir(sim.dir());
    let engine = Engine::new(config).expect("engine");
    let accounts = Accounts::from_pairs(&[("anna", PASSWORD_A), ("bertil", PASSWORD_B)]);
    let mut opts = Options::new(accounts, engine);
    opts.simulated = Some(bankid_agent::simulator_persons());
    opts.backend_label = "simulator".into();
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
        let password = if name == "anna" {
            PASSWORD_A
        } else {
            PASSWORD_B
        };
        let r = c.login(name, password).await;
        assert_eq!(r.status, 200, "login {name}: {}", r.body);
        c
    }
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
