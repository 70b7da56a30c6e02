//! The supervisor's charts as SVG drawn here, so the page loads nothing from elsewhere and the
//! CSP stays strict: the page shows them as `<img>` (no script runs in an image), and they use
//! presentation attributes only — no `<style>`, no `style=""`, which the CSP would refuse.
//!
//! - [`hourly`]: identifications per hour, stacked by outcome; declined calls on top in red,
//!   outlined, so none is missed.
//! - [`durations`]: median and 90th percentile time to identify per hour.
//! - [`reasons`]: failures by reason (hint or error code), most frequent first.
//!
//! Every text that comes from the records (reason codes) is escaped; each mark carries
//! `data-*` attributes saying what it counts, which the tests read.

use std::fmt::Write as _;

use super::clock::civil;
use super::query::DECLINED_HINT;
use super::stats::{Hour, Range, Stats};

/// Green, amber, red, grey: complete, failed, declined, error (the page's legend uses the
/// same colours).
pub(crate) const COMPLETE: &str = "#1b7f3b";
pub(crate) const FAILED: &str = "#d08700";
pub(crate) const DECLINED: &str = "#b42318";
pub(crate) const ERROR: &str = "#6b7280";
const MEDIAN: &str = "#1f6f8b";
const P90: &str = "#8a5a00";
const AXIS: &str = "#5b6575";
const GRID: &str = "#d5dae2";

const WIDTH: f64 = 860.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// The most reasons drawn; the rest are summed into one bar.
const MAX_REASONS: usize = 10;

/// Which language the charts' titles are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Sv,
    En,
}

impl Lang {
    pub(crate) fn parse(s: &str) -> Option<Lang> {
        match s {
            "sv" => Some(Lang::Sv),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    fn pick(self, sv: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }
}

/// Text for XML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" step for about `ticks` grid lines up to `max`: 1, 2 or 5 times a power of ten.
pub(crate) fn nice_step(max: f64, ticks: u32) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / f64::from(ticks.max(1));
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if step < 1.0 && max >= 1.0 {
        1.0
    } else {
        step
    }
}

fn open(out: &mut String, height: f64, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{t}\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\"><title>{t}</title>\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>",
        t = escape(title)
    );
}

/// Horizontal grid lines and their labels from 0 to `max` (in units of `unit_label`).
fn y_axis(out: &mut String, height: f64, max: f64, label: impl Fn(f64) -> String) -> f64 {
    let step = nice_step(max, 4);
    let top = (max / step).ceil().max(1.0) * step;
    let plot = height - TOP - BOTTOM;
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = TOP + plot - v / top * plot;
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"{GRID}\" \
             stroke-width=\"1\"/><text x=\"{lx}\" y=\"{ty:.1}\" text-anchor=\"end\" \
             fill=\"{AXIS}\">{l}</text>",
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6.0,
            ty = y + 4.0,
            l = escape(&label(v)),
        );
        v += step;
    }
    top
}

/// Hour labels under the plot: every 3 hours ("09") over a day, every local midnight
/// ("1/12") over a week.
fn x_axis(out: &mut String, stats: &Stats, height: f64) {
    let n = stats.hours.len();
    let bw = (WIDTH - LEFT - RIGHT) / n as f64;
    for i in 0..n {
        let at = stats.start_ms + i as i64 * 3_600_000;
        let c = civil(at, stats.tz_offset_min);
        let label = match stats.range {
            Range::Day if c.hour % 3 == 0 => format!("{:02}", c.hour),
            Range::Week if c.hour == 0 => format!("{}/{}", c.day, c.month),
            _ => continue,
        };
        let x = LEFT + i as f64 * bw;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y0:.1}\" x2=\"{x:.1}\" y2=\"{y1:.1}\" stroke=\"{AXIS}\"/>\
             <text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" fill=\"{AXIS}\">{label}</text>",
            y0 = height - BOTTOM,
            y1 = height - BOTTOM + 4.0,
            ty = height - BOTTOM + 16.0,
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"{AXIS}\"/>",
        y = height - BOTTOM,
        x2 = WIDTH - RIGHT,
    );
}

/// Identifications per hour, stacked: complete, failed, error, and declined on top.
pub(crate) fn hourly(stats: &Stats, lang: Lang) -> String {
    let height = 240.0;
    let mut out = String::new();
    open(
        &mut out,
        height,
        lang.pick(
            "Identifieringar per timme efter utfall",
            "Identifications per hour by outcome",
        ),
    );
    let max = stats.hours.iter().map(Hour::total).max().unwrap_or(0) as f64;
    let top = y_axis(&mut out, height, max.max(1.0), |v| format!("{v}"));
    let plot = height - TOP - BOTTOM;
    let n = stats.hours.len();
    let bw = (WIDTH - LEFT - RIGHT) / n as f64;
    for (i, h) in stats.hours.iter().enumerate() {
        let mut base = TOP + plot;
        let x = LEFT + i as f64 * bw + bw * 0.1;
        for (outcome, count, colour) in [
            ("complete", h.complete, COMPLETE),
            ("failed", h.failed, FAILED),
            ("error", h.error, ERROR),
            ("declined", h.declined, DECLINED),
        ] {
            if count == 0 {
                continue;
            }
            let bar = count as f64 / top * plot;
            base -= bar;
            let outline = if outcome == "declined" {
                " stroke=\"#000000\" stroke-width=\"1.5\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<rect x=\"{x:.2}\" y=\"{base:.2}\" width=\"{w:.2}\" height=\"{bar:.2}\" \
                 fill=\"{colour}\"{outline} data-hour=\"{i}\" data-outcome=\"{outcome}\" \
                 data-count=\"{count}\"/>",
                w = bw * 0.8,
            );
        }
    }
    x_axis(&mut out, stats, height);
    out.push_str("</svg>");
    out
}

fn seconds(ms: f64) -> String {
    let s = ms / 1000.0;
    if s == s.trunc() {
        format!("{s} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Median and 90th percentile time to identify per hour (complete identifications).
pub(crate) fn durations(stats: &Stats, lang: Lang) -> String {
    let height = 200.0;
    let mut out = String::new();
    open(
        &mut out,
        height,
        lang.pick(
            "Tid att identifiera per timme: median och 90:e percentil",
            "Time to identify per hour: median and 90th percentile",
        ),
    );
    let max = stats
        .hours
        .iter()
        .filter_map(|h| h.p90_ms)
        .max()
        .unwrap_or(0) as f64;
    let top = y_axis(&mut out, height, max.max(1000.0), seconds);
    let plot = height - TOP - BOTTOM;
    let n = stats.hours.len();
    let bw = (WIDTH - LEFT - RIGHT) / n as f64;
    for (series, colour, value) in [
        (
            "p90",
            P90,
            (|h: &Hour| h.p90_ms) as fn(&Hour) -> Option<i64>,
        ),
        ("median", MEDIAN, |h: &Hour| h.median_ms),
    ] {
        // Hours without identifications break the line.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            match run.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        out,
                        "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"2.5\" fill=\"{colour}\" \
                         data-series=\"{series}\"/>",
                        run[0].0, run[0].1
                    );
                }
                _ => {
                    let points: Vec<String> =
                        run.iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect();
                    let _ = write!(
                        out,
                        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" \
                         stroke-width=\"2\" data-series=\"{series}\"/>",
                        points.join(" ")
                    );
                }
            }
            run.clear();
        };
        for (i, h) in stats.hours.iter().enumerate() {
            match value(h) {
                Some(ms) => run.push((
                    LEFT + (i as f64 + 0.5) * bw,
                    TOP + plot - ms as f64 / top * plot,
                )),
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    x_axis(&mut out, stats, height);
    out.push_str("</svg>");
    out
}

/// Failures by reason, most frequent first; declined calls in red.
pub(crate) fn reasons(stats: &Stats, lang: Lang) -> String {
    let mut rows: Vec<(String, u64)> = stats.reasons.iter().take(MAX_REASONS).cloned().collect();
    let rest: u64 = stats.reasons.iter().skip(MAX_REASONS).map(|r| r.1).sum();
    if rest > 0 {
        rows.push((lang.pick("övriga", "others").to_string(), rest));
    }
    let row_h = 24.0;
    let height = TOP + 8.0 + row_h * rows.len().max(1) as f64;
    let mut out = String::new();
    open(
        &mut out,
        height,
        lang.pick("Misslyckanden efter orsak", "Failures by reason"),
    );
    let label_w = 200.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let span = WIDTH - RIGHT - label_w - 60.0;
    for (i, (reason, count)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * row_h;
        let w = (*count as f64 / max * span).max(1.0);
        let colour = if reason == DECLINED_HINT {
            DECLINED
        } else {
            FAILED
        };
        let _ = write!(
            out,
            "<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#1d2430\">{r}</text>\
             <rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{h}\" fill=\"{colour}\" \
             data-reason=\"{r}\" data-count=\"{count}\"/>\
             <text x=\"{cx:.2}\" y=\"{ty:.1}\" fill=\"#1d2430\">{count}</text>",
            tx = label_w - 8.0,
            ty = y + row_h * 0.55,
            r = escape(reason),
            h = row_h - 6.0,
            cx = label_w + w + 6.0,
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::super::query::{ChartRow, Outcome};
    use super::super::stats::compute;
    use super::*;

    const H: i64 = 3_600_000;

    fn stats(rows: &[(i64, Outcome, Option<&str>, i64)], range: Range) -> Stats {
        let rows: Vec<ChartRow> = rows
            .iter()
            .map(|(at, o, r, ms)| ChartRow {
                finished_at: *at,
                outcome: *o,
                reason: r.map(str::to_string),
                duration_ms: *ms,
            })
            .collect();
        compute(&rows, range, 0, 0, false)
    }

    /// Parses the SVG (it must be well-formed XML) and returns the elements named `tag`.
    fn marks<'a>(doc: &'a roxmltree::Document<'a>, tag: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag) && n.attribute("data-count").is_some())
            .collect()
    }

    #[test]
    fn the_hourly_chart_stacks_each_outcome_and_outlines_declined_calls() {
        let s = stats(
            &[
                (1, Outcome::Complete, None, 3_000),
                (2, Outcome::Complete, None, 3_000),
                (3, Outcome::Declined, Some("userDeclinedCall"), 2_000),
                (H + 1, Outcome::Failed, Some("userCancel"), 1_000),
                (5 * H, Outcome::Error, Some("internalError"), 1_000),
            ],
            Range::Day,
        );
        let svg = hourly(&s, Lang::Sv);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(
            doc.root_element().attribute("aria-label"),
            Some("Identifieringar per timme efter utfall")
        );
        let bars: Vec<(String, String, String)> = marks(&doc, "rect")
            .iter()
            .map(|n| {
                let a = |k| n.attribute(k).unwrap().to_string();
                (a("data-hour"), a("data-outcome"), a("data-count"))
            })
            .collect();
        let want = [
            ("0", "complete", "2"),
            ("0", "declined", "1"),
            ("1", "failed", "1"),
            ("5", "error", "1"),
        ];
        assert_eq!(
            bars,
            want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
        let declined = marks(&doc, "rect")
            .into_iter()
            .find(|n| n.attribute("data-outcome") == Some("declined"))
            .unwrap();
        assert_eq!(declined.attribute("fill"), Some(DECLINED));
        assert!(declined.attribute("stroke").is_some(), "outlined");
        // The declined bar sits on the complete ones: its bottom is their top.
        let complete = marks(&doc, "rect")
            .into_iter()
            .find(|n| n.attribute("data-outcome") == Some("complete"))
            .unwrap();
        let f = |n: &roxmltree::Node, k| n.attribute(k).unwrap().parse::<f64>().unwrap();
        let top_of_complete = f(&complete, "y");
        let bottom_of_declined = f(&declined, "y") + f(&declined, "height");
        assert!((top_of_complete - bottom_of_declined).abs() < 0.05);
        assert!(
            (f(&complete, "height") - 2.0 * f(&declined, "height")).abs() < 0.05,
            "heights follow the counts"
        );
        assert!(!svg.contains("style"), "no style: the CSP refuses it");
        assert!(svg.contains(">00<") && svg.contains(">21<"), "hour labels");
    }

    #[test]
    fn the_week_chart_labels_local_midnights() {
        let s = compute(&[], Range::Week, 23 * H, 60, false);
        let svg = hourly(&s, Lang::En);
        // Starts 1970-01-02 00:00 local (23:00 UTC + 1 h): seven midnights from 2/1.
        for d in 2..=8 {
            assert!(svg.contains(&format!(">{d}/1<")), "{d}/1 in {svg}");
        }
        roxmltree::Document::parse(&svg).unwrap();
    }

    #[test]
    fn durations_draw_the_median_and_p90_and_break_at_empty_hours() {
        let s = stats(
            &[
                (1, Outcome::Complete, None, 2_000),
                (2, Outcome::Complete, None, 10_000),
                (H + 1, Outcome::Complete, None, 4_000),
                (5 * H, Outcome::Complete, None, 6_000),
            ],
            Range::Day,
        );
        let svg = durations(&s, Lang::En);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let lines = |series: &str, tag: &str| {
            doc.descendants()
                .filter(|n| n.has_tag_name(tag) && n.attribute("data-series") == Some(series))
                .count()
        };
        // Hours 0 and 1 make a line, hour 5 stands alone.
        assert_eq!(
            (lines("median", "polyline"), lines("median", "circle")),
            (1, 1)
        );
        assert_eq!((lines("p90", "polyline"), lines("p90", "circle")), (1, 1));
        assert!(
            svg.contains("10 s"),
            "the axis reaches the slowest p90: {svg}"
        );
    }

    #[test]
    fn reasons_are_escaped_capped_and_declined_calls_are_red() {
        let mut rows = vec![
            (1, Outcome::Declined, Some("userDeclinedCall"), 1),
            (2, Outcome::Declined, Some("userDeclinedCall"), 1),
            (3, Outcome::Failed, Some("<script>&\"x\""), 1),
        ];
        let odd: Vec<String> = (0..12).map(|i| format!("code{i:02}")).collect();
        for (i, c) in odd.iter().enumerate() {
            rows.push((10 + i as i64, Outcome::Error, Some(c.as_str()), 1));
        }
        let s = stats(&rows, Range::Day);
        let svg = reasons(&s, Lang::Sv);
        assert!(!svg.contains("<script>"), "{svg}");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let bars = marks(&doc, "rect");
        assert_eq!(bars.len(), MAX_REASONS + 1, "ten reasons and the rest");
        assert_eq!(bars[0].attribute("data-reason"), Some("userDeclinedCall"));
        assert_eq!(bars[0].attribute("fill"), Some(DECLINED));
        assert_eq!(bars[0].attribute("data-count"), Some("2"));
        assert!(bars
            .iter()
            .any(|b| b.attribute("data-reason") == Some("<script>&\"x\"")));
        let last = bars.last().unwrap();
        assert_eq!(last.attribute("data-reason"), Some("övriga"));
        assert_eq!(last.attribute("data-count"), Some("4"));
    }

    #[test]
    fn grid_steps_are_round() {
        assert_eq!(nice_step(0.0, 4), 1.0);
        assert_eq!(nice_step(3.0, 4), 1.0);
        assert_eq!(nice_step(10.0, 4), 5.0);
        assert_eq!(nice_step(37.0, 4), 10.0);
        assert_eq!(nice_step(180_000.0, 4), 50_000.0);
        assert_eq!(
            escape("a<b>&\"'\u{1}"),
            "a&lt;b&gt;&amp;&quot;&apos;\u{fffd}"
        );
    }
}
