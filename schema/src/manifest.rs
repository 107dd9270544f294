//! `manifest.json`: what a recording is — who made it, where, with which clock, and
//! exactly which files belong to it (with sizes, checksums and time ranges).
//!
//! The manifest is rewritten atomically (temporary file + rename) whenever a file is
//! closed, so at every moment it lists exactly the complete files on disk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
pub use crate::time::{parse_rfc3339, rfc3339};
use crate::{FORMAT_MAJOR, FORMAT_MINOR};

/// Value of [`Manifest::format`]: tells a tcpfr manifest from any other JSON file.
pub const FORMAT_NAME: &str = "tcpfr-recording";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// `"MAJOR.MINOR"`. Readers accept their own major with any minor version (newer
    /// minors only add columns or tables, which older readers ignore) and refuse other
    /// majors.
    pub format_version: String,
    /// Unique id of this recording (UUID v7, so ids sort by start time).
    pub recording_id: String,
    /// Host name of the machine (`uname -n`); also in every row's `host` column.
    pub host: String,
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// `/proc/sys/kernel/random/boot_id`: socket ids and the monotonic clock are only
    /// comparable within one boot.
    pub boot_id: Option<String>,
    pub clock: ClockInfo,
    pub recorder: RecorderInfo,
    /// When recording started and (once it has) stopped, RFC 3339 UTC.
    pub start: String,
    pub end: Option<String>,
    /// Complete files, in the order they were closed.
    pub files: Vec<FileEntry>,
    /// Present when the recorder did not stop cleanly and a later start completed the
    /// recording from what the crash left; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryInfo>,
    /// Present when this recording is a snapshot: an incident window frozen out of the
    /// flight-recorder ring (files hard-linked from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotInfo>,
}

/// Why and what a snapshot froze.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The first trigger's time (RFC 3339 UTC) and what it said.
    pub trigger: String,
    pub reason: String,
    /// Where it came from: `SIGUSR1`, `control socket`, `rule <name>`.
    pub source: String,
    /// How many triggers this snapshot took (repeats extend its window).
    pub triggers: u32,
    /// The window frozen: trigger − before … last trigger + after (RFC 3339 UTC).
    pub window_start: String,
    pub window_end: String,
    /// The recorder stopped before the window's end; the snapshot ends earlier.
    #[serde(default)]
    pub cut_short: bool,
}

/// What crash recovery did to a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryInfo {
    /// When recovery ran (RFC 3339 UTC); `end` is then the time of the last row.
    pub at: String,
    /// Files completed from the crash's leftovers (complete row groups plus write-ahead log).
    pub files_completed: u64,
    /// Rows of those that came from write-ahead logs.
    pub wal_rows: u64,
    /// Leftovers that could not be used, moved to `quarantine/`, each with the reason.
    #[serde(default)]
    pub quarantined: Vec<String>,
}

/// How event times were made: UTC = kernel monotonic time + `mono_to_utc_offset_ns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockInfo {
    /// CLOCK_REALTIME − CLOCK_MONOTONIC at start, in ns.
    pub mono_to_utc_offset_ns: i64,
    /// Largest change of that offset seen during the recording (NTP steps), in ns.
    #[serde(default)]
    pub max_drift_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecorderInfo {
    /// Program that wrote the recording, with its version (`tcpfr-recorder 0.1.0`).
    pub version: String,
    /// The recorder's effective configuration (flags), for the record.
    #[serde(default)]
    pub config: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Table name (`retransmits`, …).
    pub table: String,
    /// Path relative to the recording directory, `/`-separated.
    pub path: String,
    /// Rotation segment the file belongs to; all tables rotate together, so files of
    /// one segment cover the same time span.
    pub segment: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
    /// Smallest and largest `time` in the file (RFC 3339, ns); null when empty.
    pub time_min: Option<String>,
    pub time_max: Option<String>,
}

impl Manifest {
    /// A new, empty manifest of the current format version.
    pub fn new(recording_id: String, host: String, start_ns: i64, clock: ClockInfo, recorder: RecorderInfo) -> Self {
        Manifest {
            format: FORMAT_NAME.to_string(),
            format_version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
            recording_id,
            host,
            kernel: None,
            boot_id: None,
            clock,
            recorder,
            start: rfc3339(start_ns),
            end: None,
            files: Vec::new(),
            recovery: None,
            snapshot: None,
        }
    }

    /// Reads and checks a manifest: JSON shape, format name and version.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FormatError::NotARecording {
                    path: path.parent().unwrap_or(path).to_path_buf(),
                    reason: format!("no {}", crate::layout::MANIFEST),
                }
            } else {
                FormatError::io(path, e)
            }
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses manifest bytes; `path` is only used in messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| FormatError::Manifest {
            path: path.to_path_buf(),
            reason: format!("not valid JSON ({e})"),
        })?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT_NAME) => {}
            Some(other) => {
                return Err(FormatError::NotARecording {
                    path: path.to_path_buf(),
                    reason: format!("manifest format is {other:?}, expected {FORMAT_NAME:?}"),
                })
            }
            None => {
                return Err(FormatError::NotARecording {
                    path: path.to_path_buf(),
                    reason: "the JSON file has no \"format\" field".into(),
                })
            }
        }
        // Check the version before the shape: a newer major may have changed the shape,
        // and "needs a newer tcpfr" is the useful message then.
        let version = value
            .get("format_version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| FormatError::Manifest {
                path: path.to_path_buf(),
                reason: "no \"format_version\"".into(),
            })?;
        check_version(version, path)?;
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| FormatError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for f in &manifest.files {
            check_file_path(f).map_err(|reason| FormatError::Manifest { path: path.to_path_buf(), reason })?;
        }
        Ok(manifest)
    }

    /// Writes the manifest atomically and durably (FORMAT.md, "Durability"): a reader,
    /// also after a power cut, sees the old or the new one, never half.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(crate::layout::MANIFEST);
        let tmp = dir.join(format!(".{}.tmp", crate::layout::MANIFEST));
        let json = serde_json::to_vec_pretty(self).expect("manifest serializes");
        crate::fs::write_atomically(&tmp, &path, &json, true)
    }

    /// Files of one table, in time order.
    pub fn files_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a FileEntry> + 'a {
        self.files.iter().filter(move |f| f.table == table)
    }

    /// Absolute path of a file entry. Entries of a parsed manifest passed
    /// [`check_file_path`], so the path stays below `dir`.
    pub fn file_path(dir: &Path, entry: &FileEntry) -> PathBuf {
        entry.path.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
    }
}

/// A file entry's path must name a Parquet file below its table's directory:
/// `<table>/<name>.parquet` in a recording, `<table>/host=…/date=…/hour=…/<name>.parquet`
/// in a shipped store, every component a plain name. Manifests are read by a root
/// daemon that deletes, hard-links and uploads the files they list (the ring, snapshots,
/// `--ship`): a path that could leave the recording (`..`, absolute, empty components)
/// or name a hidden sidecar is refused when the manifest is read, not where it is used.
pub fn check_file_path(entry: &FileEntry) -> std::result::Result<(), String> {
    let table_ok = !entry.table.is_empty() && entry.table.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !table_ok {
        return Err(format!("table name {:?} is not lower-case letters, digits and '_'", entry.table));
    }
    let parts: Vec<&str> = entry.path.split('/').collect();
    let plain = |c: &str| !c.is_empty() && !c.starts_with('.') && !c.contains(['\\', '\0']);
    let well_formed = parts.len() >= 2
        && parts.iter().all(|c| plain(c))
        && parts[0] == entry.table
        && parts.last().is_some_and(|n| n.len() > ".parquet".len() && n.ends_with(".parquet"));
    if !well_formed {
        return Err(format!("file path {:?} is not {}/<name>.parquet", entry.path, entry.table));
    }
    Ok(())
}

/// `Ok` for versions this build reads; a precise error otherwise.
pub fn check_version(version: &str, path: &Path) -> Result<(u32, u32)> {
    let parsed = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some((major, minor)) = parsed else {
        return Err(FormatError::Manifest {
            path: path.to_path_buf(),
            reason: format!("format_version {version:?} is not MAJOR.MINOR"),
        });
    };
    if major != FORMAT_MAJOR {
        let advice = if major > FORMAT_MAJOR {
            format!("Use a tcpfr that reads format {major} (a newer release).")
        } else {
            format!("Format {major} predates this tcpfr; use a tcpfr release that reads it.")
        };
        return Err(FormatError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version.to_string(),
            supported_major: FORMAT_MAJOR,
            advice,
        });
    }
    Ok((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest::new(
            "0190".into(),
            "web1".into(),
            1_700_000_000_123_456_789,
            ClockInfo { mono_to_utc_offset_ns: 5, max_drift_ns: 0 },
            RecorderInfo { version: "tcpfr-recorder 0.1.0".into(), config: serde_json::json!({"rotate": "1m"}) },
        )
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        let bytes = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::parse(&bytes, Path::new("m.json")).unwrap(), m);
        assert_eq!(m.start, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(parse_rfc3339(&m.start), Some(1_700_000_000_123_456_789));
    }

    #[test]
    fn accepts_older_and_newer_minor_of_same_major() {
        for v in ["1.0", "1.7"] {
            let mut j = serde_json::to_value(sample()).unwrap();
            j["format_version"] = v.into();
            j["a_field_from_the_future"] = 1.into();
            let m = Manifest::parse(&serde_json::to_vec(&j).unwrap(), Path::new("m.json")).unwrap();
            assert_eq!(m.format_version, v);
        }
    }

    #[test]
    fn refuses_other_major_with_the_version_needed() {
        let mut j = serde_json::to_value(sample()).unwrap();
        j["format_version"] = "2.0".into();
        // A future major may change the shape entirely; the version check comes first.
        j["files"] = "something else".into();
        let err = Manifest::parse(&serde_json::to_vec(&j).unwrap(), Path::new("rec/manifest.json")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, FormatError::UnsupportedVersion { .. }), "{msg}");
        assert!(msg.contains("format 2.0") && msg.contains("reads format 2"), "{msg}");
        assert!(msg.contains("rec/manifest.json"), "{msg}");
    }

    #[test]
    fn refuses_file_paths_that_could_leave_the_recording() {
        let with_file = |table: &str, path: &str| {
            let mut j = serde_json::to_value(sample()).unwrap();
            j["files"] = serde_json::json!([{
                "table": table, "path": path, "segment": 1, "rows": 1, "bytes": 1,
                "sha256": "", "time_min": null, "time_max": null
            }]);
            Manifest::parse(&serde_json::to_vec(&j).unwrap(), Path::new("rec/manifest.json"))
        };
        for (table, path) in [
            ("retransmits", "../../victim"),
            ("retransmits", "retransmits/../../victim.parquet"),
            ("retransmits", "/etc/shadow.parquet"),
            ("retransmits", "retransmits//x.parquet"),
            ("retransmits", "retransmits/./x.parquet"),
            ("retransmits", "retransmits/.x.parquet.wal"),
            ("retransmits", "retransmits/x.json"),
            ("retransmits", "resets/x.parquet"),
            ("retransmits", "retransmits"),
            ("retransmits", "retransmits/a\\..\\b.parquet"),
            ("..", "../x.parquet"),
            ("Retransmits", "Retransmits/x.parquet"),
        ] {
            let e = with_file(table, path).unwrap_err();
            assert!(matches!(e, FormatError::Manifest { .. }), "{path}: {e}");
            assert!(e.to_string().contains("rec/manifest.json"), "{e}");
        }
        for path in ["retransmits/20231114T221320.000Z-000001.parquet", "retransmits/host=web1/date=2026-11-23/hour=23/0196-000007.parquet"] {
            with_file("retransmits", path).unwrap();
        }
    }

    #[test]
    fn rejects_garbage_and_foreign_json() {
        let e = Manifest::parse(b"\x00\x01garbage", Path::new("m.json")).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = Manifest::parse(br#"{"name": "package.json"}"#, Path::new("m.json")).unwrap_err();
        assert!(matches!(e, FormatError::NotARecording { .. }), "{e}");
        let e = Manifest::parse(br#"{"format": "tcpfr-recording", "format_version": "1.0"}"#, Path::new("m.json")).unwrap_err();
        assert!(matches!(e, FormatError::Manifest { .. }), "{e}");
        let e = Manifest::parse(br#"{"format": "tcpfr-recording", "format_version": "one"}"#, Path::new("m.json")).unwrap_err();
        assert!(e.to_string().contains("MAJOR.MINOR"), "{e}");
    }
}
