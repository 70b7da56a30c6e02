//! The order engine: starts phone orders, collects them in the background on a small internal
//! runtime, applies BankID's retry rules and a local deadline, and keeps each order's latest
//! state for lookups that never block on I/O.
//!
//! Orders are addressed by generation-checked [`OrderId`]s: the low 32 bits are a slot index + 1,
//! the high 32 bits the slot's generation, so 0 is never valid and a released id is stale forever
//! (until the generation counter wraps after 2³² reuses of one slot).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::{Config, ConfigError};
use crate::messages::{self, Language, Message};
use crate::personnummer::{mask_str, Personnummer, PnrError};
use crate::rp::{
    self, CallInitiator, CollectStatus, CompletionData, PhoneAuthRequest, Requirement, RpClient,
    RpError,
};

/// An order handle. 0 is never valid.
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
        }
    }
}
impl std::error::Error for Error {}

/// Per-order options.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `user` (the caller called us) or `RP`; the configured default when `None`.
    pub call_initiator: Option<CallInitiator>,
    /// Text shown in the BankID app (plain UTF-8; encoded here).
    pub user_visible_data: Option<String>,
    /// Requirements on the user's BankID.
    pub requirement: Option<Requirement>,
}

/// Local error kinds used in [`OrderView::error_code`] besides BankID's error codes.
pub mod local {
    /// The host cancelled or released the order.
    pub const CANCELLED: &str = "cancelledByHost";
    /// The local deadline passed.
    pub const DEADLINE: &str = "deadline";
    /// The engine was shut down.
    pub const SHUTDOWN: &str = "shutdown";
}

/// A snapshot of an order.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// Where it stands.
    pub state: State,
    /// BankID's last `hintCode` (pending or failed).
    pub hint_code: Option<String>,
    /// BankID's `errorCode`, or a [`local`] kind / `transport` / `http-NNN` / `decode`.
    pub error_code: Option<String>,
    /// BankID's `completionData` when complete.
    pub completion: Option<CompletionData>,
    /// BankID's order reference once started.
    pub order_ref: Option<String>,
    /// The agent-visible result text (templates from the configuration); empty while pending.
    pub result_text: String,
    /// What to tell the caller now.
    pub message: Message,
}

#[derive(Debug)]
struct Progress {
    state: State,
    hint_code: Option<String>,
    error_code: Option<String>,
    completion: Option<CompletionData>,
    order_ref: Option<String>,
    finished: Option<Instant>,
}

#[derive(Debug)]
struct Cell {
    pnr: Personnummer,
    progress: Mutex<Progress>,
    cancelled: AtomicBool,
    /// Counted in `Inner::cancels_in_flight` until its task has told BankID.
    cancel_counted: AtomicBool,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cell {
    /// A new pending order for `pnr`.
    fn new(pnr: Personnummer) -> Cell {
        Cell {
            pnr,
            progress: Mutex::new(Progress {
                state: State::Pending,
                hint_code: None,
                error_code: None,
                completion: None,
                order_ref: None,
                finished: None,
            }),
            cancelled: AtomicBool::new(false),
            cancel_counted: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Sets a final state unless one is set already. Returns whether it did.
    fn finish(&self, state: State, hint: Option<String>, error: Option<String>) -> bool {
        let mut p = lock(&self.progress);
        if p.state.is_final() {
            return false;
        }
        p.state = state;
        if hint.is_some() {
            p.hint_code = hint;
        }
        p.error_code = error;
        p.finished = Some(Instant::now());
        true
    }
}

#[derive(Default)]
struct Slot {
    generation: u32,
    cell: Option<Arc<Cell>>,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    used: usize,
}

impl Slab {
    fn get(&self, id: OrderId) -> Option<&Arc<Cell>> {
        let index = (id & 0xffff_ffff) as usize;
        let generation = (id >> 32) as u32;
        let slot = self.slots.get(index.checked_sub(1)?)?;
        if slot.generation != generation {
            return None;
        }
        slot.cell.as_ref()
    }

    fn insert(&mut self, cell: Arc<Cell>) -> OrderId {
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.cell = Some(cell);
        self.used += 1;
        (u64::from(slot.generation) << 32) | (index as u64 + 1)
    }

    fn remove(&mut self, id: OrderId) -> Option<Arc<Cell>> {
        self.get(id)?;
        let index = (id & 0xffff_ffff) as usize - 1;
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.used -= 1;
        slot.cell.take()
    }
}

struct Inner {
    client: RpClient,
    config: Config,
    slab: Mutex<Slab>,
    /// Orders cancelled or released while pending whose task has not yet told BankID; shutdown
    /// waits for them so a hang-up right before exit still cancels at BankID.
    cancels_in_flight: AtomicUsize,
}

/// The order engine. Cheap to share behind an `Arc`; every method takes `&self` and is
/// thread-safe. `start`, `poll`, `cancel` and `release` never wait for the network.
pub struct Engine {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.inner.config.url())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads certificates and builds the HTTP client and background runtime. No request is
    /// sent to BankID.
    pub fn new(config: Config) -> Result<Engine, Error> {
        let tls = config.tls_config().map_err(Error::Config)?;
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
            .map_err(|e| Error::Config(ConfigError(e)))?
        };
        let inner = Arc::new(Inner {
            client,
            config,
            slab: Mutex::new(Slab::default()),
            cancels_in_flight: AtomicUsize::new(0),
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
        log::info!("bankid engine ready for {}", inner.config.url());
        Ok(Engine {
            inner,
            runtime: Some(runtime),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Starts a phone identification; returns at once. The `phone/auth` call and the collects
    /// run in the background.
    pub fn start(&self, pnr: &Personnummer, opts: StartOptions) -> Result<OrderId, Error> {
        let user_visible_data = opts
            .user_visible_data
            .as_deref()
            .map(rp::encode_visible_data)
            .transpose()
            .map_err(Error::InvalidArgument)?;
        let request = PhoneAuthRequest {
            personal_number: pnr.as_str12().to_string(),
            call_initiator: opts
                .call_initiator
                .unwrap_or(self.inner.config.call_initiator),
            user_visible_data,
            user_visible_data_format: None,
            requirement: opts.requirement,
        };
        let cell = Arc::new(Cell::new(pnr.clone()));
        let id = {
            let mut slab = lock(&self.inner.slab);
            if slab.used >= self.inner.config.max_orders {
                return Err(Error::TooManyOrders);
            }
            slab.insert(cell.clone())
        };
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Runtime("shut down".into()))?;
        rt.spawn(run(self.inner.clone(), cell, request));
        Ok(id)
    }

    fn cell(&self, id: OrderId) -> Result<Arc<Cell>, Error> {
        lock(&self.inner.slab)
            .get(id)
            .cloned()
            .ok_or(Error::StaleHandle)
    }

    /// The order's state: a lookup, never I/O.
    pub fn state(&self, id: OrderId) -> Result<State, Error> {
        let slab = lock(&self.inner.slab);
        let cell = slab.get(id).ok_or(Error::StaleHandle)?;
        let state = lock(&cell.progress).state;
        Ok(state)
    }

    /// A full snapshot of the order: a lookup, never I/O.
    pub fn poll(&self, id: OrderId) -> Result<OrderView, Error> {
        let cell = self.cell(id)?;
        let p = lock(&cell.progress);
        Ok(self.view(&cell, &p))
    }

    fn view(&self, cell: &Cell, p: &Progress) -> OrderView {
        let cfg = &self.inner.config;
        let result_text = match p.state {
            State::Pending => String::new(),
            State::Complete => {
                let (pnr_full, pnr_masked) = match p
                    .completion
                    .as_ref()
                    .map(|c| c.user.personal_number.as_str())
                {
                    Some(n) if n.len() == 12 => {
                        (format!("{}-{}", &n[2..8], &n[8..12]), mask_str(n))
                    }
                    _ => (cell.pnr.display(), cell.pnr.masked()),
                };
                let name = p
                    .completion
                    .as_ref()
                    .map(|c| c.user.name.as_str())
                    .unwrap_or("");
                cfg.result_success
                    .replace("{pnr_masked}", &pnr_masked)
                    .replace("{pnr}", &pnr_full)
                    .replace("{name}", name)
            }
            State::Failed | State::Error => cfg.result_failed.clone(),
        };
        let message = match (p.state, p.hint_code.as_deref(), p.error_code.as_deref()) {
            (State::Pending, hint, _) => messages::pending(hint),
            (State::Complete, _, _) => messages::IDENTIFIED,
            (State::Failed, _, Some(local::CANCELLED)) => messages::RFA6,
            (State::Failed, hint, _) => messages::failed(hint.unwrap_or("")),
            (State::Error, _, code) => messages::error(code.unwrap_or("")),
        };
        OrderView {
            state: p.state,
            hint_code: p.hint_code.clone(),
            error_code: p.error_code.clone(),
            completion: p.completion.clone(),
            order_ref: p.order_ref.clone(),
            result_text,
            message,
        }
    }

    /// The message to give the caller now, in `lang`.
    pub fn message(&self, id: OrderId, lang: Language) -> Result<&'static str, Error> {
        Ok(self.poll(id)?.message.text(lang))
    }

    /// Cancels a pending order: it turns `Failed` at once and is cancelled at BankID in the
    /// background. A final order is left as it is.
    pub fn cancel(&self, id: OrderId) -> Result<(), Error> {
        let cell = self.cell(id)?;
        cancel_cell(&self.inner, &cell, local::CANCELLED);
        Ok(())
    }

    /// Cancels the order if pending, then forgets it; its id turns stale.
    pub fn release(&self, id: OrderId) -> Result<(), Error> {
        let cell = lock(&self.inner.slab)
            .remove(id)
            .ok_or(Error::StaleHandle)?;
        cancel_cell(&self.inner, &cell, local::CANCELLED);
        Ok(())
    }

    /// Orders held (pending or final and not yet released).
    pub fn len(&self) -> usize {
        lock(&self.inner.slab).used
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
}

/// Ends a pending order here at once; its task then cancels it at BankID.
fn cancel_cell(inner: &Inner, cell: &Cell, why: &str) {
    let state = if why == local::CANCELLED {
        State::Failed
    } else {
        State::Error
    };
    if cell.finish(state, None, Some(why.into())) {
        log::info!(
            "order for {} stopped ({why}); cancelling it at BankID",
            cell.pnr.masked()
        );
        if !cell.cancel_counted.swap(true, Ordering::SeqCst) {
            inner.cancels_in_flight.fetch_add(1, Ordering::SeqCst);
        }
    }
    cell.cancelled.store(true, Ordering::SeqCst);
    cell.wake.notify_one();
}

/// Uncounts a cancelled order when its task ends, whichever way it ends.
struct TaskDone<'a>(&'a Inner, &'a Cell);

impl Drop for TaskDone<'_> {
    fn drop(&mut self) {
        if self.1.cancel_counted.swap(false, Ordering::SeqCst) {
            self.0.cancels_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Inner {
    fn reap(&self) {
        let ttl = self.config.result_ttl;
        let mut slab = lock(&self.slab);
        let expired: Vec<OrderId> = slab
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let cell = s.cell.as_ref()?;
                let finished = lock(&cell.progress).finished?;
                (finished.elapsed() > ttl)
                    .then_some((u64::from(s.generation) << 32) | (i as u64 + 1))
            })
            .collect();
        for id in expired {
            slab.remove(id);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let cells: Vec<Arc<Cell>> = {
            let slab = lock(&self.inner.slab);
            slab.slots.iter().filter_map(|s| s.cell.clone()).collect()
        };
        for cell in &cells {
            cancel_cell(&self.inner, cell, local::SHUTDOWN);
        }
        if let Some(rt) = self.runtime.take() {
            // Let every task tell BankID about its cancelled order (a forgotten order blocks that
            // person for minutes), waiting at most 2 s in all.
            let until = Instant::now() + Duration::from_secs(2);
            while self.inner.cancels_in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            rt.shutdown_background();
        }
    }
}

/// Backoff for 503/429: BankID's `RateLimit-Reset` when given, else 1, 2, 4, 8 s (capped).
fn backoff(err: &RpError, attempt: u32) -> Duration {
    if let RpError::Api {
        retry_after: Some(d),
        ..
    } = err
    {
        return (*d).max(Duration::from_millis(100));
    }
    Duration::from_secs(1 << attempt.min(3))
}

async fn sleep_or_cancel(cell: &Cell, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = cell.wake.notified() => {}
    }
}

fn describe(e: &RpError) -> String {
    // BankID's details text is free text: logged, never parsed. It never carries our number.
    e.to_string()
}

async fn run(inner: Arc<Inner>, cell: Arc<Cell>, request: PhoneAuthRequest) {
    let _done = TaskDone(&inner, &cell);
    let cfg = &inner.config;
    let deadline = Instant::now() + cfg.order_timeout;
    let who = cell.pnr.masked();
    let is_cancelled = || cell.cancelled.load(Ordering::SeqCst);

    // Start. Never blindly repeated: only 503/429 (nothing was created) are retried.
    let mut attempt = 0;
    let order_ref = loop {
        if is_cancelled() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, inner.client.phone_auth(&request)).await {
            Ok(Ok(r)) => break r.order_ref,
            Ok(Err(e)) if e.is_retryable_overload() => {
                let wait = backoff(&e, attempt);
                attempt += 1;
                log::warn!(
                    "phone/auth for {who}: {}; retrying in {wait:?}",
                    describe(&e)
                );
                if Instant::now() + wait >= deadline {
                    cell.finish(State::Error, None, Some(e.code()));
                    return;
                }
                sleep_or_cancel(&cell, wait).await;
            }
            Ok(Err(e)) => {
                log::warn!("phone/auth for {who} failed: {}", describe(&e));
                cell.finish(State::Error, None, Some(e.code()));
                return;
            }
            Err(_) => {
                log::warn!("phone/auth for {who}: no answer before the local deadline");
                cell.finish(State::Error, None, Some(local::DEADLINE.into()));
                return;
            }
        }
    };
    log::info!("order {order_ref} started for {who}");
    lock(&cell.progress).order_ref = Some(order_ref.clone());

    let mut delay = cfg.poll_interval;
    let mut overload = 0;
    loop {
        if !is_cancelled() {
            sleep_or_cancel(&cell, delay).await;
        }
        if is_cancelled() {
            match inner.client.cancel(&order_ref).await {
                Ok(()) => log::info!("order {order_ref} cancelled at BankID"),
                Err(e) => log::warn!("cancel of {order_ref}: {}", describe(&e)),
            }
            return;
        }
        if Instant::now() >= deadline {
            log::warn!("order {order_ref}: local deadline passed; cancelling it at BankID");
            cell.finish(State::Error, None, Some(local::DEADLINE.into()));
            let _ = inner.client.cancel(&order_ref).await;
            return;
        }
        delay = cfg.poll_interval;
        match inner.client.collect(&order_ref).await {
            Ok(resp) => {
                overload = 0;
                let hint = resp.hint_code.as_ref().map(|h| h.as_str().to_string());
                match resp.status {
                    CollectStatus::Complete => {
                        let mut p = lock(&cell.progress);
                        if !p.state.is_final() {
                            p.state = State::Complete;
                            p.completion = resp.completion_data;
                            p.finished = Some(Instant::now());
                            log::info!("order {order_ref} complete for {who}");
                        }
                        return;
                    }
                    CollectStatus::Failed => {
                        let h = hint.clone().unwrap_or_default();
                        if h == "userDeclinedCall" {
                            log::warn!("SECURITY: order {order_ref}: {who} declined the call in the BankID app (possible fraud attempt)");
                        } else {
                            log::info!("order {order_ref} failed: {h}");
                        }
                        cell.finish(State::Failed, hint, None);
                        return;
                    }
                    // pending, or a status this version does not know: keep collecting.
                    _ => {
                        let mut p = lock(&cell.progress);
                        if !p.state.is_final() {
                            p.hint_code = hint;
                        }
                    }
                }
            }
            Err(e) if e.is_retryable_overload() => {
                delay = backoff(&e, overload).max(cfg.poll_interval);
                overload += 1;
                log::warn!(
                    "collect {order_ref}: {}; retrying in {delay:?}",
                    describe(&e)
                );
            }
            Err(e @ (RpError::Transport { .. } | RpError::Decode(_))) => {
                log::warn!(
                    "collect {order_ref}: {}; retrying on the next tick",
                    describe(&e)
                );
            }
            Err(e) => {
                log::warn!("collect {order_ref} failed: {}", describe(&e));
                cell.finish(State::Error, None, Some(e.code()));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generation_checked() {
        let mut slab = Slab::default();
        let pnr = Personnummer::parse("199908072391").unwrap();
        let mk = || Arc::new(Cell::new(pnr.clone()));
        let a = slab.insert(mk());
        assert_ne!(a, 0);
        assert!(slab.get(a).is_some());
        assert!(slab.remove(a).is_some());
        assert!(slab.get(a).is_none(), "released id is stale");
        let b = slab.insert(mk());
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "slot reused");
        assert_ne!(a, b, "with a new generation");
        assert!(slab.get(a).is_none());
        assert!(slab.get(0).is_none());
        assert!(slab.get(12345 << 32 | 99).is_none());
        assert!(slab.remove(a).is_none());
    }
}
