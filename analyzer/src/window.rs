//! The time window of a question: `--from`/`--to` or `--last`, relative to the
//! recording rather than to now (recordings are read the morning after).
//!
//! Accepted forms: `2026-11-23T14:00:00Z` (any RFC 3339), `2026-11-23 14:00[:05]` (UTC),
//! `14:00[:05]` (UTC, on the day the data starts), `+5m` (after the data starts),
//! `-10m` (before the data ends).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start, ns since the epoch.
    pub from: Option<i64>,
    /// Exclusive end.
    pub to: Option<i64>,
}

impl Window {
    /// Seconds the window covers within the data's (first, last) time: the
    /// denominator of the questions' per-second rates.
    pub fn range_seconds(&self, data: Option<(i64, i64)>) -> f64 {
        let (lo, hi) = data.unwrap_or((0, 1));
        let from = self.from.unwrap_or(lo).max(lo);
        let to = self.to.unwrap_or(hi + 1).min(hi + 1);
        ((to - from).max(1)) as f64 / 1e9
    }

    /// `range` is the data's (first, last) time, used by relative forms.
    pub fn parse(from: Option<&str>, to: Option<&str>, last: Option<Duration>, range: Option<(i64, i64)>) -> Result<Window> {
        if last.is_some() && (from.is_some() || to.is_some()) {
            bail!("--last cannot be combined with --from/--to");
        }
        if let Some(d) = last {
            let Some((_, end)) = range else { bail!("--last needs data to count back from, and the recordings are empty") };
            return Ok(Window { from: Some(end.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))), to: Some(end + 1) });
        }
        let w = Window {
            from: from.map(|s| parse_instant(s, range).with_context(|| format!("--from {s:?}"))).transpose()?,
            to: to.map(|s| parse_instant(s, range).with_context(|| format!("--to {s:?}"))).transpose()?,
        };
        if let (Some(a), Some(b)) = (w.from, w.to) {
            if a >= b {
                bail!("the window is empty: --from is not before --to");
            }
        }
        Ok(w)
    }

    /// ` WHERE col >= … AND col < …`, or nothing for an open window.
    pub fn sql_filter(&self, col: &str) -> String {
        let mut conds = Vec::new();
        if let Some(f) = self.from {
            conds.push(format!("{col} >= {}", ts_literal(f)));
        }
        if let Some(t) = self.to {
            conds.push(format!("{col} < {}", ts_literal(t)));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }
}

/// A timestamp literal comparable with our `Timestamp(ns, UTC)` columns.
pub fn ts_literal(ns: i64) -> String {
    format!("arrow_cast({ns}, 'Timestamp(Nanosecond, Some(\"UTC\"))')")
}

fn parse_instant(s: &str, range: Option<(i64, i64)>) -> Result<i64> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('+') {
        let d = humantime::parse_duration(rest)?;
        let Some((start, _)) = range else { bail!("a relative time needs data, and the recordings are empty") };
        return Ok(start.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
    }
    if let Some(rest) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rest)?;
        let Some((_, end)) = range else { bail!("a relative time needs data, and the recordings are empty") };
        return Ok(end.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt().context("out of range");
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Utc.from_utc_datetime(&t).timestamp_nanos_opt().context("out of range");
        }
    }
    for fmt in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(s, fmt) {
            let Some((start, _)) = range else { bail!("a time of day needs data to take the date from") };
            let day: NaiveDate = chrono::DateTime::from_timestamp_nanos(start).date_naive();
            return Utc.from_utc_datetime(&day.and_time(t)).timestamp_nanos_opt().context("out of range");
        }
    }
    bail!("not a time: use 2026-11-23T14:00:00Z, \"2026-11-23 14:00\", 14:00, +5m or -10m")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_428_000_000_000_000; // 2026-11-23T10:00:00Z

    #[test]
    fn forms() {
        let range = Some((T0, T0 + 3_600_000_000_000));
        let w = Window::parse(Some("2026-11-23T10:05:00Z"), Some("10:10"), None, range).unwrap();
        assert_eq!(w.from, Some(T0 + 300_000_000_000));
        assert_eq!(w.to, Some(T0 + 600_000_000_000));
        let w = Window::parse(Some("+1m"), Some("-1m"), None, range).unwrap();
        assert_eq!((w.from, w.to), (Some(T0 + 60_000_000_000), Some(T0 + 3_540_000_000_000)));
        let w = Window::parse(None, None, Some(Duration::from_secs(600)), range).unwrap();
        assert_eq!(w.from, Some(T0 + 3_000_000_000_000));
        let w = Window::parse(Some("2026-11-23 10:00:30"), None, None, None).unwrap();
        assert_eq!(w.from, Some(T0 + 30_000_000_000));
        assert!(Window::parse(Some("yesterday"), None, None, range).unwrap_err().chain().any(|e| e.to_string().contains("not a time")));
        assert!(Window::parse(Some("10:10"), Some("10:05"), None, range).is_err());
        assert!(Window::parse(Some("10:10"), None, Some(Duration::from_secs(1)), range).is_err());
        assert_eq!(Window::default().sql_filter("time"), "");
    }
}
