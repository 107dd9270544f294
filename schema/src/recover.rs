//! Crash recovery: completing a recording whose writer did not stop cleanly (SIGKILL,
//! OOM kill, power loss).
//!
//! While a file is written (see `write.rs`) its complete row groups are described by a
//! partial footer saved next to it, and the rows of the row group in progress are in a
//! write-ahead log. Recovery rebuilds each unfinished file from those two — every
//! complete row group, then every complete batch of the log — under its final name,
//! adds it to the manifest, and closes the manifest (`end` = the last row's time,
//! `recovery` = what was done). What cannot be used is moved to `quarantine/` with the
//! reason, never deleted. Recovering twice, or after a crash during recovery, gives the
//! same result. Recovery writes as durably as the writer (FORMAT.md, "Durability"), so a
//! power cut during recovery is one more crash.
//!
//! A recording whose manifest cannot be read (damaged by a disk or a tool, or left
//! empty by a power cut under a recorder older than the durability protocol) is
//! recovered too: the manifest is set aside in `quarantine/` and a new one is made from
//! what the files say about themselves (see [`rebuild_manifest`]).
//!
//! Only a recording that no writer has open may be recovered: the recorder holds a lock
//! on its output directory and recovers the recordings there before it starts a new one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader};

use crate::error::{FormatError, Result};
use crate::layout;
use crate::manifest::{ClockInfo, FileEntry, Manifest, RecorderInfo, RecoveryInfo};
use crate::time::rfc3339;
use crate::read::inspect_parquet;
use crate::file_options::{file_kv, properties, WriterOptions};
use crate::fs::{create_dir_all, sync_dir, sync_parent, write_err, HashingWriter};

/// What [`recover`] did to one recording.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub dir: PathBuf,
    /// Files completed from a crash's leftovers, or found complete but unlisted.
    pub files: Vec<FileEntry>,
    /// Rows of those files that came from write-ahead logs.
    pub wal_rows: u64,
    /// Leftovers moved to `quarantine/`, with the reason.
    pub quarantined: Vec<(PathBuf, String)>,
    /// Time of the recording's last row after recovery (where the gap starts).
    pub last_time_ns: Option<i64>,
    /// Its manifest could not be read and was made anew from its files.
    pub manifest_rebuilt: bool,
}

impl Recovered {
    /// One line for logs and `recorder_stats` notes.
    pub fn summary(&self) -> String {
        let what = if self.manifest_rebuilt {
            "had a manifest that could not be read; a new one was made from its files"
        } else {
            "did not stop cleanly"
        };
        let mut s = format!(
            "{} {what}; {} file(s) completed ({} rows from write-ahead logs)",
            self.dir.display(),
            self.files.len(),
            self.wal_rows
        );
        if !self.quarantined.is_empty() {
            s.push_str(&format!("; {} file(s) quarantined: ", self.quarantined.len()));
            let why: Vec<String> =
                self.quarantined.iter().map(|(p, r)| format!("{}: {r}", p.display())).collect();
            s.push_str(&why.join("; "));
        }
        s
    }
}

/// Whether `dir` holds a recording that was never closed (no `end` in its manifest), or
/// whose `manifest.json` is damaged (not JSON, or not the shape of ours). A manifest of
/// another format version, or a JSON file that is not a tcpfr manifest, is left alone.
pub fn needs_recovery(dir: &Path) -> bool {
    match Manifest::load(&dir.join(layout::MANIFEST)) {
        Ok(m) => m.end.is_none(),
        Err(FormatError::Manifest { .. }) => true,
        Err(_) => false,
    }
}

/// Completes the recording in `dir`. The caller makes sure no writer has it open.
pub fn recover(dir: &Path, opts: &WriterOptions) -> Result<Recovered> {
    let mut out = Recovered { dir: dir.to_path_buf(), ..Default::default() };
    let mut manifest = match Manifest::load(&dir.join(layout::MANIFEST)) {
        Ok(m) => m,
        Err(damaged @ FormatError::Manifest { .. }) => rebuild_manifest(dir, &damaged, &mut out)?,
        Err(e) => return Err(e),
    };
    let listed: std::collections::HashSet<PathBuf> =
        manifest.files.iter().map(|f| Manifest::file_path(dir, f)).collect();
    for table in crate::TABLES {
        // Final path → the hidden files that belong to it.
        let mut unfinished: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        let mut complete = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir.join(table)) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if let Some(final_path) = layout::final_path_of(&p) {
                unfinished.entry(final_path).or_default().push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") && !listed.contains(&p) {
                complete.push(p);
            }
        }
        // Renamed to its final name, but the manifest was not stored: complete.
        for p in complete {
            if unfinished.contains_key(&p) {
                continue;
            }
            match entry_of_complete_file(dir, table, &p) {
                Ok(e) => out.files.push(e),
                Err(e) => quarantine(dir, table, &[p], e.to_string(), &mut out)?,
            }
        }
        let changed = !unfinished.is_empty();
        for (final_path, hidden) in unfinished {
            let inprogress = layout::inprogress_path(&final_path);
            if final_path.exists() {
                // Closed and renamed; the sidecars outlived it.
                for h in &hidden {
                    std::fs::remove_file(h).map_err(|e| FormatError::io(h, e))?;
                }
                if !listed.contains(&final_path) {
                    match entry_of_complete_file(dir, table, &final_path) {
                        Ok(e) => out.files.push(e),
                        Err(e) => quarantine(dir, table, &[final_path], e.to_string(), &mut out)?,
                    }
                }
                continue;
            }
            if !inprogress.exists() {
                let _ = std::fs::remove_file(layout::recovering_path(&final_path));
                let rest: Vec<PathBuf> = hidden.into_iter().filter(|h| h.exists()).collect();
                if !rest.is_empty() {
                    quarantine(dir, table, &rest, "left without its data file".into(), &mut out)?;
                }
                continue;
            }
            match recover_file(dir, &manifest, table, &final_path, opts) {
                Ok(rebuilt) => {
                    if let Some((entry, wal_rows)) = rebuilt {
                        out.wal_rows += wal_rows;
                        out.files.push(entry);
                    }
                    // Whatever else it left (a footer killed mid-save) is of no use now.
                    for h in hidden.iter().filter(|h| h.exists()) {
                        std::fs::remove_file(h).map_err(|e| FormatError::io(h, e))?;
                    }
                }
                Err(reason) => {
                    let _ = std::fs::remove_file(layout::recovering_path(&final_path));
                    let rest: Vec<PathBuf> = hidden.into_iter().filter(|h| h.exists()).collect();
                    quarantine(dir, table, &rest, reason, &mut out)?;
                }
            }
        }
        // The leftovers' deletions, before the manifest closes the recording: once it
        // has an `end` no recovery runs again, and a leftover a cut brought back would stay.
        if changed && opts.fsync {
            sync_dir(&dir.join(table))?;
        }
    }
    out.files.sort_by(|a, b| (a.segment, &a.path).cmp(&(b.segment, &b.path)));
    manifest.files.extend(out.files.iter().cloned());
    let last = manifest.files.iter().filter_map(|f| f.time_max.as_deref()).filter_map(crate::manifest::parse_rfc3339).max();
    out.last_time_ns = last;
    manifest.end = Some(match last {
        Some(t) => rfc3339(t),
        None => manifest.start.clone(),
    });
    manifest.recovery = Some(RecoveryInfo {
        at: rfc3339(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)),
        files_completed: out.files.len() as u64,
        wal_rows: out.wal_rows,
        quarantined: out.quarantined.iter().map(|(p, r)| format!("{}: {r}", p.display())).collect(),
    });
    manifest.store(dir)?;
    Ok(out)
}

/// Rebuilds one unfinished file; `Ok(None)` when it held no rows that reached the disk.
/// Errors are reasons to quarantine it.
fn recover_file(
    dir: &Path,
    manifest: &Manifest,
    table: &str,
    final_path: &Path,
    opts: &WriterOptions,
) -> std::result::Result<Option<(FileEntry, u64)>, String> {
    let schema = crate::schema_of(table).ok_or("not a table of this format")?;
    let segment = layout::segment_of(final_path).ok_or("the file name has no segment number")?;
    let inprogress = layout::inprogress_path(final_path);
    let footer = layout::footer_path(final_path);
    let wal = layout::wal_path(final_path);

    // Complete row groups: cut the file where the saved footer says they end and put
    // the footer there. Doing it again after a crash during recovery gives the same file.
    let (groups, base_rows) = match seal_row_groups(&inprogress, &footer)? {
        Some((f, n)) => (Some(f), n),
        None => (None, 0),
    };

    // The write-ahead log: every complete batch, unless its rows already reached a row
    // group (a crash after the footer was saved and before the log was deleted).
    let mut wal_batches = Vec::new();
    if let Ok(f) = File::open(&wal) {
        if let Ok(reader) = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(f), None) {
            let wal_base: i64 = reader
                .schema()
                .metadata()
                .get(layout::kv::WAL_BASE_ROWS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if wal_base >= base_rows {
                for b in reader {
                    // A torn last batch ends the log.
                    let Ok(b) = b else { break };
                    let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                        .map_err(|e| format!("its write-ahead log does not match the table: {e}"))?;
                    wal_batches.push(b);
                }
            }
        }
    }
    let wal_rows: u64 = wal_batches.iter().map(|b| b.num_rows() as u64).sum();
    if base_rows == 0 && wal_rows == 0 {
        // Nothing of it reached the disk: no file. The data file goes last: a power cut
        // between these deletions must leave it to the next recovery, which finds it
        // empty again, not a log without its data file, which looks like lost rows.
        for p in [&wal, &footer, &inprogress] {
            let _ = std::fs::remove_file(p);
        }
        return Ok(None);
    }

    let tmp = layout::recovering_path(final_path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(opts.file_mode)
        .open(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let kv = file_kv(&manifest.recording_id, table, &manifest.host, segment);
    let mut w = ArrowWriter::try_new(HashingWriter::new(file), schema.clone(), Some(properties("time", opts, kv)))
        .map_err(|e| e.to_string())?;
    let mut st = Stats::default();
    if let Some(f) = groups {
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| format!("its complete row groups cannot be read: {e}"))?;
        for b in reader {
            let b = b.map_err(|e| format!("its complete row groups cannot be read: {e}"))?;
            let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(|e| e.to_string())?;
            st.write(&mut w, &b, opts)?;
        }
    }
    for b in &wal_batches {
        st.write(&mut w, b, opts)?;
    }
    if st.sorted {
        w.append_key_value_metadata(KeyValue::new(layout::kv::SORTED_BY.to_string(), "time".to_string()));
    }
    let hw = w.into_inner().map_err(|e| e.to_string())?;
    let (file, digest, bytes) = hw.finish();
    if opts.fsync {
        file.sync_all().map_err(|e| e.to_string())?;
    }
    drop(file);
    std::fs::rename(&tmp, final_path).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
    if opts.fsync {
        sync_parent(final_path).map_err(|e| e.to_string())?;
    }
    for p in [&inprogress, &footer, &wal] {
        let _ = std::fs::remove_file(p);
    }
    Ok(Some((
        FileEntry {
            table: table.to_string(),
            path: relative(dir, final_path),
            segment,
            rows: st.rows,
            bytes,
            sha256: hex::encode(digest),
            time_min: (st.rows > 0).then(|| rfc3339(st.min)),
            time_max: (st.rows > 0).then(|| rfc3339(st.max)),
        },
        wal_rows,
    )))
}

/// Cuts an unfinished file after its last complete row group (as its saved footer
/// describes them) and appends that footer: the file is then a valid Parquet file of
/// those row groups. `None` when no row group was completed. Idempotent.
fn seal_row_groups(inprogress: &Path, footer: &Path) -> std::result::Result<Option<(File, i64)>, String> {
    if !footer.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(footer).map_err(|e| format!("cannot read its saved footer: {e}"))?;
    let n = bytes.len();
    if n < 8 || &bytes[n - 4..] != b"PAR1" {
        return Err("its saved footer is not a Parquet footer".into());
    }
    let md = decode_saved_footer(&bytes).ok_or("its saved footer cannot be decoded")?;
    let data_end = md
        .row_groups()
        .iter()
        .flat_map(|g| g.columns())
        .map(|c| {
            let (start, len) = c.byte_range();
            start + len
        })
        .max()
        .unwrap_or(4);
    let mut f = OpenOptions::new().read(true).write(true).open(inprogress).map_err(|e| format!("cannot open it: {e}"))?;
    let have = f.metadata().map_err(|e| e.to_string())?.len();
    if have < data_end {
        return Err(format!("its saved footer describes {data_end} bytes of row groups, the file has only {have}"));
    }
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic).map_err(|e| e.to_string())?;
    if &magic != b"PAR1" {
        return Err("it does not start like a Parquet file".into());
    }
    f.set_len(data_end).map_err(|e| format!("cannot cut it: {e}"))?;
    f.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    f.write_all(&bytes).map_err(|e| format!("cannot append the footer: {e}"))?;
    f.sync_all().map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(Some((f, md.file_metadata().num_rows())))
}

/// The metadata in a saved partial footer (`<metadata><length><PAR1>`).
fn decode_saved_footer(bytes: &[u8]) -> Option<ParquetMetaData> {
    let n = bytes.len();
    if n < 8 || &bytes[n - 4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes([bytes[n - 8], bytes[n - 7], bytes[n - 6], bytes[n - 5]]) as usize;
    (len + 8 <= n).then(|| ParquetMetaDataReader::decode_metadata(&bytes[n - 8 - len..n - 8]).ok()).flatten()
}

/// A new manifest for the recording in `dir`, whose own cannot be read (`damaged`). The
/// damaged one is copied to `quarantine/` (noted in `out`), then replaced by one that
/// says what the files say about themselves: recording id and host from the tcpfr
/// key-value metadata of the earliest complete file or saved footer that has them (a
/// new id and host `unknown` if none has), the start from the earliest file name's
/// segment start. The clock offset, kernel, boot id and configuration are in no file:
/// left empty. It lists no file and has no `end`: recovery goes on as after any crash,
/// listing the complete files and rebuilding the unfinished ones.
fn rebuild_manifest(dir: &Path, damaged: &FormatError, out: &mut Recovered) -> Result<Manifest> {
    let mut start: Option<i64> = None;
    // (segment, recording id, host) of the earliest file that names them.
    let mut ids: Option<(u64, String, String)> = None;
    for table in crate::TABLES {
        let Ok(rd) = std::fs::read_dir(dir.join(table)) else { continue };
        for e in rd.flatten() {
            // Never through a symlink: this runs as root on whatever is in the directory.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let p = e.path();
            let final_path = layout::final_path_of(&p).unwrap_or_else(|| p.clone());
            let (Some(segment), Some(t)) = (layout::segment_of(&final_path), layout::segment_start_of(&final_path)) else {
                continue;
            };
            start = Some(start.map_or(t, |s| s.min(t)));
            if ids.as_ref().is_some_and(|(s, ..)| *s <= segment) {
                continue;
            }
            let md = if p == final_path {
                crate::read::read_footer(&p).ok()
            } else if p == layout::footer_path(&final_path) {
                std::fs::read(&p).ok().and_then(|b| decode_saved_footer(&b))
            } else {
                None
            };
            let get = |md: &ParquetMetaData, k: &str| {
                md.file_metadata().key_value_metadata()?.iter().find(|e| e.key == k)?.value.clone()
            };
            if let Some((Some(id), Some(host))) = md.map(|md| (get(&md, layout::kv::RECORDING_ID), get(&md, layout::kv::HOST))) {
                ids = Some((segment, id, host));
            }
        }
    }
    let Some(start) = start else {
        return Err(FormatError::NotARecording {
            path: dir.to_path_buf(),
            reason: format!("{damaged}; and it holds no file of a recording to rebuild the manifest from (move it out of the output directory)"),
        });
    };
    let (recording_id, host) = match ids {
        Some((_, id, host)) => (id, host),
        None => (uuid::Uuid::now_v7().to_string(), "unknown".to_string()),
    };
    // Copied, not moved: until the new manifest is stored, the damaged one keeps the
    // directory a recording (a crash here must leave it to the next recovery).
    let qdir = dir.join(layout::QUARANTINE);
    create_dir_all(&qdir, 0o750, true)?;
    // `manifest.json`, or `manifest.json.N` if an earlier repair kept one there.
    let kept = (0..)
        .map(|i| qdir.join(if i == 0 { layout::MANIFEST.to_string() } else { format!("{}.{i}", layout::MANIFEST) }))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("a free name");
    let src = dir.join(layout::MANIFEST);
    let bytes = std::fs::read(&src).map_err(|e| FormatError::io(&src, e))?;
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o640).open(&kept).map_err(|e| FormatError::io(&kept, e))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| FormatError::io(&kept, e))?;
    sync_dir(&qdir)?;
    let recorder = RecorderInfo { version: "unknown (manifest rebuilt by crash recovery)".into(), config: serde_json::Value::Null };
    let manifest = Manifest::new(recording_id, host, start, ClockInfo { mono_to_utc_offset_ns: 0, max_drift_ns: 0 }, recorder);
    manifest.store(dir)?;
    out.quarantined.push((kept, format!("{damaged}; a new manifest was made from the files")));
    out.manifest_rebuilt = true;
    Ok(manifest)
}

/// Keeps what can be kept of a file the writer had to give up (disk full, read-only
/// file system) without needing free space: its complete row groups, sealed in place
/// and renamed to the final name. The write-ahead log's rows are lost (counted by the
/// caller). Returns the manifest entry, or `None` if no row group was complete.
pub fn salvage(dir: &Path, table: &str, final_path: &Path) -> Result<Option<FileEntry>> {
    let inprogress = layout::inprogress_path(final_path);
    let footer = layout::footer_path(final_path);
    let wal = layout::wal_path(final_path);
    let footer_tmp = layout::footer_tmp_path(final_path);
    let sealed = seal_row_groups(&inprogress, &footer).map_err(|reason| FormatError::Write { path: inprogress.clone(), reason })?;
    let entry = match sealed {
        Some((f, _)) => {
            drop(f);
            std::fs::rename(&inprogress, final_path).map_err(|e| FormatError::io(final_path, e))?;
            sync_parent(final_path)?;
            Some(entry_of_complete_file(dir, table, final_path)?)
        }
        None => None,
    };
    // Nothing may stay behind (a read-only file system refuses: the caller retries).
    for p in [&inprogress, &footer, &wal, &footer_tmp] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FormatError::io(p, e)),
        }
    }
    sync_parent(final_path)?;
    Ok(entry)
}

/// Rows, time range and order of what is written to a rebuilt file.
struct Stats {
    rows: u64,
    min: i64,
    max: i64,
    last: i64,
    sorted: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { rows: 0, min: i64::MAX, max: i64::MIN, last: i64::MIN, sorted: true }
    }
}

impl Stats {
    fn write(
        &mut self,
        w: &mut ArrowWriter<HashingWriter>,
        b: &RecordBatch,
        opts: &WriterOptions,
    ) -> std::result::Result<(), String> {
        if b.num_rows() == 0 {
            return Ok(());
        }
        let t = b
            .column_by_name("time")
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .ok_or("rows without a time column")?;
        if t.null_count() > 0 {
            return Err("rows without a time".into());
        }
        for &v in t.values().iter() {
            self.sorted &= v >= self.last;
            self.last = v;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.rows += b.num_rows() as u64;
        w.write(b).map_err(|e| e.to_string())?;
        if w.in_progress_rows() >= opts.max_row_group_rows.min(256 * 1024) {
            w.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The manifest entry of a complete file that the manifest does not list yet.
fn entry_of_complete_file(dir: &Path, table: &str, path: &Path) -> Result<FileEntry> {
    let info = inspect_parquet(path)?;
    if info.table != table {
        return Err(FormatError::ForeignParquet {
            path: path.to_path_buf(),
            reason: format!("it belongs to table {}, not {table}", info.table),
        });
    }
    let segment = layout::segment_of(path).ok_or_else(|| FormatError::ForeignParquet {
        path: path.to_path_buf(),
        reason: "its name has no segment number".into(),
    })?;
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let bytes = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| {
            let mask = parquet::arrow::ProjectionMask::columns(b.parquet_schema(), ["time"]);
            b.with_projection(mask).build()
        })
        .map_err(|e| write_err(path, e))?;
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for b in reader {
        let b = b.map_err(|e| write_err(path, e))?;
        if let Some(t) = b.column(0).as_any().downcast_ref::<TimestampNanosecondArray>() {
            for &v in t.values().iter() {
                min = min.min(v);
                max = max.max(v);
            }
        }
    }
    Ok(FileEntry {
        table: table.to_string(),
        path: relative(dir, path),
        segment,
        rows: info.rows,
        bytes,
        sha256: crate::read::sha256_file(path)?,
        time_min: (info.rows > 0).then(|| rfc3339(min)),
        time_max: (info.rows > 0).then(|| rfc3339(max)),
    })
}

/// Moves `files` to `<recording>/quarantine/<table>/`, keeping their names.
fn quarantine(dir: &Path, table: &str, files: &[PathBuf], reason: String, out: &mut Recovered) -> Result<()> {
    let qdir = dir.join(layout::QUARANTINE).join(table);
    create_dir_all(&qdir, 0o750, true)?;
    for f in files {
        let to = qdir.join(f.file_name().unwrap_or_default());
        std::fs::rename(f, &to).map_err(|e| FormatError::io(f, e))?;
        sync_parent(f)?;
        out.quarantined.push((to, reason.clone()));
    }
    sync_dir(&qdir)
}

fn relative(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
