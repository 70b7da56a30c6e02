//! The CSV export of filtered records (RFC 4180: comma-separated, CRLF line ends, a field
//! quoted when it holds a comma, a quote or a line break, quotes doubled).
//!
//! A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return
//! before one) as a formula. Record fields come partly from outside — a caller ID, a hint code
//! BankID may invent, a host name — so such a cell is neutralised with a leading `'`, which
//! spreadsheets show as text and drop from the value. Numbers and times are ours and never
//! start that way.

use super::clock::iso_utc;
use super::query::Record;

/// The header row's columns, in order.
pub(crate) const COLUMNS: [&str; 16] = [
    "id",
    "started_at",
    "finished_at",
    "duration_ms",
    "channel",
    "agent",
    "call_id",
    "caller_id",
    "host",
    "mode",
    "call_initiator",
    "state",
    "hint_code",
    "error_code",
    "order_ref",
    "personal_number_masked",
];

/// One field, neutralised against formulas and quoted when needed.
pub(crate) fn field(value: &str) -> String {
    let risky = value
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let value = if risky {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn line(fields: &[String]) -> String {
    let mut l = fields.join(",");
    l.push_str("\r\n");
    l
}

/// The header row.
pub(crate) fn header() -> String {
    line(&COLUMNS.map(str::to_string))
}

/// One record's row.
pub(crate) fn row(r: &Record) -> String {
    let opt = |v: &Option<String>| field(v.as_deref().unwrap_or(""));
    line(&[
        field(&r.id),
        iso_utc(r.started_at),
        iso_utc(r.finished_at),
        r.duration_ms.to_string(),
        field(&r.channel),
        opt(&r.agent),
        opt(&r.call_id),
        opt(&r.caller_id),
        field(&r.host),
        field(&r.mode),
        field(&r.call_initiator),
        field(&r.state),
        opt(&r.hint_code),
        opt(&r.error_code),
        opt(&r.order_ref),
        field(&r.pnr_masked),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed_and_formulas_neutralised() {
        assert_eq!(field("anna"), "anna");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("+46701234567"), "'+46701234567");
        assert_eq!(field("-1+1"), "'-1+1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\t=1"), "'\t=1");
        assert_eq!(field("\r=1"), "\"'\r=1\"");
        assert_eq!(
            field("850312-XXXX"),
            "850312-XXXX",
            "a dash inside is harmless"
        );
    }

    #[test]
    fn a_row_has_every_column_in_order_with_iso_times() {
        let r = Record {
            id: "0f".into(),
            started_at: 1_709_210_090_000,
            finished_at: 1_709_210_096_789,
            duration_ms: 6_789,
            channel: "fastagi".into(),
            agent: None,
            call_id: Some("1733.42".into()),
            caller_id: Some("+46701234567".into()),
            host: "ivr-1".into(),
            mode: "identify".into(),
            call_initiator: "user".into(),
            state: "failed".into(),
            hint_code: Some("userDeclinedCall".into()),
            error_code: None,
            order_ref: Some("a-b".into()),
            pnr_masked: "850312-XXXX".into(),
        };
        assert_eq!(
            row(&r),
            "0f,2024-02-29T12:34:50.000Z,2024-02-29T12:34:56.789Z,6789,fastagi,,1733.42,\
             '+46701234567,ivr-1,identify,user,failed,userDeclinedCall,,a-b,850312-XXXX\r\n"
        );
        assert_eq!(header().trim_end().split(',').count(), COLUMNS.len());
        assert_eq!(row(&r).trim_end().split(',').count(), COLUMNS.len());
    }
}
