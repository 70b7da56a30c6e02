//! From what a supervisor asks for to SQL: the record filters (time range, outcome, channel,
//! agent, the pseudonym of a typed personal number), paging newest first, and the rows the
//! charts count — written once for SQLite and PostgreSQL (`$1` placeholders through sqlx's
//! `Any` driver). Values are always bound, never spliced into the text; the text itself is
//! made only of this module's own fragments.
//!
//! Every query is bounded: a time range of at most [`MAX_RANGE`], a page of at most
//! [`MAX_PAGE`] records, an export of at most [`MAX_EXPORT`], charts over at most
//! [`MAX_CHART_ROWS`].

use std::time::Duration;

use bankid::audit::Channel;
use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::Row;

/// The longest time range one query covers.
pub(crate) const MAX_RANGE: Duration = Duration::from_secs(366 * 24 * 3600);
/// The most records on one page.
pub(crate) const MAX_PAGE: u32 = 200;
/// The most records in one CSV export.
pub(crate) const MAX_EXPORT: u32 = 10_000;
/// The most records the charts count (the newest, when there are more: said on the page).
pub(crate) const MAX_CHART_ROWS: u32 = 200_000;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// A statement and its values, `$1` … in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    /// The statement with its values bound, ready to run.
    pub(crate) fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(t) => q.bind(t.as_str()),
            };
        }
        q
    }
}

/// Collects binds and hands out their placeholders.
#[derive(Default)]
struct Binds(Vec<Bind>);

impl Binds {
    fn push(&mut self, b: Bind) -> String {
        self.0.push(b);
        format!("${}", self.0.len())
    }
}

/// How an identification ended, as a supervisor filters it. `Declined` is the failed ones
/// whose caller said they were not on a call with us (`userDeclinedCall`): possible fraud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    Complete,
    Failed,
    Error,
    Declined,
}

/// BankID's hint for a declined call.
pub(crate) const DECLINED_HINT: &str = "userDeclinedCall";

impl Outcome {
    pub(crate) const ALL: [Outcome; 4] = [
        Outcome::Complete,
        Outcome::Failed,
        Outcome::Error,
        Outcome::Declined,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Declined => "declined",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The outcome of a stored record (its `state` and `hint_code`); `None` for a state this
    /// version does not know.
    pub(crate) fn of(state: &str, hint_code: Option<&str>) -> Option<Outcome> {
        match state {
            "complete" => Some(Outcome::Complete),
            "failed" if hint_code == Some(DECLINED_HINT) => Some(Outcome::Declined),
            "failed" => Some(Outcome::Failed),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }
}

/// Which records: finished within `[from_ms, to_ms)`, and whatever else is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub outcome: Option<Outcome>,
    pub channel: Option<Channel>,
    /// A canonical (lower-case) agent name.
    pub agent: Option<String>,
    /// The pseudonym of a typed personal number (never the number).
    pub pseudonym: Option<String>,
}

/// Where a page ends: the last record shown; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub finished_at: i64,
    pub id: String,
}

impl Cursor {
    /// `FINISHED_AT:ID`, as the page sends it back.
    pub(crate) fn parse(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once(':')?;
        let ok_id = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Cursor {
            finished_at: at.parse().ok()?,
            id: ok_id.then(|| id.to_string())?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.finished_at, self.id)
    }
}

/// The columns of a record, in [`Record::from_row`]'s order.
const RECORD_COLUMNS: &str = "id, started_at, finished_at, duration_ms, channel, agent, call_id, \
     caller_id, host, mode, call_initiator, state, hint_code, error_code, order_ref, pnr_masked";

impl Filter {
    /// `WHERE …` for this filter, its values pushed to `binds`.
    fn where_sql(&self, binds: &mut Binds) -> String {
        let mut conds = vec![
            format!("finished_at >= {}", binds.push(Bind::Int(self.from_ms))),
            format!("finished_at < {}", binds.push(Bind::Int(self.to_ms))),
        ];
        match self.outcome {
            None => {}
            Some(Outcome::Declined) => {
                conds.push(format!(
                    "state = {}",
                    binds.push(Bind::Text("failed".into()))
                ));
                conds.push(format!(
                    "hint_code = {}",
                    binds.push(Bind::Text(DECLINED_HINT.into()))
                ));
            }
            Some(Outcome::Failed) => {
                conds.push(format!(
                    "state = {}",
                    binds.push(Bind::Text("failed".into()))
                ));
                // NULL hints are failures too: `<>` alone would drop them.
                conds.push(format!(
                    "(hint_code IS NULL OR hint_code <> {})",
                    binds.push(Bind::Text(DECLINED_HINT.into()))
                ));
            }
            Some(o) => conds.push(format!(
                "state = {}",
                binds.push(Bind::Text(o.as_str().into()))
            )),
        }
        if let Some(c) = self.channel {
            conds.push(format!(
                "channel = {}",
                binds.push(Bind::Text(c.as_str().into()))
            ));
        }
        if let Some(a) = &self.agent {
            conds.push(format!("agent = {}", binds.push(Bind::Text(a.clone()))));
        }
        if let Some(p) = &self.pseudonym {
            conds.push(format!(
                "pnr_pseudonym = {}",
                binds.push(Bind::Text(p.clone()))
            ));
        }
        conds.join(" AND ")
    }

    /// One page of records, newest first, after `before` (the previous page's last record);
    /// `limit + 1` rows are asked for, so the caller knows whether there is a next page.
    pub(crate) fn page(&self, before: Option<&Cursor>, limit: u32) -> Sql {
        let mut binds = Binds::default();
        let mut cond = self.where_sql(&mut binds);
        if let Some(c) = before {
            let at = binds.push(Bind::Int(c.finished_at));
            let at2 = binds.push(Bind::Int(c.finished_at));
            let id = binds.push(Bind::Text(c.id.clone()));
            cond.push_str(&format!(
                " AND (finished_at < {at} OR (finished_at = {at2} AND id < {id}))"
            ));
        }
        let limit = binds.push(Bind::Int(i64::from(limit.min(MAX_PAGE)) + 1));
        Sql {
            text: format!(
                "SELECT {RECORD_COLUMNS} FROM audit_orders WHERE {cond} \
                 ORDER BY finished_at DESC, id DESC LIMIT {limit}"
            ),
            binds: binds.0,
        }
    }

    /// Every record for the CSV export, newest first, at most `limit` (≤ [`MAX_EXPORT`]) + 1
    /// (the extra one says the export was cut).
    pub(crate) fn export(&self, limit: u32) -> Sql {
        let mut binds = Binds::default();
        let cond = self.where_sql(&mut binds);
        let limit = binds.push(Bind::Int(i64::from(limit.min(MAX_EXPORT)) + 1));
        Sql {
            text: format!(
                "SELECT {RECORD_COLUMNS} FROM audit_orders WHERE {cond} \
                 ORDER BY finished_at DESC, id DESC LIMIT {limit}"
            ),
            binds: binds.0,
        }
    }
}

/// One record by its id.
pub(crate) fn record(id: &str) -> Sql {
    Sql {
        text: format!("SELECT {RECORD_COLUMNS} FROM audit_orders WHERE id = $1"),
        binds: vec![Bind::Text(id.to_string())],
    }
}

/// Whether a record has evidence: a count (0 or 1), which both databases return as BIGINT.
pub(crate) fn evidence_count(id: &str) -> Sql {
    Sql {
        text: "SELECT count(*) FROM audit_evidence WHERE order_id = $1".into(),
        binds: vec![Bind::Text(id.to_string())],
    }
}

/// A record's evidence: BankID's completionData as it sent it.
pub(crate) fn evidence(id: &str) -> Sql {
    Sql {
        text: "SELECT completion_data FROM audit_evidence WHERE order_id = $1".into(),
        binds: vec![Bind::Text(id.to_string())],
    }
}

/// The agent events about a record: those naming its id (an evidence download) or its BankID
/// `orderRef` (a cancel), oldest first.
pub(crate) fn events_about(id: &str, order_ref: Option<&str>) -> Sql {
    let mut binds = vec![Bind::Text(id.to_string())];
    let cond = match order_ref {
        Some(r) => {
            binds.push(Bind::Text(r.to_string()));
            "order_id IN ($1, $2)"
        }
        None => "order_id = $1",
    };
    Sql {
        text: format!(
            "SELECT at, agent, action, remote FROM audit_agent_events WHERE {cond} \
             ORDER BY at, id LIMIT 100"
        ),
        binds,
    }
}

/// What the charts count of each record finished within `[from_ms, to_ms)`, newest first, at
/// most [`MAX_CHART_ROWS`] + 1.
pub(crate) fn chart_rows(from_ms: i64, to_ms: i64) -> Sql {
    Sql {
        text: "SELECT finished_at, state, hint_code, error_code, duration_ms FROM audit_orders \
               WHERE finished_at >= $1 AND finished_at < $2 \
               ORDER BY finished_at DESC LIMIT $3"
            .into(),
        binds: vec![
            Bind::Int(from_ms),
            Bind::Int(to_ms),
            Bind::Int(i64::from(MAX_CHART_ROWS) + 1),
        ],
    }
}

/// One record as a supervisor sees it. Strings are what the database holds (written by this
/// or a newer version): shown as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub id: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub duration_ms: i64,
    pub channel: String,
    pub agent: Option<String>,
    pub call_id: Option<String>,
    pub caller_id: Option<String>,
    pub host: String,
    pub mode: String,
    pub call_initiator: String,
    pub state: String,
    pub hint_code: Option<String>,
    pub error_code: Option<String>,
    pub order_ref: Option<String>,
    pub pnr_masked: String,
}

impl Record {
    /// A row of `SELECT {RECORD_COLUMNS}`.
    pub(crate) fn from_row(row: &AnyRow) -> Result<Record, sqlx::Error> {
        Ok(Record {
            id: row.try_get("id")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            duration_ms: row.try_get("duration_ms")?,
            channel: row.try_get("channel")?,
            agent: row.try_get("agent")?,
            call_id: row.try_get("call_id")?,
            caller_id: row.try_get("caller_id")?,
            host: row.try_get("host")?,
            mode: row.try_get("mode")?,
            call_initiator: row.try_get("call_initiator")?,
            state: row.try_get("state")?,
            hint_code: row.try_get("hint_code")?,
            error_code: row.try_get("error_code")?,
            order_ref: row.try_get("order_ref")?,
            pnr_masked: row.try_get("pnr_masked")?,
        })
    }

    /// Where this record's next page starts.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            finished_at: self.finished_at,
            id: self.id.clone(),
        }
    }

    /// How it ended, for the page (`None`: a state this version does not know).
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        Outcome::of(&self.state, self.hint_code.as_deref())
    }

    /// The record as the page reads it.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "startedAtMs": self.started_at,
            "finishedAtMs": self.finished_at,
            "durationMs": self.duration_ms,
            "channel": self.channel,
            "agent": self.agent,
            "callId": self.call_id,
            "callerId": self.caller_id,
            "host": self.host,
            "mode": self.mode,
            "callInitiator": self.call_initiator,
            "state": self.state,
            "outcome": self.outcome().map(Outcome::as_str),
            "hintCode": self.hint_code,
            "errorCode": self.error_code,
            "orderRef": self.order_ref,
            "personalNumberMasked": self.pnr_masked,
        })
    }
}

/// What the charts need of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChartRow {
    pub finished_at: i64,
    pub outcome: Outcome,
    /// The hint (failed) or error code (error, or a cancel here), if any.
    pub reason: Option<String>,
    pub duration_ms: i64,
}

impl ChartRow {
    /// A row of [`chart_rows`]; `None` for a state this version does not know.
    pub(crate) fn from_row(row: &AnyRow) -> Result<Option<ChartRow>, sqlx::Error> {
        let state: String = row.try_get("state")?;
        let hint: Option<String> = row.try_get("hint_code")?;
        let error: Option<String> = row.try_get("error_code")?;
        let Some(outcome) = Outcome::of(&state, hint.as_deref()) else {
            return Ok(None);
        };
        let reason = match outcome {
            Outcome::Complete => None,
            Outcome::Error => error.or(hint),
            Outcome::Failed | Outcome::Declined => hint.or(error),
        };
        Ok(Some(ChartRow {
            finished_at: row.try_get("finished_at")?,
            outcome,
            reason,
            duration_ms: row.try_get("duration_ms")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Filter {
        Filter {
            from_ms: 1_000,
            to_ms: 2_000,
            outcome: None,
            channel: None,
            agent: None,
            pseudonym: None,
        }
    }

    #[test]
    fn a_bare_filter_is_the_time_range_newest_first_with_one_row_more_than_the_page() {
        let sql = all().page(None, 50);
        assert_eq!(
            sql.text,
            format!(
                "SELECT {RECORD_COLUMNS} FROM audit_orders WHERE finished_at >= $1 AND \
                 finished_at < $2 ORDER BY finished_at DESC, id DESC LIMIT $3"
            )
        );
        assert_eq!(
            sql.binds,
            vec![Bind::Int(1_000), Bind::Int(2_000), Bind::Int(51)]
        );
        assert_eq!(all().page(None, 10_000).binds[2], Bind::Int(201), "capped");
        assert_eq!(
            all().export(1_000_000).binds[2],
            Bind::Int(10_001),
            "capped"
        );
    }

    #[test]
    fn every_filter_becomes_a_bound_condition_in_order() {
        let f = Filter {
            outcome: Some(Outcome::Complete),
            channel: Some(Channel::FastAgi),
            agent: Some("anna".into()),
            pseudonym: Some("ab".repeat(32)),
            ..all()
        };
        let sql = f.page(
            Some(&Cursor {
                finished_at: 1_500,
                id: "ff".into(),
            }),
            20,
        );
        assert!(
            sql.text.contains(
                "WHERE finished_at >= $1 AND finished_at < $2 AND state = $3 AND channel = $4 \
                 AND agent = $5 AND pnr_pseudonym = $6 AND (finished_at < $7 OR \
                 (finished_at = $8 AND id < $9)) ORDER BY"
            ),
            "{}",
            sql.text
        );
        assert!(sql.text.ends_with("LIMIT $10"), "{}", sql.text);
        assert_eq!(
            sql.binds,
            vec![
                Bind::Int(1_000),
                Bind::Int(2_000),
                Bind::Text("complete".into()),
                Bind::Text("fastagi".into()),
                Bind::Text("anna".into()),
                Bind::Text("ab".repeat(32)),
                Bind::Int(1_500),
                Bind::Int(1_500),
                Bind::Text("ff".into()),
                Bind::Int(21),
            ]
        );
    }

    #[test]
    fn declined_calls_and_other_failures_are_told_apart_by_the_hint() {
        let declined = Filter {
            outcome: Some(Outcome::Declined),
            ..all()
        }
        .page(None, 5);
        assert!(declined.text.contains("state = $3 AND hint_code = $4"));
        assert_eq!(declined.binds[2], Bind::Text("failed".into()));
        assert_eq!(declined.binds[3], Bind::Text("userDeclinedCall".into()));
        let failed = Filter {
            outcome: Some(Outcome::Failed),
            ..all()
        }
        .page(None, 5);
        assert!(failed
            .text
            .contains("state = $3 AND (hint_code IS NULL OR hint_code <> $4)"));
        assert_eq!(
            Outcome::of("failed", Some("userDeclinedCall")),
            Some(Outcome::Declined)
        );
        assert_eq!(Outcome::of("failed", None), Some(Outcome::Failed));
        assert_eq!(Outcome::of("pending", None), None);
    }

    #[test]
    fn a_typed_value_never_reaches_the_statement_text() {
        let f = Filter {
            agent: Some("x' OR '1'='1".into()),
            pseudonym: Some("'; DROP TABLE audit_orders; --".into()),
            ..all()
        };
        for sql in [f.page(None, 5), f.export(5)] {
            assert!(!sql.text.contains('\''), "{}", sql.text);
            assert!(!sql.text.contains("DROP"), "{}", sql.text);
        }
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            finished_at: 1_733_000_000_123,
            id: "0a1b".into(),
        };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        for bad in [
            "",
            "12",
            "x:ab",
            "12:",
            "12:zz",
            "12:ab;",
            &format!("1:{}", "a".repeat(65)),
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn event_lookup_takes_the_order_ref_when_there_is_one() {
        assert_eq!(events_about("id", None).binds.len(), 1);
        let both = events_about("id", Some("ref"));
        assert!(both.text.contains("order_id IN ($1, $2)"));
        assert_eq!(
            both.binds,
            vec![Bind::Text("id".into()), Bind::Text("ref".into())]
        );
    }
}
