//! The engine's metrics, in the Prometheus project's `prometheus-client` registry, exposed as
//! OpenMetrics text ([`crate::Engine::metrics_text`], `bankid_metrics` in C), and the readiness
//! the agent page and the FastAGI server answer `/readyz` with.
//!
//! Updated only off the hot path: by the order tasks (BankID's answers, retries, final states)
//! and by `start` (orders started, anti-vishing refusals). `poll`, `state` and `message` never
//! touch a metric.
//!
//! No label carries personal data: labels are the state, BankID's hint and error codes, the
//! endpoint, the kind of outcome and the refusal reason. Codes BankID may add are open enums;
//! an unknown code keeps its text only when it is short (at most 40 characters of
//! `[A-Za-z0-9_.-]`) and among the first 16 such values seen, else it is counted as `other` — so what a server sends can never grow the exposition without bound.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::order::{OrderError, Refusal, State};
use crate::rp::{ErrorCode, HintCode, RpError};

/// The longest unknown code kept as a label value. (Not `pub`: cbindgen would put every public
/// constant in the C header.)
const MAX_LABEL_LEN: usize = 40;
/// How many distinct unknown values (over all labels) are kept; later ones are `other`.
const MAX_UNKNOWN_LABELS: usize = 16;
/// A failed request to BankID makes the engine not ready for this long, unless a good answer
/// comes first.
pub const READY_FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The content type of [`crate::Engine::metrics_text`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `reason` label of `bankid_refusals_total`, one per [`Refusal`] kind.
const REFUSAL_REASONS: [&str; 4] = [
    "declinedRecently",
    "numberRateLimited",
    "callerRateLimited",
    "saturated",
];

/// Latency buckets in seconds: BankID answers in tens of milliseconds; timeouts are 10 s.
const BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    state: &'static str,
    hint_code: String,
    error_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Which retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A `phone/auth` sent again after BankID's own `maintenance`/`tooManyRequests`.
    Start,
    /// A collect asked again after an overload answer or no answer.
    Collect,
}

/// The client certificate's validity, unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`.
    pub not_before: i64,
    /// `notAfter`.
    pub not_after: i64,
}

impl From<&crate::certinfo::CertInfo> for Validity {
    fn from(c: &crate::certinfo::CertInfo) -> Validity {
        let unix = |t: std::time::SystemTime| match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        Validity {
            not_before: unix(c.not_before),
            not_after: unix(c.not_after),
        }
    }
}

/// Whether the engine can identify callers now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Ready.
    pub ready: bool,
    /// One line for an operator: what is wrong, or what the readiness rests on.
    pub reason: String,
}

/// The last answers, for readiness.
#[derive(Debug, Default)]
struct Last {
    /// Unix milliseconds of the last good answer from BankID (0: none yet).
    ok_ms: i64,
    /// Unix milliseconds of the last failed request, and what it was, while it is the latest.
    failure: Option<(i64, String)>,
}

/// The audit writer's counters ([`crate::audit::Audit`]): one set per writer, shared by every
/// engine that writes through it (a reload keeps the writer, so they do not restart at zero
/// with the engine's).
#[derive(Debug, Clone, Default)]
pub struct AuditMetrics {
    /// Records committed to the database (`bankid_audit_records_written_total`).
    pub written: Counter,
    /// Records waiting in the spool for the database (`bankid_audit_records_spooled`).
    pub spooled: Gauge,
    /// Records lost: spool full (or unwritable) while the database was unreachable, or the
    /// writer's queue full (`bankid_audit_records_lost_total`).
    pub lost: Counter,
    /// Failed database operations: connect, insert, purge, a spool file set aside
    /// (`bankid_audit_write_errors_total`).
    pub write_errors: Counter,
}

/// The engine's metrics. One per engine.
pub struct Metrics {
    registry: Registry,
    started: Counter,
    finished: Family<FinishedLabels, Counter>,
    declined: Counter,
    refused: Family<ReasonLabels, Counter>,
    requests: Family<RequestLabels, Histogram>,
    retries: Family<PhaseLabels, Counter>,
    in_flight: Gauge,
    requests_in_flight: Gauge,
    cert_not_after: Gauge,
    last_success: Gauge,
    validity: Option<Validity>,
    last: Mutex<Last>,
    unknown: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A BankID answer that shows BankID is there and takes our certificate: a 200, or one of its
/// JSON errors about the request itself (`invalidParameters` for an order already gone,
/// `alreadyInProgress`, …). Overload, `internalError`, `unauthorized` (our certificate),
/// `requestTimeout`, a proxy's page and no answer are failures.
fn is_good_answer(e: Option<&RpError>) -> bool {
    match e {
        None => true,
        Some(RpError::Api { code, .. }) => !matches!(
            code,
            ErrorCode::Maintenance
                | ErrorCode::TooManyRequests
                | ErrorCode::InternalError
                | ErrorCode::Unauthorized
                | ErrorCode::RequestTimeout
                | ErrorCode::Unknown(_)
        ),
        Some(_) => false,
    }
}

impl Metrics {
    /// A registry with every metric at zero; `validity` of the client certificate, if read.
    pub fn new(validity: Option<Validity>) -> Metrics {
        let mut registry = Registry::with_prefix("bankid");
        let m = Metrics {
            registry: Registry::default(),
            started: Counter::default(),
            finished: Family::default(),
            declined: Counter::default(),
            refused: Family::default(),
            requests: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            retries: Family::default(),
            in_flight: Gauge::default(),
            requests_in_flight: Gauge::default(),
            cert_not_after: Gauge::default(),
            last_success: Gauge::default(),
            validity,
            last: Mutex::new(Last::default()),
            unknown: Mutex::new(HashSet::new()),
        };
        registry.register(
            "orders_started",
            "Orders sent towards BankID (after the anti-vishing limits admitted them)",
            m.started.clone(),
        );
        registry.register(
            "orders_finished",
            "Orders ended, by final state, BankID's last hint code and the error code (none: absent)",
            m.finished.clone(),
        );
        registry.register(
            "declined_calls",
            "Orders the caller answered no to 'are you on a call with ...?' (userDeclinedCall): a possible fraud attempt",
            m.declined.clone(),
        );
        registry.register(
            "refusals",
            "Starts refused by an anti-vishing limit before reaching BankID, by reason",
            m.refused.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "BankID request latency by endpoint and outcome (ok, BankID's error code, http-NNN, decode, transport, timeout)",
            prometheus_client::registry::Unit::Seconds,
            m.requests.clone(),
        );
        registry.register(
            "retries",
            "Requests to BankID repeated: phase start (phone/auth after maintenance/tooManyRequests) or collect",
            m.retries.clone(),
        );
        registry.register(
            "orders_in_flight",
            "Orders whose task is running: pending, or being cancelled at BankID",
            m.in_flight.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests to BankID in flight now (each holds one pooled TLS connection; at most max_connections)",
            m.requests_in_flight.clone(),
        );
        registry.register(
            "client_certificate_expiry_timestamp_seconds",
            "The client certificate's notAfter, unix seconds (0: not read)",
            m.cert_not_after.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When BankID last gave a good answer, unix seconds (0: not yet)",
            m.last_success.clone(),
        );
        if let Some(v) = validity {
            m.cert_not_after.set(v.not_after);
        }
        // Known label sets exist from the start at 0, so dashboards and alerts see a series
        // (and rate() a first point) before the first event.
        for phase in ["start", "collect"] {
            let _ = m.retries.get_or_create(&PhaseLabels { phase });
        }
        for reason in REFUSAL_REASONS {
            let _ = m.refused.get_or_create(&ReasonLabels { reason });
        }
        Metrics { registry, ..m }
    }

    /// `s` as a label value when it is a known code, or a bounded unknown one; else `other`.
    fn label(&self, s: &str, known: bool) -> String {
        if known {
            return s.to_string();
        }
        let shaped = !s.is_empty()
            && s.len() <= MAX_LABEL_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !shaped {
            return "other".into();
        }
        let mut seen = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(s) || (seen.len() < MAX_UNKNOWN_LABELS && seen.insert(s.to_string())) {
            s.to_string()
        } else {
            "other".into()
        }
    }

    fn hint_label(&self, h: Option<&HintCode>) -> String {
        match h {
            None => "none".into(),
            Some(h) => self.label(h.as_str(), !matches!(h, HintCode::Unknown(_))),
        }
    }

    fn error_label(&self, e: Option<&OrderError>) -> String {
        match e {
            None => "none".into(),
            Some(e) => {
                let known = !matches!(
                    e,
                    OrderError::Api(ErrorCode::Unknown(_)) | OrderError::Http(_)
                );
                self.label(&e.to_string(), known)
            }
        }
    }

    /// An order admitted and sent towards BankID.
    pub(crate) fn order_started(&self) {
        self.started.inc();
        self.in_flight.inc();
    }

    /// An order's task ended with the order in `state`.
    pub(crate) fn order_ended(
        &self,
        state: State,
        hint: Option<&HintCode>,
        error: Option<&OrderError>,
    ) {
        self.in_flight.dec();
        let labels = FinishedLabels {
            state: state.as_str(),
            hint_code: self.hint_label(hint),
            error_code: self.error_label(error),
        };
        self.finished.get_or_create(&labels).inc();
    }

    /// BankID said the caller declined the call.
    pub(crate) fn declined_call(&self) {
        self.declined.inc();
    }

    /// An anti-vishing limit refused a start.
    pub(crate) fn refused(&self, r: &Refusal) {
        let reason = r.reason();
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A request repeated.
    pub(crate) fn retry(&self, r: Retry) {
        let phase = match r {
            Retry::Start => "start",
            Retry::Collect => "collect",
        };
        self.retries.get_or_create(&PhaseLabels { phase }).inc();
    }

    /// One request to BankID took `took` and ended with `err` (`None`: a 200).
    pub(crate) fn request(&self, endpoint: &str, took: Duration, err: Option<&RpError>) {
        let endpoint = match endpoint {
            "phone/auth" => "phone/auth",
            "phone/sign" => "phone/sign",
            "collect" => "collect",
            "cancel" => "cancel",
            "auth" => "auth",
            _ => "other",
        };
        let outcome = match err {
            None => "ok".to_string(),
            Some(RpError::Api { code, .. }) => {
                self.label(code.as_str(), !matches!(code, ErrorCode::Unknown(_)))
            }
            Some(RpError::Http { status }) => self.label(&format!("http-{status}"), false),
            Some(RpError::Decode(_)) => "decode".into(),
            Some(RpError::Transport {
                timed_out: true, ..
            }) => "timeout".into(),
            Some(RpError::Transport { .. }) => "transport".into(),
        };
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .observe(took.as_secs_f64());
        let now = now_ms();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if is_good_answer(err) {
            last.ok_ms = now;
            last.failure = None;
            self.last_success.set(now / 1000);
        } else {
            // BankID's `details` is free text of any length: a line of at most 200 characters
            // without control characters is enough for an operator.
            let what: String = err
                .map(ToString::to_string)
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            last.failure = Some((now, format!("{endpoint}: {what}")));
        }
    }

    /// The client certificate's validity, if it could be read.
    pub fn validity(&self) -> Option<Validity> {
        self.validity
    }

    /// Ready when the client certificate is valid now and the last request to BankID did not
    /// fail within [`READY_FAILURE_WINDOW`] (a good answer since clears a failure; before the
    /// first request the certificate alone decides). A failure older than the window no
    /// longer counts: an idle server is not declared broken by an old hiccup.
    pub fn readiness(&self) -> Readiness {
        let now = now_ms();
        let not = |reason: String| Readiness {
            ready: false,
            reason,
        };
        match self.validity {
            None => return not("the client certificate's validity could not be read".into()),
            Some(v) if now / 1000 < v.not_before => {
                return not(format!(
                    "the client certificate is not valid yet (notBefore {} unix seconds)",
                    v.not_before
                ))
            }
            Some(v) if now / 1000 >= v.not_after => {
                return not(format!(
                    "the client certificate expired (notAfter {} unix seconds)",
                    v.not_after
                ))
            }
            Some(_) => {}
        }
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let ok = last.ok_ms;
        let window = i64::try_from(READY_FAILURE_WINDOW.as_millis()).unwrap_or(i64::MAX);
        if let Some((at, what)) = &last.failure {
            if now - at < window {
                return not(format!(
                    "the last request to BankID failed {} s ago ({what})",
                    (now - at).max(0) / 1000
                ));
            }
        }
        Readiness {
            ready: true,
            reason: if ok == 0 {
                "client certificate valid; no request to BankID yet".into()
            } else {
                format!(
                    "client certificate valid; BankID last answered {} s ago",
                    (now - ok).max(0) / 1000
                )
            },
        }
    }

    /// Registers the client's count of connections opened (`bankid_tls_connections_opened`).
    pub(crate) fn register_connections(
        &mut self,
        opened: prometheus_client::metrics::counter::Counter,
    ) {
        self.registry.register(
            "tls_connections_opened",
            "TCP + TLS connections to BankID the pool opened (how many are open at a time the HTTP client does not tell)",
            opened,
        );
    }

    /// Registers the audit writer's counters (see [`AuditMetrics`]).
    pub(crate) fn register_audit(&mut self, audit: &AuditMetrics) {
        self.registry.register(
            "audit_records_written",
            "Audit records committed to the audit database",
            audit.written.clone(),
        );
        self.registry.register(
            "audit_records_spooled",
            "Audit records waiting in the local spool for the audit database",
            audit.spooled.clone(),
        );
        self.registry.register(
            "audit_records_lost",
            "Audit records lost: the spool full or unwritable while the database was unreachable, or the writer's queue full",
            audit.lost.clone(),
        );
        self.registry.register(
            "audit_write_errors",
            "Failed audit database operations (connect, insert, purge) and spool files set aside",
            audit.write_errors.clone(),
        );
    }

    /// Sets the gauge of requests in flight (read from the client when the text is made).
    pub(crate) fn set_requests_in_flight(&self, n: usize) {
        self.requests_in_flight
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The engine's metrics and then `extra`'s (another component's registry, e.g. the agent
    /// page's), as one OpenMetrics text ending in `# EOF`.
    pub fn encode(&self, extra: Option<&Registry>) -> String {
        use prometheus_client::encoding::text;
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = text::encode_registry(&mut out, &self.registry);
        if let Some(extra) = extra {
            let _ = text::encode_registry(&mut out, extra);
        }
        let _ = text::encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_bounded_in_length_characters_and_count() {
        let m = Metrics::new(None);
        assert_eq!(m.label("userCallConfirm", true), "userCallConfirm");
        assert_eq!(m.label(&"x".repeat(MAX_LABEL_LEN + 1), false), "other");
        assert_eq!(
            m.label("a\"b", false),
            "other",
            "a quote would break the text"
        );
        assert_eq!(m.label("new\nline", false), "other");
        assert_eq!(m.label("", false), "other");
        for i in 0..MAX_UNKNOWN_LABELS {
            assert_eq!(
                m.label(&format!("brandNew{i}"), false),
                format!("brandNew{i}")
            );
        }
        assert_eq!(m.label("oneTooMany", false), "other");
        assert_eq!(
            m.label("brandNew0", false),
            "brandNew0",
            "a kept value stays"
        );
    }

    #[test]
    fn readiness_follows_the_certificate_and_the_last_answer() {
        let now = now_ms() / 1000;
        let valid = Some(Validity {
            not_before: now - 10,
            not_after: now + 1000,
        });
        assert!(!Metrics::new(None).readiness().ready);
        let expired = Metrics::new(Some(Validity {
            not_before: now - 100,
            not_after: now - 1,
        }));
        assert!(expired.readiness().reason.contains("expired"));
        let early = Metrics::new(Some(Validity {
            not_before: now + 100,
            not_after: now + 1000,
        }));
        assert!(!early.readiness().ready);
        let m = Metrics::new(valid);
        assert!(m.readiness().ready, "{}", m.readiness().reason);
        let down = RpError::Transport {
            message: "connection refused".into(),
            timed_out: false,
        };
        m.request("collect", Duration::from_millis(3), Some(&down));
        let r = m.readiness();
        assert!(!r.ready && r.reason.contains("connection refused"), "{r:?}");
        let gone = RpError::Api {
            status: 400,
            code: ErrorCode::InvalidParameters,
            details: String::new(),
            retry_after: None,
        };
        m.request("collect", Duration::from_millis(3), Some(&gone));
        assert!(m.readiness().ready, "BankID answered about the request");
        let busy = RpError::Api {
            status: 503,
            code: ErrorCode::Maintenance,
            details: String::new(),
            retry_after: None,
        };
        m.request("phone/auth", Duration::from_millis(3), Some(&busy));
        assert!(!m.readiness().ready);
        let chatty = RpError::Api {
            status: 500,
            code: ErrorCode::InternalError,
            details: format!("line\n{}", "x".repeat(100_000)),
            retry_after: None,
        };
        m.request("collect", Duration::from_millis(3), Some(&chatty));
        let r = m.readiness();
        assert!(
            !r.ready && r.reason.len() < 400 && !r.reason.contains('\n'),
            "{r:?}"
        );
    }
}
