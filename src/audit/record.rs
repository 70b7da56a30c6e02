//! One order's record: what the audit trail keeps of it, typed, from the moment the order ends
//! (or is refused) until it is written. Strings appear only in [`Row`], the shape of the SQL
//! tables and of the spool files, so a state or code can never be misspelt on the way.
//!
//! The record holds the masked number and the keyed pseudonym, never the whole number; the
//! whole number and the name exist only inside the [`Evidence`] (BankID's `completionData`),
//! which is kept only while `audit_keep_evidence` is on.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Channel;
use crate::order::{Mode, OrderError, Refusal, State};
use crate::rp::{CallInitiator, HintCode};

/// The longest agent name, call identifier or caller ID kept (characters); longer ones are cut.
pub const MAX_TAG_CHARS: usize = 128;

/// A moment as Unix milliseconds, as the tables store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMs(pub i64);

impl UnixMs {
    /// Now.
    pub fn now() -> UnixMs {
        UnixMs::from(SystemTime::now())
    }

    /// `days` days earlier (saturating).
    pub fn days_before(self, days: u32) -> UnixMs {
        UnixMs(self.0.saturating_sub(i64::from(days) * 86_400_000))
    }
}

impl From<SystemTime> for UnixMs {
    fn from(t: SystemTime) -> UnixMs {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixMs(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => UnixMs(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// A record's id: 128 random bits as 32 hex digits, made when the order ends, so a record
/// replayed from the spool is recognised (`ON CONFLICT (id) DO NOTHING`) and inserted once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId(String);

impl RecordId {
    /// A fresh id.
    pub fn random() -> RecordId {
        RecordId(format!("{:032x}", rand::random::<u128>()))
    }

    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an order ended without an identification (with its state `Failed` or `Error`), or why
/// it never reached BankID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The order's own error: BankID's error code or what happened here.
    Order(OrderError),
    /// An anti-vishing limit refused the start: nothing was sent to BankID. Recorded so that
    /// supervisors see blocked attempts, not only orders.
    Refused(Refusal),
    /// The engine had `max_orders` orders open: nothing was sent to BankID.
    TooManyOrders,
}

impl Failure {
    /// The stored `error_code`: the order error as `bankid_hint_code` spells it
    /// (`deadline`, `internalError`, `http-503`, …), or `refused-` and the refusal's reason
    /// (`refused-declinedRecently`, `refused-numberRateLimited`, `refused-callerRateLimited`,
    /// `refused-saturated`, `refused-tooManyOrders`).
    pub fn code(&self) -> String {
        match self {
            Failure::Order(e) => e.to_string(),
            Failure::Refused(r) => format!("refused-{}", r.reason()),
            Failure::TooManyOrders => "refused-tooManyOrders".to_string(),
        }
    }
}

/// BankID's `completionData` exactly as it sent it (JSON text): `user` with the whole personal
/// number and name, `device`, `bankIdIssueDate`, `stepUp`, `signature`, `ocspResponse`.
/// Personal data: never in `Debug`, logs or messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Evidence(String);

impl Evidence {
    /// The evidence in `raw`, BankID's JSON text.
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Evidence {
        Evidence(raw.get().to_string())
    }

    /// The JSON text, as BankID sent it.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Evidence({} bytes)", self.0.len())
    }
}

/// One order as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Made when the order ended.
    pub id: RecordId,
    /// When the host started it.
    pub started_at: UnixMs,
    /// When it reached its final state (or was refused).
    pub finished_at: UnixMs,
    /// From start to final state, measured on the monotonic clock.
    pub duration_ms: i64,
    /// The entry point.
    pub channel: Channel,
    /// The agent's login name (agent page).
    pub agent: Option<String>,
    /// The host's identifier of the call (Asterisk's `uniqueid`).
    pub call_id: Option<String>,
    /// The caller ID the host passed.
    pub caller_id: Option<String>,
    /// The machine that wrote it.
    pub host: String,
    /// Identify or sign.
    pub mode: Mode,
    /// `user` or `RP`, as sent to BankID.
    pub call_initiator: CallInitiator,
    /// The final state (never `Pending`).
    pub state: State,
    /// BankID's last hint code.
    pub hint_code: Option<HintCode>,
    /// Why it failed, when it did for a reason of its own.
    pub failure: Option<Failure>,
    /// BankID's order reference, once it had one.
    pub order_ref: Option<String>,
    /// `YYMMDD-XXXX`.
    pub pnr_masked: String,
    /// The keyed pseudonym of the whole number ([`super::PseudonymKey::pseudonym`]).
    pub pnr_pseudonym: String,
    /// Which key made it ([`super::PseudonymKey::id`]).
    pub pseudonym_key_id: String,
    /// BankID's `completionData` of a complete order, when evidence is kept.
    pub evidence: Option<Evidence>,
}

/// A record as the tables hold it (`audit_orders`, and `audit_evidence` when
/// `completion_data` is set), and as a spool file holds it: plain strings and integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// `audit_orders.id`.
    pub id: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub finished_at: i64,
    /// Milliseconds.
    pub duration_ms: i64,
    /// `c-abi`, `identify`, `fastagi`, `flow-run`, `agent`.
    pub channel: String,
    /// The agent's login name.
    pub agent: Option<String>,
    /// The call's identifier.
    pub call_id: Option<String>,
    /// The caller ID.
    pub caller_id: Option<String>,
    /// The writing host.
    pub host: String,
    /// `identify` or `sign`.
    pub mode: String,
    /// `user` or `RP`.
    pub call_initiator: String,
    /// `complete`, `failed` or `error`.
    pub state: String,
    /// BankID's hint code.
    pub hint_code: Option<String>,
    /// [`Failure::code`].
    pub error_code: Option<String>,
    /// BankID's orderRef.
    pub order_ref: Option<String>,
    /// `YYMMDD-XXXX`.
    pub pnr_masked: String,
    /// 64 hex digits.
    pub pnr_pseudonym: String,
    /// 16 hex digits.
    pub pseudonym_key_id: String,
    /// `audit_evidence.completion_data`: BankID's JSON text.
    pub completion_data: Option<String>,
}

impl Record {
    /// The record as rows are stored.
    pub fn to_row(&self) -> Row {
        // A record is made when the order is final; a pending state here would be a bug, and
        // is stored as the error it then is rather than as something that looks alive.
        let state = match self.state {
            State::Pending => State::Error,
            s => s,
        };
        Row {
            id: self.id.as_str().to_string(),
            started_at: self.started_at.0,
            finished_at: self.finished_at.0,
            duration_ms: self.duration_ms,
            channel: self.channel.as_str().to_string(),
            agent: self.agent.clone(),
            call_id: self.call_id.clone(),
            caller_id: self.caller_id.clone(),
            host: self.host.clone(),
            mode: self.mode.as_str().to_string(),
            call_initiator: self.call_initiator.as_str().to_string(),
            state: state.as_str().to_string(),
            hint_code: self.hint_code.as_ref().map(|h| h.as_str().to_string()),
            error_code: self.failure.as_ref().map(Failure::code),
            order_ref: self.order_ref.clone(),
            pnr_masked: self.pnr_masked.clone(),
            pnr_pseudonym: self.pnr_pseudonym.clone(),
            pseudonym_key_id: self.pseudonym_key_id.clone(),
            completion_data: self.evidence.as_ref().map(|e| e.as_json().to_string()),
        }
    }
}

/// An identifier the host passed (agent, call id, caller id) as it is kept: control characters
/// dropped, at most [`MAX_TAG_CHARS`] characters, `None` when nothing is left.
pub fn tag(s: Option<&str>) -> Option<String> {
    let kept: String = s?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TAG_CHARS)
        .collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_string())
}

/// This machine's name (the kernel's node name), read once.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let uname = rustix::system::uname();
        let name = uname.nodename().to_string_lossy();
        tag(Some(&name)).unwrap_or_else(|| "unknown".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderError;
    use std::time::Duration;

    fn record() -> Record {
        Record {
            id: RecordId::random(),
            started_at: UnixMs(1_700_000_000_000),
            finished_at: UnixMs(1_700_000_004_000),
            duration_ms: 4000,
            channel: Channel::FastAgi,
            agent: None,
            call_id: Some("1700000000.1".into()),
            caller_id: Some("46700000000".into()),
            host: host_name().to_string(),
            mode: Mode::Identify,
            call_initiator: CallInitiator::User,
            state: State::Failed,
            hint_code: Some(HintCode::UserDeclinedCall),
            failure: None,
            order_ref: Some("a-ref".into()),
            pnr_masked: "850312-XXXX".into(),
            pnr_pseudonym: "ab".repeat(32),
            pseudonym_key_id: "cd".repeat(8),
            evidence: None,
        }
    }

    #[test]
    fn a_record_becomes_the_rows_strings_as_stored() {
        let r = record();
        let row = r.to_row();
        assert_eq!(row.id.len(), 32);
        assert!(row.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(row.channel, "fastagi");
        assert_eq!(row.state, "failed");
        assert_eq!(row.hint_code.as_deref(), Some("userDeclinedCall"));
        assert_eq!(row.call_initiator, "user");
        assert_eq!(row.mode, "identify");
        assert_eq!(row.error_code, None);
        let refused = Record {
            state: State::Error,
            failure: Some(Failure::Refused(Refusal::DeclinedRecently {
                remaining: Duration::from_secs(60),
            })),
            ..record()
        };
        assert_eq!(
            refused.to_row().error_code.as_deref(),
            Some("refused-declinedRecently")
        );
        let deadline = Record {
            state: State::Error,
            failure: Some(Failure::Order(OrderError::Http(503))),
            ..record()
        };
        assert_eq!(deadline.to_row().error_code.as_deref(), Some("http-503"));
        let spooled: Row = serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert_eq!(spooled, row);
        assert_ne!(RecordId::random(), RecordId::random());
    }

    #[test]
    fn host_tags_are_bounded_and_evidence_never_shows_in_debug() {
        assert_eq!(
            tag(Some("  1700000000.1\n")).as_deref(),
            Some("1700000000.1")
        );
        assert_eq!(tag(Some("\u{7}\n")), None);
        assert_eq!(tag(Some(&"x".repeat(1000))).unwrap().len(), MAX_TAG_CHARS);
        let raw = serde_json::value::RawValue::from_string(
            r#"{"user":{"personalNumber":"198503121116"}}"#.into(),
        )
        .unwrap();
        let e = Evidence::from_raw(&raw);
        assert!(e.as_json().contains("198503121116"));
        assert!(!format!("{e:?}").contains("1985"));
        let r = Record {
            evidence: Some(e),
            ..record()
        };
        assert!(!format!("{r:?}").contains("198503121116"));
        assert!(!host_name().is_empty());
        assert_eq!(UnixMs(86_400_000).days_before(1), UnixMs(0));
    }
}
