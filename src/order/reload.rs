//! Reloading the configuration without dropping calls: a renewed certificate (or any other
//! setting) takes effect for new orders at once, while the orders already running finish on
//! the engine that started them.
//!
//! [`Reloadable`] holds the current [`Engine`] and the retired ones that still hold orders.
//! Ids are unique for the life of the process (see [`super::handles`]), so an id names exactly
//! one order in exactly one engine: a lookup asks the current engine, then the retired ones.
//! A retired engine is shut down (its threads joined) once it holds no order; the anti-vishing
//! counters carry over ([`Engine::successor`]). `max_orders` and `max_connections` apply per
//! engine: while old orders finish, the totals may reach twice the configured values.
//!
//! Locks, always taken in this order: `engines` (read for lookups and starts, write for a
//! reload), then `retiring`, then an engine's own. None is held across network I/O.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{lock, Engine, Error, OrderId, OrderView, StartOptions, State};
use crate::config::Config;
use crate::messages::Language;
use crate::personnummer::Personnummer;

struct Engines {
    current: Arc<Engine>,
    /// Engines of earlier configurations that still hold orders (pending or unreleased), and
    /// after shutdown every engine, so held results stay readable.
    retired: Vec<Arc<Engine>>,
    /// Set by `shutdown`: no more reloads, and starts fail.
    closed: bool,
}

/// An [`Engine`] whose configuration can be replaced while orders run. Every method takes
/// `&self` and is thread-safe; like the engine's, `start`, `poll`, `cancel` and `release`
/// never wait for the network.
pub struct Reloadable {
    engines: RwLock<Engines>,
    /// Shutdowns of emptied engines, run off the caller's thread; joined by `shutdown`.
    retiring: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engines = self.engines();
        f.debug_struct("Reloadable")
            .field("current", &engines.current)
            .field("retired", &engines.retired.len())
            .finish()
    }
}

impl Reloadable {
    /// An engine for `config`.
    pub fn new(config: Config) -> Result<Reloadable, Error> {
        Ok(Reloadable::from(Engine::new(config)?))
    }

    fn engines(&self) -> RwLockReadGuard<'_, Engines> {
        self.engines.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine new orders go to.
    pub fn current(&self) -> Arc<Engine> {
        self.engines().current.clone()
    }

    /// The configuration new orders use.
    pub fn config(&self) -> Config {
        self.engines().current.config().clone()
    }

    /// The audit writer new orders' records go to (see [`Engine::audit`]).
    pub fn audit(&self) -> Option<crate::audit::Audit> {
        self.engines().current.audit().cloned()
    }

    /// Replaces the configuration: certificates are loaded first, so a broken configuration
    /// is an error and the running one stays. New orders use the new configuration; orders
    /// already running finish on the old one, whose ids stay valid.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let next = Arc::new(self.current().successor(config)?);
        let url = next.config().url().to_string();
        let running = {
            let mut engines = self.engines.write().unwrap_or_else(|e| e.into_inner());
            if engines.closed {
                // `next` is shut down when dropped here: nothing was started on it.
                return Err(Error::ShutDown);
            }
            let previous = std::mem::replace(&mut engines.current, next);
            let running = previous.len();
            // Within the same write lock: a lookup sees the old engine in one place or the
            // other, never in neither.
            engines.retired.push(previous);
            running
        };
        log::info!(
            "configuration reloaded: new orders go to {url}; {running} order(s) finish on the \
             previous configuration"
        );
        self.retire_empty();
        Ok(())
    }

    /// Runs `f` on the engine holding `id`, with the engines locked for reading: a reload
    /// cannot move or retire it meanwhile (`f` never waits for the network).
    fn with<T>(
        &self,
        id: OrderId,
        f: impl FnOnce(&Engine) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let engines = self.engines();
        let engine = std::iter::once(&engines.current)
            .chain(engines.retired.iter())
            .find(|e| e.state(id).is_ok())
            .ok_or(Error::StaleHandle)?;
        f(engine)
    }

    /// Shuts down, on a thread of its own, each retired engine that holds no order any more.
    fn retire_empty(&self) {
        let nothing_to_do = |e: &Engines| e.closed || e.retired.iter().all(|e| !e.is_empty());
        // The common case (nothing retired) under the read lock only.
        if nothing_to_do(&self.engines()) {
            return;
        }
        let mut engines = self.engines.write().unwrap_or_else(|e| e.into_inner());
        if nothing_to_do(&engines) {
            return;
        }
        let (empty, busy): (Vec<_>, Vec<_>) = engines.retired.drain(..).partition(|e| e.is_empty());
        engines.retired = busy;
        let mut retiring = lock(&self.retiring);
        // Join the shutdowns that have finished; the rest are joined by `shutdown`.
        let (done, running): (Vec<_>, Vec<_>) = retiring.drain(..).partition(|t| t.is_finished());
        *retiring = running;
        for t in done {
            let _ = t.join();
        }
        for engine in empty {
            let spawned = std::thread::Builder::new()
                .name("bankid-retire".into())
                .spawn(move || engine.shutdown());
            match spawned {
                Ok(t) => retiring.push(t),
                // No thread to be had: it is shut down when the last clone goes (on drop).
                Err(e) => log::warn!("retiring an old configuration's engine: {e}"),
            }
        }
    }

    /// Starts a phone order on the current configuration (see [`Engine::start`]).
    pub fn start(&self, pnr: &Personnummer, opts: StartOptions) -> Result<OrderId, Error> {
        self.retire_empty();
        let engines = self.engines();
        if engines.closed {
            return Err(Error::ShutDown);
        }
        engines.current.start(pnr, opts)
    }

    /// The order's state (see [`Engine::state`]).
    pub fn state(&self, id: OrderId) -> Result<State, Error> {
        self.with(id, |e| e.state(id))
    }

    /// A snapshot of the order (see [`Engine::poll`]).
    pub fn poll(&self, id: OrderId) -> Result<OrderView, Error> {
        self.with(id, |e| e.poll(id))
    }

    /// The message to give the caller now (see [`Engine::message`]).
    pub fn message(&self, id: OrderId, lang: Language) -> Result<&'static str, Error> {
        self.with(id, |e| e.message(id, lang))
    }

    /// Cancels a pending order (see [`Engine::cancel`]).
    pub fn cancel(&self, id: OrderId) -> Result<(), Error> {
        self.with(id, |e| e.cancel(id))
    }

    /// Cancels the order if pending and forgets it (see [`Engine::release`]).
    pub fn release(&self, id: OrderId) -> Result<(), Error> {
        let result = self.with(id, |e| e.release(id));
        self.retire_empty();
        result
    }

    /// Blocks until the order is final or `timeout` passes, checking every 10 ms; for
    /// command-line tools (see [`Engine::wait`]).
    pub fn wait(&self, id: OrderId, timeout: Duration) -> Result<OrderView, Error> {
        let until = std::time::Instant::now() + timeout;
        loop {
            let v = self.poll(id)?;
            if v.state.is_final() || std::time::Instant::now() >= until {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The current engine's metrics (see [`Engine::metrics_text`]). A reload starts them at
    /// zero, as a restart would (Prometheus' `rate()` takes counter resets in its stride);
    /// orders still finishing on a retired engine are not counted in them.
    pub fn metrics_text(&self) -> String {
        self.engines().current.metrics_text()
    }

    /// As [`Reloadable::metrics_text`], followed by a server's own metrics (see
    /// [`Engine::metrics_text_with`]).
    pub fn metrics_text_with(
        &self,
        extra: Option<&prometheus_client::registry::Registry>,
    ) -> String {
        self.engines().current.metrics_text_with(extra)
    }

    /// Whether the current configuration can identify callers (see [`Engine::readiness`]).
    pub fn readiness(&self) -> crate::metrics::Readiness {
        self.engines().current.readiness()
    }

    /// Orders held by every configuration's engine.
    pub fn len(&self) -> usize {
        let engines = self.engines();
        engines.current.len() + engines.retired.iter().map(|e| e.len()).sum::<usize>()
    }

    /// Whether no order is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts every engine down (see [`Engine::shutdown`]): pending orders are cancelled at
    /// BankID, held results stay readable, and this returns once the library's threads have
    /// stopped. Starts and reloads fail from then on.
    pub fn shutdown(&self) {
        let all: Vec<Arc<Engine>> = {
            let mut engines = self.engines.write().unwrap_or_else(|e| e.into_inner());
            engines.closed = true;
            std::iter::once(engines.current.clone())
                .chain(engines.retired.iter().cloned())
                .collect()
        };
        match all.as_slice() {
            // The usual case: no reload happened, or its old orders are gone.
            [only] => only.shutdown(),
            // At once, so the grace periods overlap; each thread joined (not merely waited
            // for), so none is left when this returns and the host may unload the library.
            several => std::thread::scope(|s| {
                let threads: Vec<_> = several
                    .iter()
                    .filter_map(|engine| {
                        let spawned = std::thread::Builder::new()
                            .name("bankid-shutdown".into())
                            .spawn_scoped(s, || engine.shutdown());
                        match spawned {
                            Ok(t) => Some(t),
                            Err(_) => {
                                engine.shutdown();
                                None
                            }
                        }
                    })
                    .collect();
                for t in threads {
                    let _ = t.join();
                }
            }),
        }
        for t in lock(&self.retiring).drain(..) {
            let _ = t.join();
        }
    }
}

impl From<Engine> for Reloadable {
    fn from(engine: Engine) -> Reloadable {
        Reloadable {
            engines: RwLock::new(Engines {
                current: Arc::new(engine),
                retired: Vec::new(),
                closed: false,
            }),
            retiring: Mutex::new(Vec::new()),
        }
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        self.shutdown();
    }
}
