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

}
