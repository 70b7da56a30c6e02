//! The background task of one order: the start phase (`phone/auth`, retried only when BankID
//! itself says it is overloaded), the collect phase (every poll interval until final), and the
//! one way out: an order that ends here for any reason — cancelled, released, deadline,
//! shutdown, an error — is cancelled at BankID, unless BankID already said it is over. A
//! forgotten order blocks that person from identifying anywhere for minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Cell, Inner, OrderError, State};
use crate::metrics::Retry;
use crate::rp::{CollectResponse, CollectStatus, ErrorCode, HintCode, PhoneAuthRequest, RpError};

/// How many times a start is retried on BankID's own `maintenance` / `tooManyRequests`.
pub(super) const MAX_START_RETRIES: u32 = 5;

/// How the collect phase ended.
enum End {
    /// BankID said the order is over (final status collected, or the order is gone).
    AtBankId,
    /// It ended here; BankID must be told.
    Here,
}

/// Uncounts the task when it ends, whichever way (shutdown waits for the count to reach 0),
/// and counts the order's final state: once per order, and never on the hot path.
struct Live<'a>(&'a Inner, &'a Cell);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        {
            let p = self.1.progress();
            self.0
                .metrics
                .order_ended(p.state, p.hint_code.as_ref(), p.error.as_ref());
            // The order is over (and BankID told): its record goes to the writer, without
            // waiting, before the task counts itself out (shutdown waits for that count).
            if let Some(audit) = &self.0.audit {
                audit.submit(self.1.record(&p, audit.key()));
            }
        }
        self.0
            .live_tasks
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs one order to its end. `inner.live_tasks` was counted up by the spawner.
pub(super) async fn run(inner: Arc<Inner>, cell: Arc<Cell>, request: PhoneAuthRequest) {
    let _live = Live(&inner, &cell);
    let deadline = Instant::now()
        .checked_add(inner.config.order_timeout)
        .unwrap_or_else(Instant::now);
    let Some(order_ref) = start(&inner, &cell, &request, deadline).await else {
        return;
    };
    log::info!("order {order_ref} started for {}", cell.pnr.masked());
    cell.progress().order_ref = Some(order_ref.clone());
    if let End::Here = collect(&inner, &cell, &order_ref, deadline).await {
        cancel_at_bankid(&inner, &order_ref).await;
    }
}

/// Tells BankID the order is over, best effort within [`super::CANCEL_TIMEOUT`]. A cancel may
/// be sent again (a second one answers `invalidParameters`), so any failure but "no such
/// order" is retried after 100, 200, 400 … ms while the budget lasts.
async fn cancel_at_bankid(inner: &Inner, order_ref: &str) {
    let until = Instant::now() + super::CANCEL_TIMEOUT;
    let mut pause = Duration::from_millis(100);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let e = match tokio::time::timeout(left, inner.client.cancel(order_ref)).await {
            Ok(Ok(())) => {
                log::info!("order {order_ref} cancelled at BankID");
                return;
            }
            Ok(Err(RpError::Api {
                code: ErrorCode::InvalidParameters,
                ..
            })) => {
                log::info!("order {order_ref}: BankID no longer has it; nothing to cancel");
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer".to_string(),
        };
        if Instant::now() + pause >= until {
            log::warn!(
                "cancel of {order_ref}: {e}; gave up after {:?}: the order may stay pending at \
                 BankID until it expires",
                super::CANCEL_TIMEOUT
            );
            return;
        }
        log::warn!("cancel of {order_ref}: {e}; retrying in {pause:?}");
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// A wait, kept within [poll interval, time left before the deadline]: a `RateLimit-Reset` of
/// 0 does not make a busy loop, and one of an hour (or 2⁶⁴ s) does not outlive the order.
fn clamp_wait(wait: Duration, poll_interval: Duration, deadline: Instant) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    wait.max(poll_interval).min(left)
}

/// Backoff for an overload answer: BankID's `RateLimit-Reset`/`Retry-After` when given, else
/// 1, 2, 4, 8 s. Clamped by the caller.
fn backoff(err: &RpError, attempt: u32) -> Duration {
    match err {
        RpError::Api {
            retry_after: Some(d),
            ..
        } => *d,
        _ => Duration::from_secs(1 << attempt.min(3)),
    }
}

/// Waits `d`, or less when the order is cancelled here.
async fn sleep_or_cancel(cell: &Cell, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = cell.wake.notified() => {}
    }
}

/// `phone/auth`. Never blindly repeated: only BankID's own JSON `maintenance` /
/// `tooManyRequests` (nothing was created) is retried, at most [`MAX_START_RETRIES`] times; a
/// proxy's HTML 503 may have forwarded the request already. `None` when the order ended here
/// without an `orderRef` (nothing to cancel).
async fn start(
    inner: &Inner,
    cell: &Cell,
    request: &PhoneAuthRequest,
    deadline: Instant,
) -> Option<String> {
    let who = cell.pnr.masked();
    let mut attempt = 0;
    loop {
        if cell.is_cancelled() {
            // Cancelled before BankID was asked (or between retries): nothing exists there.
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let call = async {
            match cell.mode {
                super::Mode::Identify => inner.client.phone_auth(request).await,
                super::Mode::Sign => inner.client.phone_sign(request).await,
            }
        };
        let e = match tokio::time::timeout(left, call).await {
            // Even if the order was cancelled meanwhile, it exists now: the caller cancels it.
            Ok(Ok(r)) => return Some(r.order_ref),
            Ok(Err(e)) => e,
            Err(_) => {
                log::warn!("phone/auth for {who}: no answer before the local deadline");
                cell.finish(State::Error, None, Some(OrderError::Deadline));
                return None;
            }
        };
        if e.is_bankid_overload() && attempt < MAX_START_RETRIES {
            let wait = clamp_wait(backoff(&e, attempt), inner.config.poll_interval, deadline);
            attempt += 1;
            if wait.is_zero() || Instant::now() + wait >= deadline {
                log::warn!("phone/auth for {who}: {e}; no time left before the local deadline");
                cell.finish(State::Error, None, Some(OrderError::from(&e)));
                return None;
            }
            log::warn!("phone/auth for {who}: {e}; retry {attempt} in {wait:?}");
            inner.metrics.retry(Retry::Start);
            sleep_or_cancel(cell, wait).await;
            continue;
        }
        log::warn!("phone/auth for {who} failed: {e}");
        cell.finish(State::Error, None, Some(OrderError::from(&e)));
        return None;
    }
}

/// Collects until BankID says final, or the order ends here (cancel, release, shutdown,
/// deadline, an error answer).
async fn collect(inner: &Inner, cell: &Cell, order_ref: &str, deadline: Instant) -> End {
    let cfg = &inner.config;
    let mut delay = cfg.poll_interval;
    let mut overload = 0;
    // The last answer, if it was an overload (503/429).
    let mut overloaded: Option<OrderError> = None;
    loop {
        if !cell.is_cancelled() {
            sleep_or_cancel(cell, clamp_wait(delay, Duration::ZERO, deadline)).await;
        }
        if cell.is_cancelled() {
            return End::Here;
        }
        if Instant::now() >= deadline {
            log::warn!("order {order_ref}: local deadline passed; cancelling it at BankID");
            // Still overloaded at the end: BankID's code says more than "deadline".
            let code = overloaded.take().unwrap_or(OrderError::Deadline);
            cell.finish(State::Error, None, Some(code));
            return End::Here;
        }
        delay = cfg.poll_interval;
        let answer = tokio::select! {
            a = inner.client.collect(order_ref) => a,
            _ = cell.wake.notified() => return End::Here,
        };
        match answer {
            Ok(resp) => {
                overload = 0;
                overloaded = None;
                if let Some(end) = on_answer(inner, cell, order_ref, resp) {
                    return end;
                }
            }
            Err(e) if e.is_retryable_overload() => {
                let wanted = backoff(&e, overload).max(cfg.poll_interval);
                // (`checked_add`: a reset of 2⁶⁴ s must not overflow the clock.)
                if Instant::now()
                    .checked_add(wanted)
                    .is_none_or(|t| t >= deadline)
                {
                    // BankID asks for longer than the order has left: end it now, not later.
                    log::warn!("collect {order_ref}: {e}; no time left before the local deadline");
                    cell.finish(State::Error, None, Some(OrderError::from(&e)));
                    return End::Here;
                }
                delay = clamp_wait(wanted, cfg.poll_interval, deadline);
                overload += 1;
                overloaded = Some(OrderError::from(&e));
                log::warn!("collect {order_ref}: {e}; retrying in {delay:?}");
                inner.metrics.retry(Retry::Collect);
            }
            Err(e @ (RpError::Transport { .. } | RpError::Decode(_))) => {
                overloaded = None;
                // A collect may be repeated: the next tick asks again.
                log::warn!("collect {order_ref}: {e}; retrying on the next tick");
                inner.metrics.retry(Retry::Collect);
            }
            Err(e) => {
                log::warn!("collect {order_ref} failed: {e}");
                let gone = matches!(
                    &e,
                    RpError::Api {
                        code: ErrorCode::InvalidParameters,
                        ..
                    }
                );
                cell.finish(State::Error, None, Some(OrderError::from(&e)));
                return if gone { End::AtBankId } else { End::Here };
            }
        }
    }
}

/// Applies one collect answer; `Some` when the order is over.
fn on_answer(inner: &Inner, cell: &Cell, order_ref: &str, resp: CollectResponse) -> Option<End> {
    let who = cell.pnr.masked();
    let hint = resp.hint_code;
    match resp.status {
        CollectStatus::Complete => {
            // Every field is untrusted: the number BankID identified must be the one we asked
            // for, compared as bytes (never sliced), or this is no identification at all.
            let theirs = resp
                .completion_data
                .as_ref()
                .map(|c| c.user.personal_number.as_str());
            if theirs != Some(cell.pnr.as_str12()) {
                log::warn!(
                    "SECURITY: order {order_ref} for {who}: BankID's complete answer names {} \
                     instead of the number asked for; treated as an error",
                    match theirs {
                        None => "no personal number".to_string(),
                        Some(n) => crate::personnummer::mask_str(n),
                    }
                );
                cell.finish(State::Error, None, Some(OrderError::PersonalNumberMismatch));
                // Already complete at BankID: nothing left to cancel.
                return Some(End::AtBankId);
            }
            let keep = inner.audit.as_ref().is_some_and(|a| a.keep_evidence());
            let mut p = cell.progress();
            if !p.state.is_final() {
                p.state = State::Complete;
                p.completion = resp.completion_data;
                p.evidence = resp
                    .completion_raw
                    .as_deref()
                    .filter(|_| keep)
                    .map(crate::audit::Evidence::from_raw);
                p.finished = Some(Instant::now());
                log::info!("order {order_ref} complete for {who}");
            }
            Some(End::AtBankId)
        }
        CollectStatus::Failed => {
            if hint == Some(HintCode::UserDeclinedCall) {
                log::warn!(
                    "SECURITY: order {order_ref}: {who} declined the call in the BankID app \
                     (possible fraud attempt); new orders for the number are blocked for {:?}",
                    inner.limits_settings().declined_block
                );
                inner.limits.declined(&cell.pnr, Instant::now());
                inner.metrics.declined_call();
            } else {
                log::info!(
                    "order {order_ref} failed: {}",
                    hint.as_ref().map_or("-", HintCode::as_str)
                );
            }
            cell.finish(State::Failed, hint, None);
            Some(End::AtBankId)
        }
        // pending, or a status this version does not know: keep collecting.
        _ => {
            let mut p = cell.progress();
            if !p.state.is_final() {
                p.hint_code = hint;
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_between_the_poll_interval_and_the_deadline() {
        let poll = Duration::from_secs(2);
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(clamp_wait(Duration::ZERO, poll, deadline), poll);
        let hour = clamp_wait(Duration::from_secs(3600), poll, deadline);
        assert!(hour <= Duration::from_secs(30) && hour > Duration::from_secs(29));
        let huge = clamp_wait(Duration::from_secs(u64::MAX), poll, deadline);
        assert!(huge <= Duration::from_secs(30));
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(
            clamp_wait(Duration::from_secs(5), poll, past),
            Duration::ZERO
        );
    }
}
