//! The audit writer: one thread with its own current-thread runtime per [`Audit`], which the
//! order tasks hand their records to with a non-blocking send when an order ends. `start`,
//! `poll` and the order tasks never wait for it, for the disk or for the database.
//!
//! Each batch (what is queued at the moment, at most [`BATCH_MAX`] records) is first appended
//! to the spool (fsynced), then inserted in one transaction, then its spool file is removed.
//! While the database is unreachable the writer reconnects with backoff (100 ms doubling to
//! 30 s) and batches only go to the spool; once connected it replays the spool (at start too,
//! so a crash or `kill -9` loses nothing that reached the spool). A batch the spool cannot
//! take (full at `audit_spool_max_records`, or unwritable) is inserted directly if the
//! database is there, and otherwise lost — with an ERROR line and
//! `bankid_audit_records_lost_total`, never silently.
//!
//! Once a day (and once after connecting) it purges records, evidence and agent-page events
//! older than `audit_retention_days`, and expired agent-page sessions.
//!
//! [`Audit::shutdown`] (the engine's shutdown, when the last engine using this writer ends)
//! writes what is queued within [`SHUTDOWN_FLUSH`] — what the database did not take by then
//! stays in the spool — closes the connection and joins the thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::db::{Database, DatabaseError};
use super::record::{Record, Row, UnixMs};
use super::spool::{Spool, SpoolError};
use super::store::Store;
use super::{AuditSettings, PseudonymKey};
use crate::metrics::AuditMetrics;

/// How long a shutdown waits for queued records to reach the database.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);
/// The most records written as one batch (one spool file, one transaction).
pub const BATCH_MAX: usize = 256;
/// Records queued for the writer at most; beyond it a record is lost (loudly).
const QUEUE: usize = 65_536;
/// The longest a connect or an insert may take before the database counts as unreachable.
const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a purge may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const PURGE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How often a connected writer looks for spool files (other processes' leftovers).
const REPLAY_EVERY: Duration = Duration::from_secs(30);
/// Spool files replayed per turn, so new records are not held up behind a long backlog.
const REPLAY_FILES: usize = 32;

/// The audit trail could not be set up (the message names the setting or file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditError(pub String);

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for AuditError {}

enum Msg {
    Record(Box<Record>),
    /// Answered once everything sent before it is committed or in the spool.
    Flush(std::sync::mpsc::SyncSender<()>),
}

struct Shared {
    settings: AuditSettings,
    database: Database,
    key: PseudonymKey,
    tx: mpsc::Sender<Msg>,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Engines writing through this writer ([`Audit::engine_use`]).
    users: AtomicUsize,
    metrics: AuditMetrics,
}

impl Drop for Shared {
    fn drop(&mut self) {
        stop_and_join(&self.stop, &self.thread);
    }
}

fn stop_and_join(stop: &watch::Sender<bool>, thread: &Mutex<Option<JoinHandle<()>>>) {
    let Some(t) = thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let _ = stop.send(true);
    // Never called on the writer thread itself: it holds no `Audit`.
    let _ = t.join();
}

/// The audit trail's writer. Cheap to clone (one writer, many handles); carried from an engine
/// to its successor on a reload while the audit settings stay the same.
#[derive(Clone)]
pub struct Audit {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("database", &self.shared.database)
            .field("key", &self.shared.key)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Loads the pseudonym key (made when missing, unless the database is shared: then every
    /// host must have been given the same one), opens the spool and starts the writer thread,
    /// which connects in the background: an unreachable database is no error here. `None` when
    /// records are turned off (`audit_database = "off"`), which is logged as a warning.
    pub fn start(settings: &AuditSettings) -> Result<Option<Audit>, AuditError> {
        let Some(database) = settings.database.clone() else {
            log::warn!("the audit trail is off (audit_database = \"off\"): no order is recorded");
            return Ok(None);
        };
        let key = if database.is_shared() {
            PseudonymKey::load(&settings.key_file)
        } else {
            if let Some(dir) = settings.key_file.parent() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| {
                        AuditError(format!("audit_key_file directory {}: {e}", dir.display()))
                    })?;
            }
            PseudonymKey::load_or_create(&settings.key_file)
        }
        .map_err(|e| AuditError(format!("audit_key_file: {e}")))?;
        let spool = Spool::open(&settings.spool_dir, settings.spool_max_records)
            .map_err(|e| AuditError(format!("audit_spool_dir: {e}")))?;
        let metrics = AuditMetrics::default();
        metrics.spooled.set(gauge(spool.waiting()));
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let writer = Writer {
            database: database.clone(),
            spool,
            retention_days: settings.retention_days,
            metrics: metrics.clone(),
            store: None,
            backoff: BACKOFF_MIN,
            retry_at: None,
            next_purge: Instant::now(),
            next_replay: Instant::now() + REPLAY_EVERY,
        };
        let thread = std::thread::Builder::new()
            .name("bankid-audit".into())
            .spawn(move || writer.main(rx, stop_rx))
            .map_err(|e| AuditError(format!("the audit writer thread: {e}")))?;
        log::info!(
            "audit trail: {database}, spool {}, pseudonym key {}",
            settings.spool_dir.display(),
            key.id()
        );
        Ok(Some(Audit {
            shared: Arc::new(Shared {
                settings: settings.clone(),
                database,
                key,
                tx,
                stop,
                thread: Mutex::new(Some(thread)),
                users: AtomicUsize::new(0),
                metrics,
            }),
        }))
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &AuditSettings {
        &self.shared.settings
    }

    /// The pseudonym key records are made with.
    pub fn key(&self) -> &PseudonymKey {
        &self.shared.key
    }

    /// Whether BankID's completionData is kept (`audit_keep_evidence`).
    pub fn keep_evidence(&self) -> bool {
        self.shared.settings.keep_evidence
    }

    /// Its counters.
    pub fn metrics(&self) -> &AuditMetrics {
        &self.shared.metrics
    }

    /// Hands a record to the writer without waiting. A full queue or a stopped writer loses
    /// it: an ERROR line (with the record's id and the masked number) and the lost counter.
    pub fn submit(&self, record: Record) {
        if let Err(e) = self.shared.tx.try_send(Msg::Record(Box::new(record))) {
            let (why, msg) = match e {
                mpsc::error::TrySendError::Full(m) => ("the writer's queue is full", m),
                mpsc::error::TrySendError::Closed(m) => ("the writer has stopped", m),
            };
            if let Msg::Record(r) = msg {
                lost(&self.shared.metrics, std::slice::from_ref(&r.to_row()), why);
            }
        }
    }

    /// Waits (at most `within`) until every record submitted before this call is committed or
    /// in the spool. `false` when that did not happen in time (or the writer has stopped).
    pub fn flush(&self, within: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.shared.tx.try_send(Msg::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(within).is_ok()
    }

    /// Stops the writer now: what is queued is written within [`SHUTDOWN_FLUSH`] (the rest
    /// stays in the spool), the connection is closed and the thread joined. Later records are
    /// lost (counted). Idempotent. An engine calls this when it is the last one using it.
    pub fn shutdown(&self) {
        stop_and_join(&self.shared.stop, &self.shared.thread);
    }

    /// Counts one more engine writing through this writer; the last to drop its use shuts the
    /// writer down.
    pub(crate) fn engine_use(&self) -> AuditUse {
        self.shared.users.fetch_add(1, Ordering::SeqCst);
        AuditUse(self.clone())
    }
}

/// An engine's use of an [`Audit`] (see [`Audit::engine_use`]).
pub(crate) struct AuditUse(Audit);

impl Drop for AuditUse {
    fn drop(&mut self) {
        if self.0.shared.users.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.shutdown();
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Counts `rows` lost and says so, naming them without personal data.
fn lost(metrics: &AuditMetrics, rows: &[Row], why: &str) {
    metrics.lost.inc_by(rows.len() as u64);
    let named: Vec<String> = rows
        .iter()
        .take(10)
        .map(|r| format!("{} ({}, {})", r.id, r.pnr_masked, r.state))
        .collect();
    log::error!(
        "audit: {} record(s) LOST ({why}): {}{}",
        rows.len(),
        named.join(", "),
        if rows.len() > 10 { ", …" } else { "" }
    );
}

type Connecting = Pin<Box<dyn Future<Output = Result<Store, DatabaseError>>>>;

struct Writer {
    database: Database,
    spool: Spool,
    retention_days: u32,
    metrics: AuditMetrics,
    store: Option<Store>,
    backoff: Duration,
    /// When to try connecting again (set while disconnected and not connecting).
    retry_at: Option<Instant>,
    next_purge: Instant,
    next_replay: Instant,
}

impl Writer {
    fn main(mut self, rx: mpsc::Receiver<Msg>, stop: watch::Receiver<bool>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                // Dropping the receiver makes every later submit count as lost.
                log::error!("audit writer: no runtime: {e}; records are lost");
                return;
            }
        };
        rt.block_on(self.run(rx, stop));
        rt.shutdown_timeout(Duration::from_secs(1));
    }

    fn connect(&self) -> Connecting {
        let db = self.database.clone();
        Box::pin(async move { Store::open(&db, DB_TIMEOUT).await })
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Msg>, mut stop: watch::Receiver<bool>) {
        let mut connecting: Option<Connecting> = Some(self.connect());
        let far = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
        loop {
            let retry_at = self.retry_at.unwrap_or_else(far);
            let may_retry = self.store.is_none() && connecting.is_none();
            let connected = self.store.is_some();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(r)) => {
                        let mut batch = vec![*r];
                        let mut flush = None;
                        while batch.len() < BATCH_MAX {
                            match rx.try_recv() {
                                Ok(Msg::Record(r)) => batch.push(*r),
                                Ok(Msg::Flush(t)) => {
                                    flush = Some(t);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.write(&batch, DB_TIMEOUT).await;
                        if let Some(t) = flush {
                            let _ = t.send(());
                        }
                    }
                    Some(Msg::Flush(t)) => {
                        let _ = t.send(());
                    }
                    None => break,
                },
                _ = stop.changed() => break,
                result = async { connecting.as_mut().expect("checked").await }, if connecting.is_some() => {
                    connecting = None;
                    match result {
                        Ok(store) => self.connected(store).await,
                        Err(e) => self.unreachable(&e.to_string()),
                    }
                }
                _ = tokio::time::sleep_until(retry_at), if may_retry => {
                    self.retry_at = None;
                    connecting = Some(self.connect());
                }
                _ = tokio::time::sleep_until(self.next_purge), if connected => self.purge().await,
                _ = tokio::time::sleep_until(self.next_replay), if connected => self.replay().await,
            }
        }
        self.finish(rx, connecting).await;
    }

    /// Spool, then database, then remove from the spool; `limit` bounds the insert.
    async fn write(&mut self, records: &[Record], limit: Duration) {
        let rows: Vec<Row> = records.iter().map(Record::to_row).collect();
        let spooled = match self.spool.append(&rows) {
            Ok(f) => Some(f),
            Err(e) => {
                log::error!("audit: {e}");
                if !matches!(e, SpoolError::Full { .. }) {
                    self.metrics.write_errors.inc();
                }
                None
            }
        };
        let committed = self.insert(&rows, limit).await;
        match (committed, spooled) {
            (true, Some(f)) => {
                if let Err(e) = self.spool.remove(&f) {
                    log::warn!("audit: {e} (the database has its records)");
                }
            }
            (false, None) => lost(
                &self.metrics,
                &rows,
                "neither the spool nor the database took them",
            ),
            // Committed without the spool, or waiting in it.
            _ => {}
        }
        self.metrics.spooled.set(gauge(self.spool.waiting()));
    }

    /// Inserts `rows` if connected; a failure drops the connection (records stay spooled).
    async fn insert(&mut self, rows: &[Row], limit: Duration) -> bool {
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        match tokio::time::timeout(limit, store.insert(rows)).await {
            Ok(Ok(new)) => {
                self.metrics.written.inc_by(new);
                true
            }
            Ok(Err(e)) => {
                self.lose_connection(&e.to_string()).await;
                false
            }
            Err(_) => {
                self.lose_connection(&format!("no answer within {limit:?}"))
                    .await;
                false
            }
        }
    }

    async fn connected(&mut self, store: Store) {
        log::info!("audit database {} connected", self.database);
        self.store = Some(store);
        self.backoff = BACKOFF_MIN;
        if Instant::now() >= self.next_purge {
            self.purge().await;
        }
        self.replay().await;
    }

    /// Notes a failed connect and when to try again.
    fn unreachable(&mut self, why: &str) {
        self.metrics.write_errors.inc();
        log::warn!(
            "{why}; records wait in the spool {} (retrying in {:?})",
            self.spool.dir().display(),
            self.backoff
        );
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn lose_connection(&mut self, why: &str) {
        if let Some(store) = self.store.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), store.close()).await;
        }
        self.unreachable(&format!("audit database {}: {why}", self.database));
    }

    /// Writes what waits in the spool (a turn of at most [`REPLAY_FILES`] files).
    async fn replay(&mut self) {
        self.next_replay = Instant::now() + REPLAY_EVERY;
        if let Err(e) = self.spool.rescan() {
            log::warn!("audit spool {}: {e}", self.spool.dir().display());
            return;
        }
        let files = match self.spool.list() {
            Ok(f) => f,
            Err(e) => {
                log::warn!("audit spool {}: {e}", self.spool.dir().display());
                return;
            }
        };
        let more = files.len() > REPLAY_FILES;
        let mut replayed = 0;
        for f in files.into_iter().take(REPLAY_FILES) {
            if self.store.is_none() {
                break;
            }
            let rows = match self.spool.read(&f) {
                Ok(rows) => rows,
                Err(SpoolError::Corrupt(e)) => {
                    // Its records cannot be written: counted lost now, the file named.
                    self.metrics.lost.inc_by(f.records() as u64);
                    log::error!(
                        "audit: {} record(s) LOST ({e}; the file {}.bad is kept for an operator)",
                        f.records(),
                        f.name()
                    );
                    self.metrics.write_errors.inc();
                    self.spool.forget(&f);
                    continue;
                }
                Err(e) => {
                    log::warn!("audit: {e}");
                    break;
                }
            };
            if !rows.is_empty() && !self.insert(&rows, DB_TIMEOUT).await {
                break;
            }
            if let Err(e) = self.spool.remove(&f) {
                log::warn!("audit: {e} (the database has its records)");
            }
            replayed += f.records();
        }
        if replayed > 0 {
            log::info!(
                "audit: {replayed} record(s) from the spool written to {}",
                self.database
            );
        }
        if more && self.store.is_some() {
            self.next_replay = Instant::now();
        }
        self.metrics.spooled.set(gauge(self.spool.waiting()));
    }

    async fn purge(&mut self) {
        self.next_purge = Instant::now() + PURGE_EVERY;
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let now = UnixMs::now();
        let before = now.days_before(self.retention_days);
        match tokio::time::timeout(PURGE_TIMEOUT, store.purge(before, now)).await {
            Ok(Ok(p)) => {
                if p.orders + p.evidence + p.agent_events + p.sessions > 0 {
                    log::info!(
                        "audit: purged {} record(s), {} evidence, {} agent event(s) older than \
                         {} days and {} expired session(s)",
                        p.orders,
                        p.evidence,
                        p.agent_events,
                        self.retention_days,
                        p.sessions
                    );
                }
            }
            Ok(Err(e)) => self.lose_connection(&format!("purge: {e}")).await,
            Err(_) => {
                self.lose_connection(&format!("purge: no answer within {PURGE_TIMEOUT:?}"))
                    .await
            }
        }
    }

    /// The shutdown: what is queued goes to the spool and, within [`SHUTDOWN_FLUSH`], to the
    /// database (waiting for a connection under way); then the connection is closed.
    async fn finish(&mut self, mut rx: mpsc::Receiver<Msg>, connecting: Option<Connecting>) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        let mut records = Vec::new();
        let mut flushes = Vec::new();
        rx.close();
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Record(r) => records.push(*r),
                Msg::Flush(t) => flushes.push(t),
            }
        }
        if !records.is_empty() && self.store.is_none() {
            if let Some(c) = connecting {
                if let Ok(Ok(store)) = tokio::time::timeout_at(deadline, c).await {
                    self.store = Some(store);
                }
            }
        }
        for batch in records.chunks(BATCH_MAX) {
            let left = deadline.saturating_duration_since(Instant::now());
            self.write(batch, left.max(Duration::from_millis(1))).await;
        }
        for t in flushes {
            let _ = t.send(());
        }
        if let Some(store) = self.store.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), store.close()).await;
        }
        if self.spool.waiting() > 0 {
            log::warn!(
                "audit: {} record(s) wait in the spool {} for the next start",
                self.spool.waiting(),
                self.spool.dir().display()
            );
        }
    }
}
