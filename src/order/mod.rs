//! The order engine: starts phone orders, collects them in the background on a small internal
//! runtime, applies BankID's retry rules and a local deadline, and keeps each order's latest
//! state for lookups that never block on I/O.
//!
//! - [`handles`]: ids that never name a different order for the life of the process.
//! - `task`: one order's start and collect phases, and its cancel at BankID when it ends here.
//! - [`limits`]: anti-vishing limits applied before anything reaches BankID.
//! - [`reload`]: a new configuration for new orders while running ones finish on the old.
//! - [`result_text`]: the agent-visible result line from the configured templates.

pub mod handles;
pub mod limits;
pub mod reload;
pub mod result_text;
mod task;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::audit::record::{host_name, tag};
use crate::audit::writer::AuditUse;
use crate::audit::{Audit, CallContext, Evidence, Failure, PseudonymKey, Record, RecordId, UnixMs};
use crate::config::{Config, ConfigError};
use crate::messages::{self, Guidance, Language, Message};
use crate::metrics::{Metrics, Readiness};
use crate::personnummer::{Personnummer, PnrError};
use crate::rp::{
    self, CallInitiator, CompletionData, ErrorCode, HintCode, PhoneAuthRequest, Requirement,
    RpClient, RpError, StepUp, VisibleDataFormat,
};
use handles::HandleTable;
pub use limits::{LimitSettings, Limits, Refusal};
pub use reload::Reloadable;

/// The most time a cancel at BankID may take when an order ends here (shutdown waits for it).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long [`Engine::shutdown`] waits for the orders' tasks to tell BankID, in all.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// An order handle. 0 is never valid; an id is never reused in the process (see [`handles`]).
pub type OrderId = u64;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Being started, or pending at BankID: keep prompting.
    Pending = 1,
    /// Identified.
    Complete = 2,
    /// BankID said failed (user cancelled, declined the call, expired, …) or cancelled here.
    Failed = 3,
    /// No usable answer: a BankID error code, no connection, or the local deadline.
    Error = 4,
}

impl State {
    /// Whether the order is final.
    pub fn is_final(self) -> bool {
        self != State::Pending
    }

    /// `pending`, `complete`, `failed`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Complete => "complete",
            State::Failed => "failed",
            State::Error => "error",
        }
    }
}

/// The engine's errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The configuration cannot be used.
    Config(ConfigError),
    /// The personal number is not valid.
    InvalidPersonalNumber(PnrError),
    /// The id was never issued, or was released.
    StaleHandle,
    /// `max_orders` reached.
    TooManyOrders,
    /// An option is out of range.
    InvalidArgument(String),
    /// The background runtime could not be made.
    Runtime(String),
    /// The engine was shut down.
    ShutDown,
    /// An anti-vishing limit refused the start; nothing was sent to BankID.
    Refused(Refusal),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(e) => write!(f, "configuration: {e}"),
            Error::InvalidPersonalNumber(e) => write!(f, "invalid personal number: {e}"),
            Error::StaleHandle => f.write_str("no such order (never issued, or already released)"),
            Error::TooManyOrders => f.write_str("too many orders at once (max_orders)"),
            Error::InvalidArgument(e) => write!(f, "invalid argument: {e}"),
            Error::Runtime(e) => write!(f, "background runtime: {e}"),
            Error::ShutDown => f.write_str("the engine is shut down"),
            Error::Refused(r) => write!(f, "refused: {r}"),
        }
    }
}
impl std::error::Error for Error {}

/// Identify the caller (`phone/auth`) or have them sign a text (`phone/sign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `phone/auth`.
    #[default]
    Identify,
    /// `phone/sign`: the caller approves `user_visible_data` (required).
    Sign,
}

impl Mode {
    /// `identify` or `sign`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Identify => "identify",
            Mode::Sign => "sign",
        }
    }

    /// `identify` or `sign` (case-insensitive).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "identify" => Some(Mode::Identify),
            "sign" => Some(Mode::Sign),
            _ => None,
        }
    }
}

/// Per-order options.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Identify (default) or sign.
    pub mode: Mode,
    /// `user` (the caller called us) or `RP`; the configured default when `None`.
    pub call_initiator: Option<CallInitiator>,
    /// Text shown in the BankID app (UTF-8; encoded here). Required to sign: it is what the
    /// caller approves.
    pub user_visible_data: Option<String>,
    /// How the app renders the text (plain when `None`).
    pub user_visible_data_format: Option<VisibleDataFormat>,
    /// Data signed along with the text but not shown (UTF-8; encoded here).
    pub user_non_visible_data: Option<String>,
    /// Requirements on the user's BankID.
    pub requirement: Option<Requirement>,
    /// The caller ID of the call (e.g. Asterisk's `agi_callerid`), for the per-caller limit.
    pub caller_id: Option<String>,
    /// The entry point, agent and call identifier, for the audit record.
    pub context: crate::audit::CallContext,
}

impl StartOptions {
    /// Asks for the security code even if the caller uses biometrics (`requirement.pinCode`).
    pub fn require_pin_code(mut self) -> StartOptions {
        self.requirement
            .get_or_insert_with(Requirement::default)
            .pin_code = Some(true);
        self
    }

    /// Asks for an extra check of the caller's passport or national ID card
    /// (`requirement.mrtd`).
    pub fn require_id_document(mut self) -> StartOptions {
        self.requirement
            .get_or_insert_with(Requirement::default)
            .mrtd = Some(true);
        self
    }

    /// The request body, with BankID's rules checked here first: a text to sign, and the
    /// lengths after base64 for the endpoint. Errors name the field, never its content.
    fn request(
        &self,
        pnr: &Personnummer,
        default: CallInitiator,
    ) -> Result<PhoneAuthRequest, Error> {
        let sign = self.mode == Mode::Sign;
        let pick = |(auth, sign_max): (usize, usize)| if sign { sign_max } else { auth };
        if sign && self.user_visible_data.is_none() {
            return Err(Error::InvalidArgument(
                "signing needs userVisibleData: the text the caller approves".into(),
            ));
        }
        if self.user_visible_data_format.is_some() && self.user_visible_data.is_none() {
            return Err(Error::InvalidArgument(
                "userVisibleDataFormat without userVisibleData".into(),
            ));
        }
        let visible = self
            .user_visible_data
            .as_deref()
            .map(|t| rp::encode_data("userVisibleData", t, pick(rp::VISIBLE_DATA_MAX)))
            .transpose()
            .map_err(Error::InvalidArgument)?;
        let hidden = self
            .user_non_visible_data
            .as_deref()
            .map(|t| rp::encode_data("userNonVisibleData", t, pick(rp::NON_VISIBLE_DATA_MAX)))
            .transpose()
            .map_err(Error::InvalidArgument)?;
        Ok(PhoneAuthRequest {
            personal_number: pnr.as_str12().to_string(),
            call_initiator: self.call_initiator.unwrap_or(default),
            user_visible_data: visible,
            user_visible_data_format: self.user_visible_data_format,
            user_non_visible_data: hidden,
            requirement: self.requirement.clone(),
        })
    }
}

/// Why an order ended without an identification other than BankID's `failed` status: BankID's
/// error code, or what happened here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// BankID answered with this `errorCode`.
    Api(ErrorCode),
    /// An error answer without BankID's JSON (e.g. a proxy's HTML page): its HTTP status.
    Http(u16),
    /// A 200 whose body could not be read.
    Decode,
    /// No answer at all (connection, TLS, timeout).
    Transport,
    /// The local deadline passed.
    Deadline,
    /// The engine was shut down.
    Shutdown,
    /// The host cancelled or released the order (its state is then `Failed`).
    CancelledByHost,
    /// BankID said complete for another personal number, or for none: not an identification.
    PersonalNumberMismatch,
}

impl std::fmt::Display for OrderError {
    /// BankID's code as it spells it, `http-NNN`, or our own kind (`deadline`, …): the strings
    /// `bankid_hint_code` hands to C hosts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderError::Api(code) => f.write_str(code.as_str()),
            OrderError::Http(status) => write!(f, "http-{status}"),
            OrderError::Decode => f.write_str("decode"),
            OrderError::Transport => f.write_str("transport"),
            OrderError::Deadline => f.write_str("deadline"),
            OrderError::Shutdown => f.write_str("shutdown"),
            OrderError::CancelledByHost => f.write_str("cancelledByHost"),
            OrderError::PersonalNumberMismatch => f.write_str("personalNumberMismatch"),
        }
    }
}

impl From<&RpError> for OrderError {
    fn from(e: &RpError) -> Self {
        match e {
            RpError::Api { code, .. } => OrderError::Api(code.clone()),
            RpError::Http { status } => OrderError::Http(*status),
            RpError::Decode(_) => OrderError::Decode,
            RpError::Transport { .. } => OrderError::Transport,
        }
    }
}

/// A snapshot of an order.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// Where it stands.
    pub state: State,
    /// BankID's last `hintCode` (pending or failed).
    pub hint_code: Option<HintCode>,
    /// Why it ended in `Error` (or `Failed` when cancelled here).
    pub error: Option<OrderError>,
    /// BankID's `completionData` when complete.
    pub completion: Option<CompletionData>,
    /// BankID's order reference once started.
    pub order_ref: Option<String>,
    /// The agent-visible result text (templates from the configuration); empty while pending.
    pub result_text: String,
    /// What to tell the caller now (`guidance().caller`).
    pub message: Message,
    /// Identify or sign.
    pub mode: Mode,
    /// When complete: the step-up BankID reports (`completionData.stepUp`); all `false` when
    /// it reports none.
    pub step_up: StepUp,
    /// Whether the security code was required (`requirement.pinCode`, as asked).
    pub pin_code_required: bool,
    /// When a signing is complete: the text the caller approved (the one sent).
    pub signed_text: Option<String>,
}

impl OrderView {
    /// What to tell the caller, the agent and the IVR now.
    pub fn guidance(&self) -> Guidance {
        messages::guidance(self.state, self.hint_code.as_ref(), self.error.as_ref())
    }
}

#[derive(Debug)]
struct Progress {
    state: State,
    hint_code: Option<HintCode>,
    error: Option<OrderError>,
    completion: Option<CompletionData>,
    order_ref: Option<String>,
    finished: Option<Instant>,
    /// BankID's completionData as sent, when complete and evidence is kept.
    evidence: Option<Evidence>,
}

/// One order as the engine and its task share it.
#[derive(Debug)]
struct Cell {
    pnr: Personnummer,
    mode: Mode,
    /// The text sent to sign (`None` when identifying).
    sign_text: Option<String>,
    pin_code: bool,
    progress: Mutex<Progress>,
    cancelled: AtomicBool,
    wake: Notify,
    /// For the audit record: when and from where it started, and how.
    started_at: UnixMs,
    started: Instant,
    context: CallContext,
    caller_id: Option<String>,
    call_initiator: CallInitiator,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cell {
    /// A new pending order for `pnr`, sent with `call_initiator`.
    fn new(pnr: Personnummer, opts: &StartOptions, call_initiator: CallInitiator) -> Cell {
        Cell {
            pnr,
            mode: opts.mode,
            sign_text: match opts.mode {
                Mode::Sign => opts.user_visible_data.clone(),
                Mode::Identify => None,
            },
            pin_code: opts.requirement.as_ref().and_then(|r| r.pin_code) == Some(true),
            progress: Mutex::new(Progress {
                state: State::Pending,
                hint_code: None,
                error: None,
                completion: None,
                order_ref: None,
                finished: None,
                evidence: None,
            }),
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
            started_at: UnixMs::now(),
            started: Instant::now(),
            context: opts.context.clone(),
            caller_id: opts.caller_id.clone(),
            call_initiator,
        }
    }

    /// The audit record of this order as it stands in `p` (final, when the task ends).
    fn record(&self, p: &Progress, key: &PseudonymKey) -> Record {
        let finished = p.finished.unwrap_or_else(Instant::now);
        let duration_ms =
            i64::try_from(finished.saturating_duration_since(self.started).as_millis())
                .unwrap_or(i64::MAX);
        // Final by the time the task ends; anything else is stored as the shutdown it was.
        let (state, failure) = match p.state {
            State::Pending => (State::Error, Some(Failure::Order(OrderError::Shutdown))),
            s => (s, p.error.clone().map(Failure::Order)),
        };
        Record {
            id: RecordId::random(),
            started_at: self.started_at,
            finished_at: UnixMs(self.started_at.0.saturating_add(duration_ms)),
            duration_ms,
            channel: self.context.channel,
            agent: tag(self.context.agent.as_deref()),
            call_id: tag(self.context.call_id.as_deref()),
            caller_id: tag(self.caller_id.as_deref()),
            host: host_name().to_string(),
            mode: self.mode,
            call_initiator: self.call_initiator,
            state,
            hint_code: p.hint_code.clone(),
            failure,
            order_ref: p.order_ref.clone(),
            pnr_masked: self.pnr.masked(),
            pnr_pseudonym: key.pseudonym(&self.pnr),
            pseudonym_key_id: key.id(),
            evidence: p.evidence.clone(),
        }
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Sets a final state unless one is set already. Returns whether it did.
    fn finish(&self, state: State, hint: Option<HintCode>, error: Option<OrderError>) -> bool {
        let mut p = self.progress();
        if p.state.is_final() {
            return false;
        }
        p.state = state;
        if hint.is_some() {
            p.hint_code = hint;
        }
        p.error = error;
        p.finished = Some(Instant::now());
        true
    }

    /// Ends a pending order here (cancelled by the host, or shut down) and wakes its task,
    /// which then cancels it at BankID. A final order keeps its state.
    fn stop(&self, why: OrderError) {
        let state = if why == OrderError::CancelledByHost {
            State::Failed
        } else {
            State::Error
        };
        if self.finish(state, None, Some(why.clone())) {
            log::info!(
                "order for {} stopped ({why}); cancelling it at BankID",
                self.pnr.masked()
            );
        }
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

struct Inner {
    client: RpClient,
    metrics: Arc<Metrics>,
    config: Config,
    orders: Mutex<HandleTable<Arc<Cell>>>,
    limits: Limits,
    /// Order tasks still running (each ends after telling BankID when it must); shutdown waits
    /// for them.
    live_tasks: AtomicUsize,
    /// Where each order's record goes when it ends (`None`: `audit_database = "off"`).
    audit: Option<Audit>,
}

impl Inner {
    fn limits_settings(&self) -> LimitSettings {
        self.config.limits
    }

    fn reap(&self) {
        let ttl = self.config.result_ttl;
        let mut orders = lock(&self.orders);
        let expired: Vec<OrderId> = orders
            .iter()
            .filter(|(_, cell)| cell.progress().finished.is_some_and(|f| f.elapsed() > ttl))
            .map(|(id, _)| id)
            .collect();
        for id in expired {
            orders.remove(id);
        }
    }
}

/// The order engine. Cheap to share behind an `Arc`; every method takes `&self` and is
/// thread-safe. `start`, `poll`, `cancel` and `release` never wait for the network.
pub struct Engine {
    inner: Arc<Inner>,
    /// `None` once shut down. Held while spawning, so no task starts after shutdown began.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// This engine's use of the audit writer, given up at shutdown: the last engine using a
    /// writer (a reload's successor shares it) flushes it and joins its thread.
    audit_use: Mutex<Option<AuditUse>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.inner.config.url())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads certificates and builds the HTTP client and background runtime, and starts the
    /// audit writer (see [`crate::audit`]; it connects in the background). No request is
    /// sent to BankID.
    pub fn new(config: Config) -> Result<Engine, Error> {
        let limits = Limits::new(config.limits);
        let audit = start_audit(&config)?;
        Engine::with_parts(config, limits, audit)
    }

    /// A new engine for a reloaded configuration (e.g. a renewed certificate) that keeps this
    /// one's anti-vishing counters: a number blocked after a declined call stays blocked. With
    /// the same audit settings it writes through the same audit writer; with others, through a
    /// new one. (Its engine metrics start at zero, as after a restart.)
    pub fn successor(&self, config: Config) -> Result<Engine, Error> {
        let limits = self.inner.limits.with_settings(config.limits);
        let audit = match &self.inner.audit {
            Some(a) if a.settings() == &config.audit => Some(a.clone()),
            _ => start_audit(&config)?,
        };
        Engine::with_parts(config, limits, audit)
    }

    fn with_parts(config: Config, limits: Limits, audit: Option<Audit>) -> Result<Engine, Error> {
        let (tls, cert) = config.tls_config_and_certificate().map_err(Error::Config)?;
        let validity = cert.as_ref().map(crate::metrics::Validity::from);
        if validity.is_none() {
            // rustls and BankID decide whether it works; only the gauge and /readyz lack it.
            log::warn!("the client certificate could not be parsed; its expiry is not reported");
        }
        let mut metrics = Metrics::new(validity);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .max_blocking_threads(1)
            .thread_name("bankid-engine")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let client = {
            let _guard = runtime.enter();
            RpClient::new(
                config.url(),
                tls,
                config.connect_timeout,
                config.request_timeout,
                config.max_connections,
            )
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                // Not a plain drop: a runtime dropped inside another one (a SIGHUP reload in a
                // tool's async code) panics.
                runtime.shutdown_background();
                return Err(Error::Config(ConfigError(e)));
            }
        };
        metrics.register_connections(client.connections_opened());
        if let Some(a) = &audit {
            metrics.register_audit(a.metrics());
        }
        let metrics = Arc::new(metrics);
        let client = client.with_metrics(metrics.clone());
        let inner = Arc::new(Inner {
            client,
            metrics,
            limits,
            config,
            orders: Mutex::new(HandleTable::default()),
            live_tasks: AtomicUsize::new(0),
            audit,
        });
        let weak = Arc::downgrade(&inner);
        let ttl = inner.config.result_ttl;
        runtime.spawn(async move {
            let every = (ttl / 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.reap();
            }
        });
        if let Some(cert) = cert {
            crate::certinfo::log_expiry(&cert);
            runtime.spawn(crate::certinfo::daily_expiry_warnings(cert));
        }
        log::info!("bankid engine ready for {}", inner.config.url());
        let audit_use = inner.audit.as_ref().map(Audit::engine_use);
        Ok(Engine {
            inner,
            runtime: Mutex::new(Some(runtime)),
            audit_use: Mutex::new(audit_use),
        })
    }

    /// The audit writer this engine's records go to (`None`: `audit_database = "off"`).
    pub fn audit(&self) -> Option<&Audit> {
        self.inner.audit.as_ref()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Starts a phone identification (or, with [`Mode::Sign`], a signing); returns at once.
    /// The options are checked first ([`Error::InvalidArgument`]). The `phone/auth` call and the collects
    /// run in the background. The anti-vishing limits ([`limits`]) are checked first: a refusal
    /// is [`Error::Refused`], logged as a security event, and nothing reaches BankID.
    pub fn start(&self, pnr: &Personnummer, opts: StartOptions) -> Result<OrderId, Error> {
        let request = opts.request(pnr, self.inner.config.call_initiator)?;
        let runtime = lock(&self.runtime);
        let rt = runtime.as_ref().ok_or(Error::ShutDown)?;
        if let Err(r) = self
            .inner
            .limits
            .admit(pnr, opts.caller_id.as_deref(), Instant::now())
        {
            log::warn!("SECURITY: start for {} refused: {r}", pnr.masked());
            self.inner.metrics.refused(&r);
            self.record_refusal(
                pnr,
                &opts,
                request.call_initiator,
                Failure::Refused(r.clone()),
            );
            return Err(Error::Refused(r));
        }
        let cell = Arc::new(Cell::new(pnr.clone(), &opts, request.call_initiator));
        let inserted = lock(&self.inner.orders).insert(cell.clone(), self.inner.config.max_orders);
        if inserted.is_err() {
            log::warn!(
                "start for {} refused: {} orders are open (max_orders)",
                pnr.masked(),
                self.inner.config.max_orders
            );
            self.record_refusal(pnr, &opts, request.call_initiator, Failure::TooManyOrders);
            return Err(Error::TooManyOrders);
        }
        let id = inserted.expect("checked");
        self.inner.live_tasks.fetch_add(1, Ordering::SeqCst);
        self.inner.metrics.order_started();
        rt.spawn(task::run(self.inner.clone(), cell, request));
        Ok(id)
    }

    /// A start refused before anything reached BankID is on record too: state error, no
    /// orderRef, `error_code` `refused-…`.
    fn record_refusal(
        &self,
        pnr: &Personnummer,
        opts: &StartOptions,
        call_initiator: CallInitiator,
        failure: Failure,
    ) {
        let Some(audit) = &self.inner.audit else {
            return;
        };
        let cell = Cell::new(pnr.clone(), opts, call_initiator);
        let p = Progress {
            state: State::Error,
            hint_code: None,
            error: None,
            completion: None,
            order_ref: None,
            finished: Some(cell.started),
            evidence: None,
        };
        let mut record = cell.record(&p, audit.key());
        record.failure = Some(failure);
        audit.submit(record);
    }

    fn cell(&self, id: OrderId) -> Result<Arc<Cell>, Error> {
        lock(&self.inner.orders)
            .get(id)
            .cloned()
            .ok_or(Error::StaleHandle)
    }

    /// The order's state: a lookup, never I/O.
    pub fn state(&self, id: OrderId) -> Result<State, Error> {
        let orders = lock(&self.inner.orders);
        let cell = orders.get(id).ok_or(Error::StaleHandle)?;
        let state = cell.progress().state;
        Ok(state)
    }

    /// A full snapshot of the order: a lookup, never I/O.
    pub fn poll(&self, id: OrderId) -> Result<OrderView, Error> {
        let cell = self.cell(id)?;
        let p = cell.progress();
        Ok(self.view(&cell, &p))
    }

    fn view(&self, cell: &Cell, p: &Progress) -> OrderView {
        let cfg = &self.inner.config;
        let result_text = match p.state {
            State::Pending => String::new(),
            // The number is ours, validated before the start; a complete answer naming another
            // one never gets here (see `task`). BankID's own text is never sliced.
            State::Complete => result_text::success(
                &cfg.result_success,
                &cell.pnr,
                p.completion.as_ref().map_or("", |c| c.user.name.as_str()),
            ),
            State::Failed | State::Error => cfg.result_failed.clone(),
        };
        let message = messages::guidance(p.state, p.hint_code.as_ref(), p.error.as_ref()).caller;
        OrderView {
            state: p.state,
            hint_code: p.hint_code.clone(),
            error: p.error.clone(),
            completion: p.completion.clone(),
            order_ref: p.order_ref.clone(),
            result_text,
            message,
            mode: cell.mode,
            step_up: p
                .completion
                .as_ref()
                .and_then(|c| c.step_up)
                .unwrap_or_default(),
            pin_code_required: cell.pin_code,
            signed_text: match p.state {
                State::Complete => cell.sign_text.clone(),
                _ => None,
            },
        }
    }

    /// The message to give the caller now, in `lang`.
    pub fn message(&self, id: OrderId, lang: Language) -> Result<&'static str, Error> {
        Ok(self.poll(id)?.message.text(lang))
    }

    /// Cancels a pending order: it turns `Failed` at once and is cancelled at BankID in the
    /// background. A final order is left as it is.
    pub fn cancel(&self, id: OrderId) -> Result<(), Error> {
        self.cell(id)?.stop(OrderError::CancelledByHost);
        Ok(())
    }

    /// Cancels the order if pending, then forgets it; its id turns stale.
    pub fn release(&self, id: OrderId) -> Result<(), Error> {
        let cell = lock(&self.inner.orders)
            .remove(id)
            .ok_or(Error::StaleHandle)?;
        cell.stop(OrderError::CancelledByHost);
        Ok(())
    }

    /// Orders held (pending or final and not yet released).
    pub fn len(&self) -> usize {
        lock(&self.inner.orders).len()
    }

    /// Whether no order is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks the calling thread until the order is final or `timeout` passes, checking every
    /// 10 ms; for command-line tools, not for IVR threads.
    pub fn wait(&self, id: OrderId, timeout: Duration) -> Result<OrderView, Error> {
        let until = Instant::now() + timeout;
        loop {
            let v = self.poll(id)?;
            if v.state.is_final() || Instant::now() >= until {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The engine's metrics as OpenMetrics text (Prometheus scrapes it; ends in `# EOF`), see
    /// [`crate::metrics`]. No personal data. Cheap: a few hundred lines at most.
    pub fn metrics_text(&self) -> String {
        self.metrics_text_with(None)
    }

    /// As [`Engine::metrics_text`], followed by `extra`'s metrics (a server's own) before the
    /// `# EOF`.
    pub fn metrics_text_with(
        &self,
        extra: Option<&prometheus_client::registry::Registry>,
    ) -> String {
        let m = &self.inner.metrics;
        m.set_requests_in_flight(self.inner.client.requests_in_flight());
        m.encode(extra)
    }

    /// Whether this engine can identify callers now: the client certificate is valid and the
    /// last request to BankID did not fail recently (see [`Metrics::readiness`]).
    pub fn readiness(&self) -> Readiness {
        self.inner.metrics.readiness()
    }

    /// The client certificate's validity, when it could be read.
    pub fn certificate_validity(&self) -> Option<crate::metrics::Validity> {
        self.inner.metrics.validity()
    }

    /// Shuts the engine down: no new orders; every pending order ends here (`shutdown`) and is
    /// cancelled at BankID; returns once those cancels are sent (at most [`SHUTDOWN_GRACE`]) and
    /// the worker threads have stopped, so a host may unload the library afterwards. Held
    /// results stay readable. Idempotent; dropping the engine does the same.
    pub fn shutdown(&self) {
        let Some(rt) = lock(&self.runtime).take() else {
            return;
        };
        let cells: Vec<Arc<Cell>> = lock(&self.inner.orders)
            .iter()
            .map(|(_, c)| c.clone())
            .collect();
        for cell in &cells {
            cell.stop(OrderError::Shutdown);
        }
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.inner.live_tasks.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.inner.live_tasks.load(Ordering::SeqCst);
        if left > 0 {
            log::warn!("shutdown: {left} order(s) could not tell BankID within {SHUTDOWN_GRACE:?}");
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropped inside another async runtime (a host's own), where blocking on a join is
            // not allowed: the orders were told above; let the threads wind down by themselves.
            rt.shutdown_background();
        } else {
            // Joins the worker threads (and ends what is left, e.g. idle pooled connections).
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        // Every record is handed over by now (a task hands its record over before it counts
        // itself out). The last engine using the writer flushes it and joins its thread.
        drop(lock(&self.audit_use).take());
    }
}

/// The audit writer for `config` (`None` when turned off); a failure names the setting.
fn start_audit(config: &Config) -> Result<Option<Audit>, Error> {
    Audit::start(&config.audit).map_err(|e| Error::Config(ConfigError(e.0)))
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
