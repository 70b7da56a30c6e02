//! The order book: orders, their time-based progression, and BankID's order rules.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};

use crate::scenario::{self, Scenario};

/// Which endpoint created an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    #[serde(rename = "auth")]
    Auth,
    #[serde(rename = "sign")]
    Sign,
    #[serde(rename = "phone/auth")]
    PhoneAuth,
    #[serde(rename = "phone/sign")]
    PhoneSign,
}

impl Kind {
    fn is_phone(self) -> bool {
        matches!(self, Kind::PhoneAuth | Kind::PhoneSign)
    }
}

/// What the parsed start request carries that the order needs later.
#[derive(Debug, Clone, Default)]
pub struct StartData {
    pub personal_number: Option<String>,
    pub user_visible_data: Option<String>,
    pub end_user_ip: Option<String>,
    pub mrtd: bool,
    pub call_initiator: Option<String>,
    /// `requirement.pinCode` was `true`.
    pub pin_code: bool,
    /// `userVisibleDataFormat` as sent (already checked to be a known value).
    pub visible_data_format: Option<String>,
    /// `userNonVisibleData` was sent (its content is not kept).
    pub non_visible_data: bool,
    /// The `requirement` object as sent, with any `personalNumber` in it masked.
    pub requirement: Option<Value>,
}

/// Why an order stopped before its scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// The RP called `cancel`.
    CancelledByRp,
    /// A second order for the same person replaced it (`failed/cancelled`).
    Replaced,
}

#[derive(Debug)]
struct Order {
    kind: Kind,
    data: StartData,
    scenario: Scenario,
    created: Instant,
    created_wall: SystemTime,
    interrupted: Option<(Interrupt, Instant)>,
    final_collected: bool,
    collects: Vec<u64>,
}

/// Where an order stands at a given instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pending(String),
    Complete,
    Failed(String),
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Pending(_) => "pending",
            Status::Complete => "complete",
            Status::Failed(_) => "failed",
        }
    }
}

/// One row of `GET /sim/orders`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    pub order_ref: String,
    pub endpoint: Kind,
    /// `YYMMDD-XXXX`: never the whole number.
    pub personal_number_masked: Option<String>,
    pub call_initiator: Option<String>,
    pub status: String,
    pub hint_code: Option<String>,
    /// The RP cancelled it with `cancel`.
    pub cancelled_by_rp: bool,
    /// Its final status has been collected once.
    pub final_collected: bool,
    /// Milliseconds since the Unix epoch at which it was created.
    pub created_unix_ms: u64,
    /// Milliseconds since the Unix epoch at which it reached its final status, if it has.
    pub final_unix_ms: Option<u64>,
    /// Milliseconds after creation of every collect the RP made.
    pub collects_ms: Vec<u64>,
    /// `identify` (auth endpoints) or `sign`.
    pub mode: &'static str,
    /// `userVisibleData` was sent (the text itself is not listed).
    pub user_visible_data: bool,
    /// Characters of the decoded `userVisibleData`, when sent.
    pub user_visible_data_chars: Option<usize>,
    /// `userVisibleDataFormat` as sent.
    pub user_visible_data_format: Option<String>,
    /// `userNonVisibleData` was sent.
    pub user_non_visible_data: bool,
    /// The `requirement` as sent (a `personalNumber` in it masked).
    pub requirement: Option<Value>,
}

/// Timing rules, already scaled by the speed factor.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub speed: f64,
    pub lifetime: Duration,
    pub keep_complete: Duration,
    pub keep_failed: Duration,
}

impl Timing {
    fn scale(&self, ms: u64) -> Duration {
        Duration::from_secs_f64(ms as f64 / 1000.0 * self.speed)
    }
}

/// A BankID error answer: HTTP status, `errorCode`, `details`.
pub type ApiError = (u16, &'static str, String);

fn invalid(details: impl Into<String>) -> ApiError {
    (400, "invalidParameters", details.into())
}

/// All orders and per-person scenario overrides.
#[derive(Debug, Default)]
pub struct Book {
    orders: HashMap<String, Order>,
    /// The newest order for each personal number. `alreadyInProgress` leaves at most one pending
    /// order per number, always the newest, so a start looks up one order instead of scanning
    /// them all (10 000 simultaneous starts were quadratic).
    newest: HashMap<String, String>,
    overrides: HashMap<String, Scenario>,
    /// `bankIdIssueDate` per personal number, when not the default.
    issue_dates: HashMap<String, String>,
    last_purge: Option<Instant>,
}

fn mask(pnr: &str) -> String {
    format!("{}-XXXX", pnr.get(2..8).unwrap_or("??????"))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn new_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl Order {
    /// Status at `now`, and the instant the final status was reached (if it was).
    fn status(&self, now: Instant, t: &Timing) -> (Status, Option<Instant>) {
        if let Some((why, at)) = self.interrupted {
            let hint = match why {
                Interrupt::CancelledByRp => "userCancel",
                Interrupt::Replaced => "cancelled",
            };
            return (Status::Failed(hint.into()), Some(at));
        }
        let elapsed = now.saturating_duration_since(self.created);
        let expired_at = self.created + t.lifetime;
        let mut acc = Duration::ZERO;
        for step in &self.scenario.steps {
            acc += t.scale(step.ms);
            if elapsed < acc && elapsed < t.lifetime {
                return (Status::Pending(step.hint_code.clone()), None);
            }
        }
        let last_hint = || {
            self.scenario
                .steps
                .last()
                .map(|s| s.hint_code.clone())
                .unwrap_or_else(|| "outstandingTransaction".into())
        };
        if self.scenario.outcome == "expiredTransaction" || acc >= t.lifetime {
            if elapsed < t.lifetime {
                return (Status::Pending(last_hint()), None);
            }
            return (
                Status::Failed("expiredTransaction".into()),
                Some(expired_at),
            );
        }
        let done_at = self.created + acc;
        if self.scenario.completes() {
            (Status::Complete, Some(done_at))
        } else {
            (Status::Failed(self.scenario.outcome.clone()), Some(done_at))
        }
    }

    /// Whether BankID still knows this order at `now`.
    fn alive(&self, now: Instant, t: &Timing) -> bool {
        match self.status(now, t) {
            (Status::Pending(_), _) => true,
            (Status::Complete, Some(at)) => now < at + t.keep_complete,
            (_, Some(at)) => {
                self.interrupted != Some((Interrupt::CancelledByRp, at)) && now < at + t.keep_failed
            }
            _ => false,
        }
    }
}

impl Book {
    /// Sets (or with `None` clears) the scenario for a personal number.
    pub fn set_scenario(&mut self, pnr: &str, scenario: Option<Scenario>) {
        match scenario {
            Some(s) => self.overrides.insert(pnr.to_string(), s),
            None => self.overrides.remove(pnr),
        };
    }

    /// Sets (or with `None` clears) the `bankIdIssueDate` a personal number's orders complete with.
    pub fn set_issue_date(&mut self, pnr: &str, date: Option<String>) {
        match date {
            Some(d) => self.issue_dates.insert(pnr.to_string(), d),
            None => self.issue_dates.remove(pnr),
        };
    }

    /// The personal number of an order, if it has one.
    pub fn personal_number_of(&self, order_ref: &str) -> Option<String> {
        self.orders.get(order_ref)?.data.personal_number.clone()
    }

    /// Makes a final status collectable again: an answer shape replaced it on the wire.
    pub fn uncollect(&mut self, order_ref: &str) {
        if let Some(o) = self.orders.get_mut(order_ref) {
            o.final_collected = false;
        }
    }

    fn purge(&mut self, now: Instant, t: &Timing) {
        self.orders
            .retain(|_, o| o.alive(now, t) || now < o.created + t.lifetime + t.keep_failed);
        let orders = &self.orders;
        self.newest.retain(|_, r| orders.contains_key(r));
        self.last_purge = Some(now);
    }

    /// Starts an order, applying the `alreadyInProgress` rule.
    pub fn start(&mut self, kind: Kind, data: StartData, t: &Timing) -> Result<Value, ApiError> {
        let now = Instant::now();
        // Forgotten orders are dropped at most once a second: purging is a scan of every order.
        let purge_due = self
            .last_purge
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if self.orders.len() > 1000 && purge_due {
            self.purge(now, t);
        }
        if let Some(pnr) = data.personal_number.as_deref() {
            let running = self
                .newest
                .get(pnr)
                .and_then(|r| self.orders.get_mut(r))
                .filter(|o| matches!(o.status(now, t).0, Status::Pending(_)));
            if let Some(o) = running {
                o.interrupted = Some((Interrupt::Replaced, now));
                log::info!("alreadyInProgress for {}", mask(pnr));
                return Err((
                    400,
                    "alreadyInProgress",
                    "An order for this personal number is already in progress.".into(),
                ));
            }
        }
        let scenario = data
            .personal_number
            .as_deref()
            .and_then(|p| self.overrides.get(p).cloned())
            .unwrap_or_else(|| scenario::builtin(data.personal_number.as_deref(), kind.is_phone()))
            .with_requirements(data.personal_number.as_deref(), data.mrtd, data.pin_code);
        let order_ref = new_uuid();
        log::info!(
            "{} order {order_ref} for {}",
            serde_json::to_value(kind)
                .unwrap_or_default()
                .as_str()
                .unwrap_or("?"),
            data.personal_number
                .as_deref()
                .map(mask)
                .unwrap_or_else(|| "anyone".into())
        );
        if let Some(pnr) = &data.personal_number {
            self.newest.insert(pnr.clone(), order_ref.clone());
        }
        self.orders.insert(
            order_ref.clone(),
            Order {
                kind,
                data,
                scenario,
                created: now,
                created_wall: SystemTime::now(),
                interrupted: None,
                final_collected: false,
                collects: Vec::new(),
            },
        );
        Ok(if kind.is_phone() {
            json!({ "orderRef": order_ref })
        } else {
            json!({
                "orderRef": order_ref,
                "autoStartToken": new_uuid(),
                "qrStartToken": new_uuid(),
                "qrStartSecret": new_uuid(),
            })
        })
    }

    fn live_order(&mut self, order_ref: &str, t: &Timing) -> Result<&mut Order, ApiError> {
        let now = Instant::now();
        match self.orders.get_mut(order_ref) {
            Some(o) if o.alive(now, t) => Ok(o),
            _ => Err(invalid("No such order")),
        }
    }

    /// `collect`: the order's status, once only after it is final.
    pub fn collect(&mut self, order_ref: &str, t: &Timing) -> Result<Value, ApiError> {
        let now = Instant::now();
        let issue_date = self.issue_date_for(order_ref);
        let o = self.live_order(order_ref, t)?;
        if o.final_collected {
            return Err(invalid("No such order"));
        }
        o.collects
            .push(now.saturating_duration_since(o.created).as_millis() as u64);
        let (status, _) = o.status(now, t);
        let mut v = json!({ "orderRef": order_ref, "status": status.name() });
        match &status {
            Status::Pending(h) | Status::Failed(h) => v["hintCode"] = json!(h),
            Status::Complete => v["completionData"] = completion_data(o, &issue_date),
        }
        if !matches!(status, Status::Pending(_)) {
            o.final_collected = true;
        }
        Ok(v)
    }

    fn issue_date_for(&self, order_ref: &str) -> String {
        self.orders
            .get(order_ref)
            .and_then(|o| o.data.personal_number.as_ref())
            .and_then(|p| self.issue_dates.get(p))
            .cloned()
            .unwrap_or_else(|| DEFAULT_ISSUE_DATE.to_string())
    }

    /// `cancel`: a pending order is cancelled; anything else is `invalidParameters`.
    pub fn cancel(&mut self, order_ref: &str, t: &Timing) -> Result<Value, ApiError> {
        let now = Instant::now();
        let o = self.live_order(order_ref, t)?;
        if !matches!(o.status(now, t).0, Status::Pending(_)) {
            return Err(invalid("Order is not pending"));
        }
        o.interrupted = Some((Interrupt::CancelledByRp, now));
        log::info!("order {order_ref} cancelled by the RP");
        Ok(json!({}))
    }

    /// Every order BankID would still know, plus those cancelled by the RP, newest last.
    pub fn list(&self, t: &Timing) -> Vec<OrderInfo> {
        let now = Instant::now();
        let mut rows: Vec<(Instant, OrderInfo)> = self
            .orders
            .iter()
            .map(|(r, o)| {
                let (status, final_at) = o.status(now, t);
                let hint_code = match &status {
                    Status::Pending(h) | Status::Failed(h) => Some(h.clone()),
                    Status::Complete => None,
                };
                let wall =
                    |i: Instant| unix_ms(o.created_wall + i.saturating_duration_since(o.created));
                (
                    o.created,
                    OrderInfo {
                        order_ref: r.clone(),
                        endpoint: o.kind,
                        personal_number_masked: o.data.personal_number.as_deref().map(mask),
                        call_initiator: o.data.call_initiator.clone(),
                        status: status.name().into(),
                        hint_code,
                        cancelled_by_rp: matches!(
                            o.interrupted,
                            Some((Interrupt::CancelledByRp, _))
                        ),
                        final_collected: o.final_collected,
                        created_unix_ms: unix_ms(o.created_wall),
                        final_unix_ms: final_at.map(wall),
                        collects_ms: o.collects.clone(),
                        mode: match o.kind {
                            Kind::Sign | Kind::PhoneSign => "sign",
                            Kind::Auth | Kind::PhoneAuth => "identify",
                        },
                        user_visible_data: o.data.user_visible_data.is_some(),
                        user_visible_data_chars: o
                            .data
                            .user_visible_data
                            .as_ref()
                            .map(|t| t.chars().count()),
                        user_visible_data_format: o.data.visible_data_format.clone(),
                        user_non_visible_data: o.data.non_visible_data,
                        requirement: o.data.requirement.clone(),
                    },
                )
            })
            .collect();
        rows.sort_by_key(|(c, _)| *c);
        rows.into_iter().map(|(_, i)| i).collect()
    }
}

/// `bankIdIssueDate` as BankID sends it: the date with a zone suffix (independent clients'
/// test suites record `2023-11-29Z`). [`Book::set_issue_date`] sends another form.
pub const DEFAULT_ISSUE_DATE: &str = "2024-01-15Z";

fn completion_data(o: &Order, issue_date: &str) -> Value {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let pnr = o
        .data
        .personal_number
        .clone()
        .unwrap_or_else(|| "198503121116".into());
    let (given, sur) = scenario::names(&pnr);
    let visible = o.data.user_visible_data.clone().unwrap_or_default();
    let signature = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\
         <SignedInfo><!-- bankid-sim: not a valid signature --></SignedInfo>\
         <Object><bankIdSignedData><usrVisibleData>{visible}</usrVisibleData>\
         <srvInfo><nonce>{}</nonce></srvInfo></bankIdSignedData></Object></Signature>",
        new_uuid()
    );
    let mut ocsp = b"bankid-sim OCSP placeholder (not a real OCSP response) ".to_vec();
    ocsp.extend_from_slice(new_uuid().as_bytes());
    let mut v = json!({
        "user": {
            "personalNumber": pnr,
            "name": format!("{given} {sur}"),
            "givenName": given,
            "surname": sur,
        },
        "device": {
            "ipAddress": o.data.end_user_ip.clone().unwrap_or_else(|| "192.0.2.10".into()),
            "uhi": "OZvYM9VvyiAmG7NA5jU5zqGcVpo=",
        },
        "bankIdIssueDate": issue_date,
        "signature": b64(signature.as_bytes()),
        "ocspResponse": b64(&ocsp),
    });
    if o.data.mrtd {
        v["stepUp"] = json!({ "mrtd": true });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(pnr: &str) -> StartData {
        StartData {
            personal_number: Some(pnr.to_string()),
            user_visible_data: None,
            end_user_ip: None,
            mrtd: false,
            call_initiator: Some("user".into()),
            ..StartData::default()
        }
    }

    fn code(r: Result<Value, ApiError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err((_, code, _)) => code,
        }
    }

    #[test]
    fn already_in_progress_holds_among_thousands_of_orders_and_across_a_purge() {
        let t = Timing {
            speed: 1.0,
            lifetime: Duration::from_secs(180),
            keep_complete: Duration::from_secs(180),
            keep_failed: Duration::from_secs(300),
        };
        let mut book = Book::default();
        let numbers: Vec<String> = (0..3000).map(|i| format!("19{:010}", i)).collect();
        for p in &numbers {
            assert_eq!(code(book.start(Kind::PhoneAuth, phone(p), &t)), "ok");
        }
        // A purge ran (more than 1 000 orders) and kept every pending order and its index.
        assert!(book.last_purge.is_some());
        assert_eq!(book.newest.len(), 3000);
        for p in [&numbers[0], &numbers[1500], &numbers[2999]] {
            assert_eq!(
                code(book.start(Kind::PhoneAuth, phone(p), &t)),
                "alreadyInProgress"
            );
            // The running order was cancelled, so the next start goes through.
            assert_eq!(code(book.start(Kind::PhoneAuth, phone(p), &t)), "ok");
        }
        assert_eq!(book.orders.len(), 3003);
        // An order without a personal number never collides.
        let anyone = StartData {
            personal_number: None,
            ..phone("")
        };
        assert_eq!(code(book.start(Kind::Auth, anyone, &t)), "ok");
    }
}
