//! Times in recordings: ns since the epoch (UTC) in rows, RFC 3339 with nanoseconds in
//! manifests and file names' neighbours.

/// RFC 3339 with nanoseconds, UTC (`2026-11-23T09:44:00.123456789Z`).
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Inverse of [`rfc3339`]; accepts any RFC 3339 offset.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt()
}

