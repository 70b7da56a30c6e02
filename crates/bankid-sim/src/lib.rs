//! bankid-sim: a BankID Relying Party API v6 simulator with mutual TLS.
//!
//! Start it in-process with [`Simulator::start`]; it runs on its own background thread and
//! tokio runtime, so sync code (tests, other binaries) needs no runtime of its own.
//!
//! ```no_run
//! let sim = bankid_sim::Simulator::start(bankid_sim::SimConfig { speed: 0.01, ..Default::default() }).unwrap();
//! println!("{}", sim.base_url()); // https://127.0.0.1:PORT/rp/v6.0/
//! ```
//!
//! Control from Rust: [`Simulator::set_scenario`], [`Simulator::inject_fault`],
//! [`Simulator::orders`], [`Simulator::stats`]; the same over HTTP under `/sim/` (see README).

pub mod api;
pub mod certs;
pub mod orders;
pub mod scenario;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use certs::{SimCerts, CLIENT_PASSWORD};
pub use orders::OrderInfo;
pub use scenario::{Scenario, Step, TestPerson, TEST_PERSONS};
use serde::{Deserialize, Serialize};

/// How the simulator runs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Multiplies every scenario duration, order lifetime and retention time (0.01 → 100× faster).
    pub speed: f64,
    /// Added to every `/rp/v6.0/` response, like a real round trip to BankID.
    pub latency_ms: u64,
    /// Order lifetime until `expiredTransaction`, before `speed`.
    pub order_lifetime: Duration,
    /// Reuse or write the certificates here.
    pub certs_dir: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: 1.0,
            latency_ms: 0,
            order_lifetime: Duration::from_secs(180),
            certs_dir: None,
        }
    }
}

/// A fault to inject into the next requests to `/rp/v6.0/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// 503 `maintenance`.
    Maintenance,
    /// 500 `internalError`.
    InternalError,
    /// 408 `requestTimeout`.
    RequestTimeout,
    /// 429 `tooManyRequests` with `RateLimit-Limit/Remaining/Reset` headers.
    TooManyRequests,
    /// 403 with an HTML body, as a proxy would send.
    Html403,
    /// 200 with a body that is not valid JSON.
    MalformedJson,
    /// Answer normally, but only after `delay_ms`.
    Delay,
    /// Close the connection without answering.
    Drop,
}

/// A fault and how often it strikes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// For how many of the next matching requests.
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests to this endpoint (`collect`, `phone/auth`, …); all when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// For [`FaultKind::Delay`].
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// `kind` for the next `count` requests to any endpoint.
    pub fn new(kind: FaultKind, count: u32) -> Fault {
        Fault {
            kind,
            count,
            endpoint: None,
            delay_ms: 0,
        }
    }
    /// Restricts the fault to one endpoint.
    pub fn on(mut self, endpoint: &str) -> Fault {
        self.endpoint = Some(endpoint.to_string());
        self
    }
    /// Sets the delay of a [`FaultKind::Delay`].
    pub fn delay(mut self, ms: u64) -> Fault {
        self.delay_ms = ms;
        self
    }
}

/// Counters since start.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Completed TLS handshakes (accepted connections).
    pub handshakes: u64,
    /// Handshakes refused (no or untrusted client certificate, …).
    pub refused_handshakes: u64,
    /// HTTP requests answered or dropped.
    pub requests: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub handshakes: AtomicU64,
    pub refused: AtomicU64,
    pub requests: AtomicU64,
}

pub(crate) struct Shared {
    pub book: Mutex<orders::Book>,
    pub faults: Mutex<Vec<Fault>>,
    pub timing: orders::Timing,
    pub latency: Duration,
    pub counters: Counters,
}

impl Shared {
    /// Takes one strike of the first fault matching `endpoint`.
    pub(crate) fn take_fault(&self, endpoint: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let i = faults
            .iter()
            .position(|f| f.endpoint.as_deref().is_none_or(|e| e == endpoint))?;
        let f = faults[i].clone();
        faults[i].count -= 1;
        if faults[i].count == 0 {
            faults.remove(i);
        }
        Some(f)
    }
}

/// An error starting the simulator.
#[derive(Debug)]
pub struct SimError(pub String);

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for SimError {}

/// A running simulator. Stops on [`Simulator::shutdown`] or drop.
pub struct Simulator {
    addr: SocketAddr,
    certs: SimCerts,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Generates (or loads) certificates, binds, and serves on a background thread.
    pub fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let certs = match &config.certs_dir {
            Some(d) => SimCerts::load_or_generate(d),
            None => SimCerts::generate(),
        }
        .map_err(|e| SimError(e.to_string()))?;
        let tls = certs.server_config().map_err(|e| SimError(e.to_string()))?;
        let speed = if config.speed > 0.0 {
            config.speed
        } else {
            1.0
        };
        let scale = |d: Duration| d.mul_f64(speed);
        let shared = Arc::new(Shared {
            book: Mutex::new(orders::Book::default()),
            faults: Mutex::new(Vec::new()),
            timing: orders::Timing {
                speed,
                lifetime: scale(config.order_lifetime),
                keep_complete: scale(Duration::from_secs(180)),
                keep_failed: scale(Duration::from_secs(300)),
            },
            latency: Duration::from_millis(config.latency_ms),
            counters: Counters::default(),
        });
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|e| SimError(format!("cannot listen on {}: {e}", config.listen)))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| SimError(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| SimError(e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bankid-sim")
            .enable_all()
            .build()
            .map_err(|e| SimError(format!("tokio runtime: {e}")))?;
        let shared2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bankid-sim".into())
            .spawn(move || {
                runtime.block_on(server::serve(listener, Arc::new(tls), shared2, stop_rx));
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| SimError(e.to_string()))?;
        Ok(Simulator {
            addr,
            certs,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `https://127.0.0.1:PORT/rp/v6.0/`
    pub fn base_url(&self) -> String {
        format!("https://{}/rp/v6.0/", self.addr)
    }
    /// `https://127.0.0.1:PORT/sim/`
    pub fn control_url(&self) -> String {
        format!("https://{}/sim/", self.addr)
    }
    /// The PKI (CA to trust, client identity in every shape).
    pub fn certs(&self) -> &SimCerts {
        &self.certs
    }
    /// Writes the certificate files into `dir` (see [`certs::FILES`]).
    pub fn write_certs(&mut self, dir: &Path) -> Result<(), SimError> {
        self.certs.write(dir).map_err(|e| SimError(e.to_string()))
    }
    /// Sets the scenario for every later order of a personal number.
    pub fn set_scenario(&self, personal_number: &str, scenario: Scenario) {
        self.shared
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_scenario(personal_number, Some(scenario));
    }
    /// Back to the built-in behaviour for a personal number.
    pub fn clear_scenario(&self, personal_number: &str) {
        self.shared
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_scenario(personal_number, None);
    }
    /// Injects a fault into the next matching requests.
    pub fn inject_fault(&self, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }
    /// Every order with its state, oldest first.
    pub fn orders(&self) -> Vec<OrderInfo> {
        self.shared
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list(&self.shared.timing)
    }
    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
    /// Stops serving and joins the thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }
    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            handshakes: self.counters.handshakes.load(Ordering::Relaxed),
            refused_handshakes: self.counters.refused.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}
