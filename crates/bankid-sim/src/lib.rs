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
pub mod lab;
pub mod orders;
pub mod scenario;
mod server;
pub mod testdb;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use certs::{SimCerts, CLIENT_PASSWORD};
pub use lab::Lab;
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
    /// A connection that has not finished its TLS handshake by then is dropped (10 s).
    pub handshake_timeout: Duration,
    /// Request bodies larger than this are refused with 413 and the connection closed (256 KiB).
    pub max_body_bytes: usize,
}

/// Default [`SimConfig::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`SimConfig::max_body_bytes`]: 256 KiB. The largest valid request, a `sign` with
/// 40 000 characters of `userVisibleData` and 200 000 of `userNonVisibleData`, is about 235 KiB;
/// 64 KiB would refuse requests BankID accepts.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: 1.0,
            latency_ms: 0,
            order_lifetime: Duration::from_secs(180),
            certs_dir: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// A fault to inject into the RP API (`/rp/v6.0/`). Two families:
///
/// - **Errors and transport faults** strike a request *before* the simulator handles it: the
///   request never reaches the order book (a struck `phone/auth` creates no order, a struck
///   `collect` does not consume a final status).
/// - **Answer shapes** ([`FaultKind::is_answer_shape`]) apply to `collect` only, *after* the
///   real answer was computed, and rewrite it. [`FaultKind::needs_complete`] shapes only match a
///   `collect` whose real answer is `complete`: injected while an order is pending they wait (no
///   skip or count is used) until a `complete` answer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// 503 `maintenance`.
    Maintenance,
    /// 500 `internalError`.
    InternalError,
    /// 408 `requestTimeout`.
    RequestTimeout,
    /// 429 `tooManyRequests` with `RateLimit-Limit/Remaining/Reset` headers (see
    /// [`Fault::reset_s`], [`Fault::retry_after_s`]).
    TooManyRequests,
    /// 401 `unauthorized` (BankID: certificate or agreement problem).
    Unauthorized,
    /// 400 with an `errorCode` BankID does not have today (`someFutureError`, or [`Fault::value`]).
    UnknownErrorCode,
    /// 403 with an HTML body, as a proxy would send.
    Html403,
    /// 502 with an HTML body, as a proxy would send.
    Html502,
    /// 503 with an HTML body, as a proxy would send (not BankID's JSON `maintenance`).
    Html503,
    /// 429 with an HTML body, as a proxy would send (not BankID's JSON `tooManyRequests`).
    Html429,
    /// 200 with a body that is not valid JSON.
    MalformedJson,
    /// Answer normally, but only after `delay_ms`.
    Delay,
    /// Close the connection without answering.
    Drop,
    /// Shape: `{"orderRef", "status": "paused"}` (or [`Fault::value`]), no `hintCode`, instead
    /// of any collect answer; the order's real status is not consumed.
    UnknownStatus,
    /// Shape: `{"orderRef", "status": "pending", "hintCode": "someFutureHint"}` (or
    /// [`Fault::value`]) instead of any collect answer; the real status is not consumed.
    UnknownHintCode,
    /// Shape: the real collect answer with unknown extra fields at every level it has (top,
    /// `completionData`, `user`, `device`, `stepUp`).
    ExtraFields,
    /// Shape, `complete` only: `givenName`, `surname`, `device.uhi` and `stepUp` are `null`.
    NullFields,
    /// Shape, `complete` only: `user.personalNumber` is another valid number (`199908072391`, or
    /// [`Fault::value`]; `196801642395` when the order is for 199908072391).
    OtherPerson,
    /// Shape, `complete` only: `user.personalNumber` is `"19ÅÄÖ"` (or [`Fault::value`]).
    BadPersonalNumber,
    /// Shape, `complete` only: `user` has no `personalNumber`.
    MissingPersonalNumber,
}

impl FaultKind {
    /// Every kind, in the order the README lists them.
    pub const ALL: [FaultKind; 20] = [
        FaultKind::Maintenance,
        FaultKind::InternalError,
        FaultKind::RequestTimeout,
        FaultKind::TooManyRequests,
        FaultKind::Unauthorized,
        FaultKind::UnknownErrorCode,
        FaultKind::Html403,
        FaultKind::Html502,
        FaultKind::Html503,
        FaultKind::Html429,
        FaultKind::MalformedJson,
        FaultKind::Delay,
        FaultKind::Drop,
        FaultKind::UnknownStatus,
        FaultKind::UnknownHintCode,
        FaultKind::ExtraFields,
        FaultKind::NullFields,
        FaultKind::OtherPerson,
        FaultKind::BadPersonalNumber,
        FaultKind::MissingPersonalNumber,
    ];

    /// The name on the wire (`tooManyRequests`, …).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Rewrites a real `collect` answer instead of replacing the request's handling.
    pub fn is_answer_shape(self) -> bool {
        matches!(
            self,
            FaultKind::UnknownStatus
                | FaultKind::UnknownHintCode
                | FaultKind::ExtraFields
                | FaultKind::NullFields
                | FaultKind::OtherPerson
                | FaultKind::BadPersonalNumber
                | FaultKind::MissingPersonalNumber
        )
    }

    /// Only matches a `collect` whose real answer is `complete`.
    pub fn needs_complete(self) -> bool {
        matches!(
            self,
            FaultKind::NullFields
                | FaultKind::OtherPerson
                | FaultKind::BadPersonalNumber
                | FaultKind::MissingPersonalNumber
        )
    }

    pub(crate) fn takes_rate_headers(self) -> bool {
        matches!(
            self,
            FaultKind::TooManyRequests
                | FaultKind::Maintenance
                | FaultKind::Html429
                | FaultKind::Html503
        )
    }

    fn takes_value(self) -> bool {
        matches!(
            self,
            FaultKind::UnknownErrorCode
                | FaultKind::UnknownStatus
                | FaultKind::UnknownHintCode
                | FaultKind::OtherPerson
                | FaultKind::BadPersonalNumber
        )
    }
}

/// The longest [`FaultKind::Delay`] accepted: 10 minutes.
pub const MAX_DELAY_MS: u64 = 600_000;

/// A fault, where it strikes and how often.
///
/// Every request the fault *could* strike (its endpoint, and for shapes the right kind of
/// answer) is a matching request. The first `skip` matching requests pass (they are counted even
/// when another fault strikes them); the next `count` are struck. Faults are kept in the order
/// they were injected; when several could strike one request, the oldest does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// How many matching requests it strikes (at least 1).
    pub count: u32,
    /// How many matching requests pass before it strikes (e.g. 2: the third collect).
    pub skip: u32,
    /// Only requests to this endpoint (`collect`, `phone/auth`, …); all when absent.
    pub endpoint: Option<String>,
    /// For [`FaultKind::Delay`]: at most [`MAX_DELAY_MS`].
    pub delay_ms: u64,
    /// `RateLimit-Reset` to send, verbatim (`tooManyRequests`: `1` when neither this nor
    /// `retry_after_s` is set; `maintenance`, `html429`, `html503`: none by default).
    pub reset_s: Option<String>,
    /// `Retry-After` to send, verbatim (none by default).
    pub retry_after_s: Option<String>,
    /// The unknown `errorCode` / `status` / `hintCode`, or the `personalNumber` to send.
    pub value: Option<String>,
    /// Only requests about this person: a start with this `personalNumber` (top level or
    /// `requirement.personalNumber`), or a `collect`/`cancel` of one of their orders.
    pub personal_number: Option<String>,
}

/// The fields `POST /sim/faults` accepts.
pub const FAULT_FIELDS: [&str; 9] = [
    "kind",
    "count",
    "skip",
    "endpoint",
    "delayMs",
    "resetS",
    "retryAfterS",
    "value",
    "personalNumber",
];

impl Fault {
    /// `kind` for the next `count` requests to any endpoint.
    pub fn new(kind: FaultKind, count: u32) -> Fault {
        Fault {
            kind,
            count,
            skip: 0,
            endpoint: None,
            delay_ms: 0,
            reset_s: None,
            retry_after_s: None,
            value: None,
            personal_number: None,
        }
    }
    /// Restricts the fault to requests about one person (see [`Fault::personal_number`]).
    pub fn for_person(mut self, personal_number: &str) -> Fault {
        self.personal_number = Some(personal_number.to_string());
        self
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
    /// Lets `n` matching requests pass first.
    pub fn skip(mut self, n: u32) -> Fault {
        self.skip = n;
        self
    }
    /// The `RateLimit-Reset` value, in seconds (0 and `u64::MAX` are sent as they are).
    pub fn reset_s(mut self, s: u64) -> Fault {
        self.reset_s = Some(s.to_string());
        self
    }
    /// Any `RateLimit-Reset` header value, verbatim (e.g. `"soon"`, `"-1"`).
    pub fn reset_header(mut self, v: &str) -> Fault {
        self.reset_s = Some(v.to_string());
        self
    }
    /// The `Retry-After` value, in seconds.
    pub fn retry_after_s(mut self, s: u64) -> Fault {
        self.retry_after_s = Some(s.to_string());
        self
    }
    /// The unknown code, status or hint, or the personal number a shape sends.
    pub fn value(mut self, v: &str) -> Fault {
        self.value = Some(v.to_string());
        self
    }

    /// Reads `POST /sim/faults`'s body, naming exactly what is wrong.
    pub fn from_json(v: &serde_json::Value) -> Result<Fault, String> {
        use serde_json::Value;
        let obj = v.as_object().ok_or("the fault must be a JSON object")?;
        if let Some(k) = obj.keys().find(|k| !FAULT_FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field {k:?}; a fault has {}",
                FAULT_FIELDS.join(", ")
            ));
        }
        let kind_name = match obj.get("kind") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("kind must be a string".into()),
            None => return Err("missing kind".into()),
        };
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == kind_name)
            .ok_or_else(|| {
                let all: Vec<String> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind {kind_name:?}; kinds: {}", all.join(", "))
            })?;
        let whole = |key: &str, default: u64, max: u64| -> Result<u64, String> {
            match obj.get(key) {
                None => Ok(default),
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(x) if x <= max => Ok(x),
                    _ => Err(format!(
                        "{key} must be a whole number from 0 to {max}, got {n}"
                    )),
                },
                Some(other) => Err(format!("{key} must be a whole number, got {other}")),
            }
        };
        let header = |key: &str| -> Result<Option<String>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "{key} must be a whole number of seconds from 0 to {} or a header value string, got {other}",
                    u64::MAX
                )),
            }
        };
        let fault = Fault {
            kind,
            count: whole("count", 1, u64::from(u32::MAX))? as u32,
            skip: whole("skip", 0, u64::from(u32::MAX))? as u32,
            endpoint: match obj.get("endpoint") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => return Err(format!("endpoint must be a string, got {other}")),
            },
            delay_ms: whole("delayMs", 0, MAX_DELAY_MS)?,
            reset_s: header("resetS")?,
            retry_after_s: header("retryAfterS")?,
            value: match obj.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => return Err(format!("value must be a string, got {other}")),
            },
            personal_number: match obj.get("personalNumber") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => return Err(format!("personalNumber must be a string, got {other}")),
            },
        };
        fault.check()?;
        Ok(fault)
    }

    /// Whether the fault makes sense; what is wrong if not.
    pub fn check(&self) -> Result<(), String> {
        let kind = self.kind.name();
        if self.count == 0 {
            return Err(format!(
                "count must be at least 1 (the number of requests the fault strikes), got 0 for {kind}"
            ));
        }
        if let Some(ep) = &self.endpoint {
            if !api::ENDPOINTS.contains(&ep.as_str()) {
                return Err(format!(
                    "endpoint {ep:?} is not an RP API endpoint; endpoints: {}",
                    api::ENDPOINTS.join(", ")
                ));
            }
            if self.kind.is_answer_shape() && ep != "collect" {
                return Err(format!(
                    "{kind} rewrites collect answers: endpoint must be collect or absent"
                ));
            }
        }
        if let Some(p) = &self.personal_number {
            scenario::check_personal_number(p).map_err(|e| format!("{e} (the fault's filter)"))?;
        }
        if self.delay_ms > MAX_DELAY_MS {
            return Err(format!(
                "delayMs must be at most {MAX_DELAY_MS}, got {}",
                self.delay_ms
            ));
        }
        if self.delay_ms > 0 && self.kind != FaultKind::Delay {
            return Err(format!("delayMs only applies to delay, not {kind}"));
        }
        for (key, v) in [
            ("resetS", &self.reset_s),
            ("retryAfterS", &self.retry_after_s),
        ] {
            let Some(v) = v else { continue };
            if !self.kind.takes_rate_headers() {
                return Err(format!(
                    "{key} only applies to tooManyRequests, maintenance, html429 and html503, not {kind}"
                ));
            }
            if v.is_empty() || v.len() > 100 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(format!(
                    "{key} must be 1 to 100 visible ASCII characters (a header value), got {v:?}"
                ));
            }
        }
        if let Some(v) = &self.value {
            if !self.kind.takes_value() {
                return Err(format!(
                    "value only applies to unknownErrorCode, unknownStatus, unknownHintCode, otherPerson and badPersonalNumber, not {kind}"
                ));
            }
            if v.len() > 1000 {
                return Err("value must be at most 1000 bytes".into());
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Fault::from_json(&v).map_err(serde::de::Error::custom)
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
    /// Connections dropped because the TLS handshake did not finish in time (also counted in
    /// `refused_handshakes`).
    pub handshake_timeouts: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub handshakes: AtomicU64,
    pub refused: AtomicU64,
    pub requests: AtomicU64,
    pub handshake_timeouts: AtomicU64,
}

pub(crate) struct Shared {
    pub book: Mutex<orders::Book>,
    /// The `completionData` of the last [`SENT_KEPT`] complete collect answers, as sent.
    pub sent: Mutex<std::collections::VecDeque<(String, serde_json::Value)>>,
    pub faults: Mutex<Vec<Fault>>,
    pub timing: orders::Timing,
    pub latency: Duration,
    pub counters: Counters,
    pub handshake_timeout: Duration,
    pub max_body_bytes: usize,
}

impl Shared {
    /// Offers a request to the faults: every fault `matches` accepts sees it (a skipping fault
    /// counts it as passed), and the oldest armed one strikes it. A fault is dropped after its
    /// last strike.
    pub(crate) fn take_fault(&self, matches: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let mut struck: Option<usize> = None;
        for (i, f) in faults.iter_mut().enumerate() {
            if !matches(f) {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
            } else if struck.is_none() {
                struck = Some(i);
            }
        }
        let i = struck?;
        let f = faults[i].clone();
        // count >= 1 is checked when a fault is injected; saturate anyway.
        faults[i].count = faults[i].count.saturating_sub(1);
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
            sent: Mutex::new(std::collections::VecDeque::new()),
            faults: Mutex::new(Vec::new()),
            timing: orders::Timing {
                speed,
                lifetime: scale(config.order_lifetime),
                keep_complete: scale(Duration::from_secs(180)),
                keep_failed: scale(Duration::from_secs(300)),
            },
            latency: Duration::from_millis(config.latency_ms),
            counters: Counters::default(),
            handshake_timeout: config.handshake_timeout,
            max_body_bytes: config.max_body_bytes,
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
    /// The `bankIdIssueDate` a personal number's completed orders carry, verbatim (e.g. the
    /// date-only `2024-01-15`); `None` restores the default `2024-01-15Z`.
    pub fn set_issue_date(&self, personal_number: &str, date: Option<&str>) {
        self.shared
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_issue_date(personal_number, date.map(str::to_string));
    }
    /// Back to the built-in behaviour for a personal number (scenario and issue date).
    pub fn clear_scenario(&self, personal_number: &str) {
        let mut book = self.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        book.set_scenario(personal_number, None);
        book.set_issue_date(personal_number, None);
    }
    /// Injects a fault into the next matching requests.
    ///
    /// # Panics
    /// When the fault is invalid (e.g. `count` 0); [`Simulator::try_inject_fault`] returns why.
    pub fn inject_fault(&self, fault: Fault) {
        if let Err(e) = self.try_inject_fault(fault) {
            panic!("bankid-sim: invalid fault: {e}");
        }
    }
    /// Injects a fault, or says what is wrong with it (as `POST /sim/faults` does).
    pub fn try_inject_fault(&self, fault: Fault) -> Result<(), String> {
        fault.check()?;
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
        Ok(())
    }
    /// The faults still waiting to strike (with what is left of `skip` and `count`), oldest first.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Removes every fault still waiting.
    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
    /// Every order with its state, oldest first.
    pub fn orders(&self) -> Vec<OrderInfo> {
        self.shared
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list(&self.shared.timing)
    }
    /// The `completionData` the simulator sent for `order_ref`, exactly as sent (after any
    /// answer-shape fault), if it answered `complete` for it (the last [`SENT_KEPT`] kept). In
    /// the process only, never on the control API: it holds the whole personal number.
    pub fn completion_sent(&self, order_ref: &str) -> Option<serde_json::Value> {
        self.shared
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|(r, _)| r == order_ref)
            .map(|(_, v)| v.clone())
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

/// How many sent completionData [`Simulator::completion_sent`] remembers.
pub const SENT_KEPT: usize = 10_000;

impl Shared {
    /// Remembers what a complete collect answer sent.
    pub(crate) fn note_sent(&self, answer: &serde_json::Value) {
        let (Some(r), Some(cd)) = (
            answer.get("orderRef").and_then(serde_json::Value::as_str),
            answer.get("completionData"),
        ) else {
            return;
        };
        if answer.get("status").and_then(serde_json::Value::as_str) != Some("complete") {
            return;
        }
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent.len() >= SENT_KEPT {
            sent.pop_front();
        }
        sent.push_back((r.to_string(), cd.clone()));
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            handshakes: self.counters.handshakes.load(Ordering::Relaxed),
            refused_handshakes: self.counters.refused.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            handshake_timeouts: self.counters.handshake_timeouts.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}
