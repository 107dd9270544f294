//! Where things are inside a recording directory, and what files are called.
//!
//! ```text
//! <recording>/manifest.json
//! <recording>/<table>/<YYYYMMDDTHHMMSS.mmmZ>-<segment>.parquet     closed, complete files
//! <recording>/<table>/.<name>.parquet.inprogress                   being written
//! <recording>/<table>/.<name>.parquet.footer | .wal                crash-recovery sidecars
//! <recording>/<table>/.<name>.parquet.recovering                   being rebuilt after a crash
//! <recording>/quarantine/<table>/…                                 unusable leftovers of a crash
//! ```
//! Names sort in time order. Files that are not finished carry a leading dot and a
//! suffix other than `.parquet`, so DuckDB/Spark/DataFusion globs (`*.parquet`) and
//! Hadoop-style readers (which skip `.`/`_` names) never pick them up.

use std::path::{Path, PathBuf};

/// Name of the manifest file at the top of a recording.
pub const MANIFEST: &str = "manifest.json";
/// Suffix of a file being written.
pub const INPROGRESS_SUFFIX: &str = ".inprogress";
/// Suffix of the partial footer written after each row group (crash recovery).
pub const FOOTER_SUFFIX: &str = ".footer";
/// Suffix of the write-ahead log of rows not yet in a row group (crash recovery).
pub const WAL_SUFFIX: &str = ".wal";
/// Suffix of a file being rebuilt by crash recovery.
pub const RECOVERING_SUFFIX: &str = ".recovering";
/// Suffix of a partial footer being saved (renamed over the `.footer` when whole): a
/// kill during the save leaves it behind.
pub const FOOTER_TMP_SUFFIX: &str = ".tmp";
/// Directory (in a recorder's output directory) holding snapshots, each a recording
/// of its own. Searches for recordings do not descend into it (its files are hard
/// links of the ring's: counting them twice would double every number).
pub const SNAPSHOTS: &str = "snapshots";
/// Directory (in a recording) for unfinished files that recovery could not use.
pub const QUARANTINE: &str = "quarantine";

/// Key-value metadata keys in every Parquet file we write.
pub mod kv {
    pub const FORMAT_VERSION: &str = "tcpfr.format_version";
    pub const RECORDING_ID: &str = "tcpfr.recording_id";
    pub const TABLE: &str = "tcpfr.table";
    pub const HOST: &str = "tcpfr.host";
    pub const SEGMENT: &str = "tcpfr.segment";
    /// `"time"` when rows are sorted by `time` (always, unless a row arrived too late).
    pub const SORTED_BY: &str = "tcpfr.sorted_by";
    /// In a write-ahead log's schema: rows in the file's complete row groups when the
    /// log was started.
    pub const WAL_BASE_ROWS: &str = "tcpfr.wal_base_rows";
}

/// File name (no directory) of segment `segment` of a table, opened at `start_ns`.
pub fn file_name(start_ns: i64, segment: u64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(start_ns);
    format!("{}-{:06}.parquet", t.format("%Y%m%dT%H%M%S%.3fZ"), segment)
}

/// Path relative to the recording root.
pub fn relative_path(table: &str, start_ns: i64, segment: u64) -> PathBuf {
    Path::new(table).join(file_name(start_ns, segment))
}

/// The temporary name a file has while it is written.
pub fn inprogress_path(final_path: &Path) -> PathBuf {
    sidecar(final_path, INPROGRESS_SUFFIX)
}

pub fn footer_path(final_path: &Path) -> PathBuf {
    sidecar(final_path, FOOTER_SUFFIX)
}

pub fn wal_path(final_path: &Path) -> PathBuf {
    sidecar(final_path, WAL_SUFFIX)
}

pub fn recovering_path(final_path: &Path) -> PathBuf {
    sidecar(final_path, RECOVERING_SUFFIX)
}

pub fn footer_tmp_path(final_path: &Path) -> PathBuf {
    sidecar(final_path, FOOTER_TMP_SUFFIX)
}

/// Rotation segment of a file, from its name (`…-000042.parquet` → 42).
pub fn segment_of(final_path: &Path) -> Option<u64> {
    let name = final_path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    name.rsplit_once('-')?.1.parse().ok()
}

/// Start of a file's segment (UTC ns, ms precision), from its name
/// (`20261123T094400.512Z-000001.parquet`).
pub fn segment_start_of(final_path: &Path) -> Option<i64> {
    let name = final_path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let (time, _) = name.rsplit_once('-')?;
    chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%S%.3fZ").ok()?.and_utc().timestamp_nanos_opt()
}

fn sidecar(final_path: &Path, suffix: &str) -> PathBuf {
    let name = final_path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    final_path.with_file_name(format!(".{name}{suffix}"))
}

/// The final name of an in-progress or sidecar file (`None` if `path` is not one).
pub fn final_path_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix('.')?;
    for suffix in [INPROGRESS_SUFFIX, FOOTER_SUFFIX, WAL_SUFFIX, RECOVERING_SUFFIX, FOOTER_TMP_SUFFIX] {
        if let Some(base) = rest.strip_suffix(suffix) {
            return Some(path.with_file_name(base));
        }
    }
    None
}

/// The shipped layout: recordings of many hosts in one object store (or directory),
/// partitioned hive-style so that engines prune by table, host and time from paths alone
/// (see FORMAT.md, "Shipped recordings"):
///
/// ```text
/// <prefix>/<table>/host=<host>/date=<YYYY-MM-DD>/hour=<HH>/<recording_id>-<segment>.parquet
/// <prefix>/_manifests/host=<host>/<recording_id>.json
/// ```
/// * `date`/`hour` are those of the file's first row (`time_min`, UTC; the recording's
///   start for an empty file). A file's rows may run past that hour: the path is a
///   coarse filter (no row is *earlier* than its partition's hour), `time` is the truth.
/// * `host` is percent-encoded ([`encode_value`]) so any host name is one safe segment.
/// * A manifest is the recording's own, with each file's `path` relative to `<prefix>`;
///   it is written after every object it lists, so a reader that sees it finds them all.
pub mod shipped {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_time_order_and_sidecars_are_hidden() {
        let a = file_name(1_700_000_000_000_000_000, 1);
        let b = file_name(1_700_000_000_500_000_000, 2);
        let c = file_name(1_700_000_100_000_000_000, 3);
        assert_eq!(a, "20231114T221320.000Z-000001.parquet");
        assert!(a < b && b < c);
        let p = Path::new("rec/retransmits").join(&a);
        let tmp = inprogress_path(&p);
        assert_eq!(tmp.file_name().unwrap(), ".20231114T221320.000Z-000001.parquet.inprogress");
        assert_eq!(final_path_of(&tmp).unwrap(), p);
        assert_eq!(final_path_of(&wal_path(&p)).unwrap(), p);
        assert_eq!(final_path_of(&p), None);
        assert_eq!(segment_start_of(&p), Some(1_700_000_000_000_000_000));
        assert_eq!(segment_start_of(Path::new(&b)), Some(1_700_000_000_500_000_000));
        assert_eq!(segment_start_of(Path::new("x-000001.parquet")), None);
    }

    #[test]
    fn shipped_keys_are_hive_partitions_with_safe_hosts() {
        use crate::manifest::{ClockInfo, FileEntry, Manifest, RecorderInfo};
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
        let s = shipped::manifest_for_store(&m);
        assert_eq!(s.files[0].path, "retransmits/host=web1.example/date=2026-11-23/hour=23/0196a4c2-000007.parquet");
        assert_eq!(s.files[1].path, "retransmits/host=web1.example/date=2023-11-14/hour=22/0196a4c2-000007.parquet");
        assert_eq!(shipped::manifest_key(&m), "_manifests/host=web1.example/0196a4c2.json");
        for host in ["web1", "a/b=c", "..", "", "naïve host%", "x\\y"] {
            let e = shipped::encode_value(host);
            assert!(!e.contains('/') && !e.contains('=') && e != "." && e != ".." && !e.is_empty(), "{host:?} -> {e}");
            assert_eq!(shipped::decode_value(&e).as_deref(), Some(host), "{e}");
        }
        assert_eq!(shipped::encode_value("a/b c"), "a%2Fb%20c");
    }
}
