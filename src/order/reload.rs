//! Reloading the configuration without dropping calls: a renewed certificate (or any other
//! setting) takes effect for new orders at once, while the orders already running finish on
//! the engine that started them.
//!
//! [`Reloadable`] holds the current [`Engine`] and the retired ones that still hold orders.
//! Ids are unique for the life of the process (see [`super::handles`]), so an id names exactly
//! one order in exactly one engine: a lookup asks the current engine, then the retired ones.
//! A retired engine is shut down (its threads joined) once it holds no order; the anti-vishing
//! counters carry over ([`Engine::successor`]).

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{lock, Engine, Error, OrderId, OrderView, StartOptions, State};
use crate::config::Config;
use crate::messages::Language;
use crate::personnummer::Personnummer;

/// An [`Engine`] whose configuration can be replaced while orders run. Every method takes
/// `&self` and is thread-safe; like the engine's, `start`, `poll`, `cancel` and `release`
/// never wait for the network.
pub struct Reloadable {
    current: RwLock<Arc<Engine>>,
    /// Engines of earlier configurations that still hold orders (pending or unreleased).
    retired: Mutex<Vec<Arc<Engine>>>,
    /// Shutdowns of emptied engines, run off the caller's thread; joined by `shutdown`.
    stopping: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloadable")
            .field("current", &self.current())
            .field("retired", &lock(&self.retired).len())
            .finish()
    }
}

impl Reloadable {
    /// An engine for `config`.
    pub fn new(config: Config) -> Result<Reloadable, Error> {
        Ok(Reloadable::from(Engine::new(config)?))
    }

    /// The engine new orders go to.
    pub fn current(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configuration new orders use.
    pub fn config(&self) -> Config {
        self.current().config().clone()
    }

    /// Replaces the configuration: certificates are loaded first, so a broken configuration
    /// is an error and the running one stays. New orders use the new configuration; orders
    /// already running finish on the old one, whose ids stay valid.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let next = Arc::new(self.current().successor(config)?);
        let previous = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *current, next)
        };
        let running = previous.len();
        lock(&self.retired).push(previous);
        log::info!(
            "configuration reloaded: new orders go to {}; {running} order(s) finish on the \
             previous configuration",
            self.current().config().url()
        );
        self.retire_empty();
        Ok(())
    }

    /// The engine holding `id`.
    fn find(&self, id: OrderId) -> Result<Arc<Engine>, Error> {
        let current = self.current();
        if current.state(id).is_ok() {
            return Ok(current);
        }
        lock(&self.retired)
            .iter()
            .find(|e| e.state(id).is_ok())
            .cloned()
            .ok_or(Error::StaleHandle)
    }

    /// Shuts down, on a thread of their own, the retired engines that hold no order any more.
    fn retire_empty(&self) {
        let empty: Vec<Arc<Engine>> = {
            let mut retired = lock(&self.retired);
            let (empty, busy) = retired.drain(..).partition(|e| e.is_empty());
            *retired = busy;
            empty
        };
        if empty.is_empty() {
            return;
        }
        let mut stopping = lock(&self.stopping);
        stopping.retain(|t| !t.is_finished());
        for engine in empty {
            let spawned = std::thread::Builder::new()
                .name("bankid-retire".into())
                .spawn(move || engine.shutdown());
            match spawned {
                Ok(t) => stopping.push(t),
                // No thread to be had: it is shut down when the last clone goes (on drop).
                Err(e) => log::warn!("retiring an old configuration's engine: {e}"),
            }
        }
    }

    /// Starts a phone order on the current configuration (see [`Engine::start`]).
    pub fn start(&self, pnr: &Personnummer, opts: StartOptions) -> Result<OrderId, Error> {
        self.retire_empty();
        self.current().start(pnr, opts)
    }

    /// The order's state (see [`Engine::state`]).
    pub fn state(&self, id: OrderId) -> Result<State, Error> {
        self.find(id)?.state(id)
    }

    /// A snapshot of the order (see [`Engine::poll`]).
    pub fn poll(&self, id: OrderId) -> Result<OrderView, Error> {
        self.find(id)?.poll(id)
    }

    /// The message to give the caller now (see [`Engine::message`]).
    pub fn message(&self, id: OrderId, lang: Language) -> Result<&'static str, Error> {
        self.find(id)?.message(id, lang)
    }

    /// Cancels a pending order (see [`Engine::cancel`]).
    pub fn cancel(&self, id: OrderId) -> Result<(), Error> {
        self.find(id)?.cancel(id)
    }

    /// Cancels the order if pending and forgets it (see [`Engine::release`]).
    pub fn release(&self, id: OrderId) -> Result<(), Error> {
        let result = self.find(id)?.release(id);
        self.retire_empty();
        result
    }

    /// Blocks until the order is final or `timeout` passes (see [`Engine::wait`]).
    pub fn wait(&self, id: OrderId, timeout: Duration) -> Result<OrderView, Error> {
        self.find(id)?.wait(id, timeout)
    }

    /// Orders held by every configuration's engine.
    pub fn len(&self) -> usize {
        self.current().len() + lock(&self.retired).iter().map(|e| e.len()).sum::<usize>()
    }

    /// Whether no order is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts every engine down (see [`Engine::shutdown`]): pending orders are cancelled at
    /// BankID, and this returns once the library's threads have stopped.
    pub fn shutdown(&self) {
        let retired: Vec<Arc<Engine>> = lock(&self.retired).drain(..).collect();
        let current = self.current();
        // At once, so the grace periods overlap; inline when no thread can be had.
        std::thread::scope(|s| {
            for engine in retired.iter().chain(std::iter::once(&current)) {
                let spawned = std::thread::Builder::new()
                    .name("bankid-shutdown".into())
                    .spawn_scoped(s, || engine.shutdown());
                if spawned.is_err() {
                    engine.shutdown();
                }
            }
        });
        for t in lock(&self.stopping).drain(..) {
            let _ = t.join();
        }
    }
}

impl From<Engine> for Reloadable {
    fn from(engine: Engine) -> Reloadable {
        Reloadable {
            current: RwLock::new(Arc::new(engine)),
            retired: Mutex::new(Vec::new()),
            stopping: Mutex::new(Vec::new()),
        }
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        self.shutdown();
    }
}
