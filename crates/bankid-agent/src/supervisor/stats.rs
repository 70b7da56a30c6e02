//! How identification goes, in figures: per hour by outcome, the success rate, the median and
//! 90th percentile time to identify, failures by reason and the declined calls — counted here
//! from the records' rows (not in SQL), so the figures and the charts drawn from them
//! ([`super::charts`]) are the same numbers for SQLite and PostgreSQL alike.
//!
//! Hours are the supervisor's own (the browser says its offset from UTC), so "09–10" on the
//! chart is nine o'clock on their wall clock.

use std::collections::HashMap;

use super::query::{ChartRow, Outcome};

const HOUR_MS: i64 = 3_600_000;

/// Which span the charts cover, ending with the current hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
}

impl Range {
    pub(crate) fn parse(s: &str) -> Option<Range> {
        match s {
            "24h" => Some(Range::Day),
            "7d" => Some(Range::Week),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    /// How many hourly buckets.
    pub(crate) fn hours(self) -> usize {
        match self {
            Range::Day => 24,
            Range::Week => 24 * 7,
        }
    }
}

/// The hours `range` covers at `now_ms` for a clock `tz_offset_min` east of UTC: they end with
/// the end of the current local hour. `(start_ms, end_ms)`.
pub(crate) fn span(range: Range, now_ms: i64, tz_offset_min: i32) -> (i64, i64) {
    let offset = i64::from(tz_offset_min) * 60_000;
    let local = now_ms + offset;
    let end = (local.div_euclid(HOUR_MS) + 1) * HOUR_MS - offset;
    (end - range.hours() as i64 * HOUR_MS, end)
}

/// One hour's counts and times.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Hour {
    pub complete: u64,
    pub failed: u64,
    pub declined: u64,
    pub error: u64,
    /// Median time to identify of this hour's complete records (ms).
    pub median_ms: Option<i64>,
    /// 90th percentile of the same.
    pub p90_ms: Option<i64>,
}

impl Hour {
    pub(crate) fn total(&self) -> u64 {
        self.complete + self.failed + self.declined + self.error
    }
}

/// The figures for one span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stats {
    pub range: Range,
    /// Where the first hour starts (Unix ms).
    pub start_ms: i64,
    /// The local clock's offset east of UTC, minutes.
    pub tz_offset_min: i32,
    pub hours: Vec<Hour>,
    pub complete: u64,
    pub failed: u64,
    pub declined: u64,
    pub error: u64,
    /// Median time to identify over the span (complete records only).
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    /// Failures (failed, declined and error) by hint or error code, most frequent first.
    pub reasons: Vec<(String, u64)>,
    /// More records than the charts count: the figures cover the newest ones only.
    pub truncated: bool,
}

impl Stats {
    pub(crate) fn total(&self) -> u64 {
        self.complete + self.failed + self.declined + self.error
    }

    /// Complete out of all, 0–1; `None` with no records.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.complete as f64 / total as f64)
    }

    /// The figures as the page reads them.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "range": self.range.as_str(),
            "startMs": self.start_ms,
            "total": self.total(),
            "complete": self.complete,
            "failed": self.failed,
            "declined": self.declined,
            "error": self.error,
            "successRate": self.success_rate(),
            "medianMs": self.median_ms,
            "p90Ms": self.p90_ms,
            "reasons": self.reasons.iter().map(|(r, n)| serde_json::json!({"reason": r, "count": n})).collect::<Vec<_>>(),
            "truncated": self.truncated,
        })
    }
}

/// The nearest-rank `q`-quantile (0 < q ≤ 1) of sorted values: the smallest value with at
/// least `q` of them at or below it. `None` for no values.
pub(crate) fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Counts `rows` (records finished in the span) into hours and totals.
pub(crate) fn compute(
    rows: &[ChartRow],
    range: Range,
    start_ms: i64,
    tz_offset_min: i32,
    truncated: bool,
) -> Stats {
    let mut hours = vec![Hour::default(); range.hours()];
    let mut durations: Vec<Vec<i64>> = vec![Vec::new(); range.hours()];
    let mut all_durations = Vec::new();
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for r in rows {
        let i = (r.finished_at - start_ms).div_euclid(HOUR_MS);
        let Some(h) = usize::try_from(i).ok().and_then(|i| hours.get_mut(i)) else {
            continue;
        };
        match r.outcome {
            Outcome::Complete => {
                h.complete += 1;
                durations[i as usize].push(r.duration_ms);
                all_durations.push(r.duration_ms);
            }
            Outcome::Failed => h.failed += 1,
            Outcome::Declined => h.declined += 1,
            Outcome::Error => h.error += 1,
        }
        if r.outcome != Outcome::Complete {
            let reason = r.reason.clone().unwrap_or_else(|| "unknown".into());
            *reasons.entry(reason).or_default() += 1;
        }
    }
    for (h, d) in hours.iter_mut().zip(durations.iter_mut()) {
        d.sort_unstable();
        h.median_ms = quantile(d, 0.5);
        h.p90_ms = quantile(d, 0.9);
    }
    all_durations.sort_unstable();
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let sum = |f: fn(&Hour) -> u64| hours.iter().map(f).sum();
    Stats {
        range,
        start_ms,
        tz_offset_min,
        complete: sum(|h| h.complete),
        failed: sum(|h| h.failed),
        declined: sum(|h| h.declined),
        error: sum(|h| h.error),
        median_ms: quantile(&all_durations, 0.5),
        p90_ms: quantile(&all_durations, 0.9),
        hours,
        reasons,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64, outcome: Outcome, reason: Option<&str>, ms: i64) -> ChartRow {
        ChartRow {
            finished_at: at,
            outcome,
            reason: reason.map(str::to_string),
            duration_ms: ms,
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.5), Some(7));
        assert_eq!(quantile(&[7], 0.9), Some(7));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(quantile(&ten, 0.5), Some(5));
        assert_eq!(quantile(&ten, 0.9), Some(9));
        assert_eq!(quantile(&ten, 1.0), Some(10));
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&hundred, 0.9), Some(90));
        assert_eq!(quantile(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(quantile(&[1, 2, 3, 4, 5], 0.5), Some(3));
    }

    #[test]
    fn the_span_ends_with_the_current_local_hour() {
        // 2026-12-01 10:17:27 UTC.
        let now = 1_795_947_447_000;
        let (start, end) = span(Range::Day, now, 0);
        assert_eq!(end % HOUR_MS, 0);
        assert!(end > now && end - now <= HOUR_MS);
        assert_eq!(end - start, 24 * HOUR_MS);
        // Half an hour east of UTC: the local hour boundary is at :30 UTC.
        let (_, end) = span(Range::Week, now, 30);
        assert_eq!((end + 30 * 60_000) % HOUR_MS, 0);
        assert!(end > now && end - now <= HOUR_MS);
        let (start, end) = span(Range::Week, now, 60);
        assert_eq!(end - start, 168 * HOUR_MS);
    }

    #[test]
    fn records_are_counted_per_hour_by_outcome_with_times_and_reasons() {
        let start = 10 * HOUR_MS;
        let rows = vec![
            row(start + 1, Outcome::Complete, None, 4_000),
            row(start + 2, Outcome::Complete, None, 2_000),
            row(start + 3, Outcome::Complete, None, 9_000),
            row(
                start + HOUR_MS,
                Outcome::Declined,
                Some("userDeclinedCall"),
                3_000,
            ),
            row(
                start + HOUR_MS + 5,
                Outcome::Failed,
                Some("userCancel"),
                1_000,
            ),
            row(
                start + HOUR_MS + 6,
                Outcome::Failed,
                Some("userCancel"),
                1_000,
            ),
            row(start + 23 * HOUR_MS + 1, Outcome::Error, None, 500),
            // Outside the span: not counted.
            row(start - 1, Outcome::Complete, None, 1),
            row(start + 24 * HOUR_MS, Outcome::Complete, None, 1),
        ];
        let s = compute(&rows, Range::Day, start, 0, false);
        assert_eq!(s.hours.len(), 24);
        assert_eq!((s.hours[0].complete, s.hours[0].total()), (3, 3));
        assert_eq!(s.hours[0].median_ms, Some(4_000));
        assert_eq!(s.hours[0].p90_ms, Some(9_000));
        assert_eq!(
            (s.hours[1].declined, s.hours[1].failed, s.hours[1].median_ms),
            (1, 2, None)
        );
        assert_eq!(s.hours[23].error, 1);
        assert_eq!(s.total(), 7);
        assert_eq!(s.success_rate(), Some(3.0 / 7.0));
        assert_eq!((s.median_ms, s.p90_ms), (Some(4_000), Some(9_000)));
        assert_eq!(
            s.reasons,
            vec![
                ("userCancel".to_string(), 2),
                ("unknown".to_string(), 1),
                ("userDeclinedCall".to_string(), 1),
            ]
        );
        let empty = compute(&[], Range::Week, start, 0, false);
        assert_eq!((empty.total(), empty.success_rate()), (0, None));
        assert_eq!(empty.hours.len(), 168);
    }
}
