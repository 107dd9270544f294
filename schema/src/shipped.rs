//! The shipped layout: recordings of many hosts in one object store (or directory),
//! partitioned hive-style so that engines prune by table, host and time from paths alone
//! (see FORMAT.md, "Shipped recordings"):
//!
//! ```text
//! <prefix>/<table>/host=<host>/date=<YYYY-MM-DD>/hour=<HH>/<recording_id>-<segment>.parquet
//! <prefix>/_manifests/host=<host>/<recording_id>.json
//! ```
//! * `date`/`hour` are those of the file's first row (`time_min`, UTC; the recording's
//!   start for an empty file). A file's rows may run past that hour: the path is a
//!   coarse filter (no row is *earlier* than its partition's hour), `time` is the truth.
//! * `host` is percent-encoded ([`encode_value`]) so any host name is one safe segment.
//! * A manifest is the recording's own, with each file's `path` relative to `<prefix>`;
//!   it is written after every object it lists, so a reader that sees it finds them all.

use crate::manifest::{parse_rfc3339, FileEntry, Manifest};

/// Directory (under the prefix) of the per-host manifests. A leading `_`, so that
/// Hadoop-style readers (Spark) skip it, and no `.parquet`, so globs never match it.
pub const MANIFESTS: &str = "_manifests";
/// Partition keys, in path order below `<prefix>/<table>/`.
pub const PARTITIONS: [&str; 3] = ["host", "date", "hour"];

/// A partition value as a path segment: ASCII letters, digits, `.`, `_` and `-`
/// stay, every other byte of the UTF-8 becomes `%XX` (upper-case hex), as Hive
/// escapes partition values; DataFusion, Spark and DuckDB decode it. A value that
/// would be `.`/`..` or empty is escaped entirely so it can never be a relative
/// segment.
pub fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let all = value.is_empty() || value.bytes().all(|b| b == b'.');
    for b in value.bytes() {
        if !all && (b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if value.is_empty() {
        // An empty host: `%` alone is not a valid escape; HIVE's "default partition".
        out.push_str("__HIVE_DEFAULT_PARTITION__");
    }
    out
}

/// Inverse of [`encode_value`] (`None` for a malformed escape or invalid UTF-8).
pub fn decode_value(segment: &str) -> Option<String> {
    if segment == "__HIVE_DEFAULT_PARTITION__" {
        return Some(String::new());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `host=<encoded host>`.
pub fn host_segment(host: &str) -> String {
    format!("host={}", encode_value(host))
}

/// Key (relative to the prefix, `/`-separated) of a recording's file.
pub fn data_key(manifest: &Manifest, entry: &FileEntry) -> String {
    let first = entry
        .time_min
        .as_deref()
        .and_then(parse_rfc3339)
        .or_else(|| parse_rfc3339(&manifest.start))
        .unwrap_or(0);
    let t = chrono::DateTime::from_timestamp_nanos(first);
    format!(
        "{}/{}/date={}/hour={}/{}-{:06}.parquet",
        entry.table,
        host_segment(&manifest.host),
        t.format("%Y-%m-%d"),
        t.format("%H"),
        manifest.recording_id,
        entry.segment
    )
}

/// Key (relative to the prefix) of a recording's manifest.
pub fn manifest_key(manifest: &Manifest) -> String {
    format!("{MANIFESTS}/{}/{}.json", host_segment(&manifest.host), manifest.recording_id)
}

/// The manifest as shipped: the same, with every file's `path` its key below the
/// prefix (so `Manifest::file_path(prefix, entry)` finds it).
pub fn manifest_for_store(manifest: &Manifest) -> Manifest {
    let mut m = manifest.clone();
    for f in &mut m.files {
        f.path = data_key(manifest, f);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_keys_are_hive_partitions_with_safe_hosts() {
        use crate::manifest::{ClockInfo, RecorderInfo};
        let mut m = Manifest::new(
            "0196a4c2".into(),
            "web1.example".into(),
            1_700_000_000_000_000_000,
            ClockInfo { mono_to_utc_offset_ns: 0, max_drift_ns: 0 },
            RecorderInfo { version: "t".into(), config: serde_json::Value::Null },
        );
        let entry = |time_min: Option<&str>| FileEntry {
            table: "retransmits".into(),
            path: "retransmits/x.parquet".into(),
            segment: 7,
            rows: 1,
            bytes: 1,
            sha256: String::new(),
            time_min: time_min.map(String::from),
            time_max: None,
        };
        m.files.push(entry(Some("2026-11-23T23:59:59.999999999Z")));
        m.files.push(entry(None));
        let s = manifest_for_store(&m);
        assert_eq!(s.files[0].path, "retransmits/host=web1.example/date=2026-11-23/hour=23/0196a4c2-000007.parquet");
        assert_eq!(s.files[1].path, "retransmits/host=web1.example/date=2023-11-14/hour=22/0196a4c2-000007.parquet");
        assert_eq!(manifest_key(&m), "_manifests/host=web1.example/0196a4c2.json");
        for host in ["web1", "a/b=c", "..", "", "naïve host%", "x\\y"] {
            let e = encode_value(host);
            assert!(!e.contains('/') && !e.contains('=') && e != "." && e != ".." && !e.is_empty(), "{host:?} -> {e}");
            assert_eq!(decode_value(&e).as_deref(), Some(host), "{e}");
        }
        assert_eq!(encode_value("a/b c"), "a%2Fb%20c");
    }
}
