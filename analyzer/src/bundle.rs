//! Bundles: one file (`*.tcpfr`) holding a time window of recordings, to attach to a
//! bug report and to open anywhere a recording is accepted.
//!
//! A bundle is an uncompressed tar (Parquet is compressed already) of
//!
//! ```text
//! SHA256SUMS                          sha256sum-style list of every other member
//! rec-N/manifest.json                 a valid tcpfr manifest of the window (one per source recording)
//! rec-N/<table>/<file>.parquet        the window's rows, rewritten (zstd)
//! ```
//!
//! Rows are rewritten, not copied, so Parquet statistics and dictionaries hold only
//! what is in the bundle (and, with `--redact`, only pseudonyms; see `redact`). The
//! `sockets` table is a dimension the analyzer never cuts by time (samples and events
//! look their socket up in it), so it is bundled whole. Reading a bundle checks
//! SHA256SUMS and the manifests, then extracts it into a private temporary directory
//! (0700) removed when the process exits.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::filter_record_batch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};
use tcpfr_schema::manifest::{parse_rfc3339, ClockInfo, RecorderInfo};
use tcpfr_schema::read::{discover, Recording, Source, Verify};
use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
use tcpfr_schema::{layout, schema_of, TABLES};

use crate::dataset::Dataset;
use crate::outfile::OutFile;
use crate::progress;
use crate::redact::{self, Redactor};
use crate::window::Window;

/// Name of the checksum list inside a bundle.
const SUMS: &str = "SHA256SUMS";

/// What `tcpfr bundle` was asked for.
pub struct Request<'a> {
    pub recs: &'a [PathBuf],
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub last: Option<std::time::Duration>,
    pub snapshot: Option<&'a str>,
    pub output: &'a Path,
    pub force: bool,
    pub redact: Option<redact::Options>,
}

/// Makes a bundle; prints what went in.
pub fn create(req: Request) -> Result<()> {
    let output = req.output;
    if output.exists() && !req.force {
        bail!("{} already exists: choose another -o FILE, or pass --force to replace it", output.display());
    }
    if output.is_dir() {
        bail!("{} is a directory: -o names the bundle file to write (e.g. -o incident.tcpfr)", output.display());
    }
    if let Some(url) = req.recs.iter().find(|r| crate::store::is_remote(&r.to_string_lossy())) {
        bail!("tcpfr bundle needs the files on this machine; {} is a remote store: copy the data first (e.g. with `aws s3 sync`) and name the directory", url.display());
    }
    let paths: Vec<PathBuf> = match req.snapshot {
        None => req.recs.to_vec(),
        Some(name) => req
            .recs
            .iter()
            .map(|r| {
                let dir = r.join(layout::SNAPSHOTS).join(name);
                if dir.join(layout::MANIFEST).is_file() {
                    Ok(dir)
                } else {
                    let have: Vec<String> = std::fs::read_dir(r.join(layout::SNAPSHOTS))
                        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                        .unwrap_or_default();
                    let have = if have.is_empty() { "none".to_string() } else { have.join(", ") };
                    bail!("{} has no snapshot {name:?} (snapshots there: {have})", r.display())
                }
            })
            .collect::<Result<_>>()?,
    };
    let resolved = resolve(&paths)?;
    if let Some(s) = discover(&resolved)?.iter().find_map(|s| match s {
        Source::File { path, .. } => Some(path.clone()),
        Source::Recording(_) => None,
    }) {
        bail!("{} is a single Parquet file; bundle its recording directory instead (the one with manifest.json)", s.display());
    }
    let ds = Dataset::open(&resolved)?;
    let window = Window::parse(req.from, req.to, req.last, ds.time_range)?;
    let Some((lo, hi)) = ds.time_range else { bail!("the recordings hold no data to bundle") };
    let start_ns = window.from.map_or(lo, |f| f.max(lo));
    let end_ns = window.to.map_or(hi, |t| (t - 1).min(hi));
    if start_ns > end_ns {
        bail!(
            "the window holds no data: the recordings run from {} to {}",
            tcpfr_schema::manifest::rfc3339(lo),
            tcpfr_schema::manifest::rfc3339(hi)
        );
    }

    let mut redactor = req.redact.clone().map(Redactor::new).transpose()?;
    let staging = private_tempdir("tcpfr-bundle-")?;
    // Progress counts the source files' bytes read (the window is cut while reading).
    let total: u64 = ds
        .recordings
        .iter()
        .flat_map(|r| TABLES.iter().flat_map(move |t| r.paths(t)))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut bar = progress::Bar::new(total, progress::Unit::Bytes, format!("bundling {}", output.display()));
    let mut done = 0u64;
    for (i, rec) in ds.recordings.iter().enumerate() {
        let dir = staging.path().join(format!("rec-{}", i + 1));
        write_recording(rec, &dir, &window, start_ns, end_ns, redactor.as_mut(), &mut |n| {
            done += n;
            bar.set(done);
        })
        .with_context(|| format!("bundling {}", rec.dir.display()))?;
    }
    bar.finish();

    // The checksum list, then every file, into a temporary file next to the output.
    let mut files = Vec::new();
    list_files(staging.path(), staging.path(), &mut files)?;
    files.sort();
    let mut sums = String::new();
    for rel in &files {
        let hash = tcpfr_schema::read::sha256_file(&staging.path().join(rel))?;
        sums.push_str(&format!("{hash}  {rel}\n"));
    }
    let out = OutFile::create(output, req.force)?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(out.file()));
        append(&mut tar, SUMS, sums.len() as u64, sums.as_bytes())?;
        for rel in &files {
            let path = staging.path().join(rel);
            let f = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let len = f.metadata()?.len();
            append(&mut tar, rel, len, f)?;
        }
        let mut w = tar.into_inner().context("cannot write the bundle")?;
        w.flush().context("cannot write the bundle")?;
    }
    let size = out.commit()?;
    eprintln!(
        "wrote {} ({} recording(s), {} to {}, {} bytes{})",
        output.display(),
        ds.recordings.len(),
        tcpfr_schema::manifest::rfc3339(start_ns),
        tcpfr_schema::manifest::rfc3339(end_ns),
        size,
        if req.redact.is_some() { ", redacted" } else { "" }
    );
    Ok(())
}

fn append<R: Read>(tar: &mut tar::Builder<impl Write>, path: &str, len: u64, data: R) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(len);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data).with_context(|| format!("cannot add {path} to the bundle"))
}

/// Relative `/`-separated paths of every file below `dir`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            list_files(root, &p, out)?;
        } else {
            let rel = p.strip_prefix(root).expect("below root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Rewrites the window of one recording into a new recording directory `dir`.
fn write_recording(
    rec: &Recording,
    dir: &Path,
    window: &Window,
    start_ns: i64,
    end_ns: i64,
    mut redactor: Option<&mut Redactor>,
    read: &mut dyn FnMut(u64),
) -> Result<()> {
    let m = &rec.manifest;
    let host = match redactor.as_deref_mut() {
        Some(r) => r.host(&m.host),
        None => m.host.clone(),
    };
    let redacting = redactor.is_some();
    let kernel = match (redactor.as_deref_mut(), &m.kernel) {
        (Some(r), Some(k)) => Some(r.kernel(k)),
        (_, k) => k.clone(),
    };
    // The offset of the monotonic clock is the machine's boot time: it identifies.
    let clock = ClockInfo { mono_to_utc_offset_ns: if redacting { 0 } else { m.clock.mono_to_utc_offset_ns }, ..m.clock.clone() };
    let info = RecordingInfo {
        recording_id: uuid::Uuid::now_v7().to_string(),
        host,
        kernel,
        // Boot ids and the recorder's flags (paths, addresses, host names) identify.
        boot_id: if redacting { None } else { m.boot_id.clone() },
        clock,
        recorder: RecorderInfo {
            version: m.recorder.version.clone(),
            config: if redacting { serde_json::json!({}) } else { m.recorder.config.clone() },
        },
        start_ns,
    };
    let opts = WriterOptions {
        // One row group per source file; no write-ahead log needed.
        min_row_group_rows: 0,
        rotate_interval_ns: i64::MAX,
        file_mode: 0o600,
        dir_mode: 0o700,
        fsync: false,
        ..WriterOptions::default()
    };
    let mut w = RecordingWriter::create(dir, info, opts)?;
    for table in TABLES {
        let schema = schema_of(table).expect("known table");
        for path in rec.paths(table) {
            let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .with_context(|| format!("cannot read {}", path.display()))?;
            for batch in reader {
                let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
                // Exactly the table's columns, with its schema; a nullable column an
                // earlier minor version did not have is null.
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| match batch.column_by_name(f.name()) {
                        Some(c) => Ok(c.clone()),
                        None if f.is_nullable() => Ok(datafusion::arrow::array::new_null_array(f.data_type(), batch.num_rows())),
                        None => Err(anyhow::anyhow!("{}: no column {}", path.display(), f.name())),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let batch = RecordBatch::try_new(schema.clone(), columns).with_context(|| format!("{}: unexpected schema", path.display()))?;
                let batch = if table == "sockets" { batch } else { in_window(&batch, window)? };
                if batch.num_rows() == 0 {
                    continue;
                }
                let batch = match redactor.as_deref_mut() {
                    Some(r) => r.batch(&batch)?,
                    None => batch,
                };
                push(&mut w, table, batch);
            }
            w.flush(i64::MAX, start_ns)?;
            read(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
        }
    }
    let mut manifest = w.finish(end_ns)?;
    if !redacting {
        manifest.snapshot = m.snapshot.clone();
        manifest.store(dir)?;
    }
    Ok(())
}

fn push(w: &mut RecordingWriter, table: &str, b: RecordBatch) {
    match table {
        "retransmits" => w.retransmits.push_batch(b),
        "state_changes" => w.state_changes.push_batch(b),
        "resets" => w.resets.push_batch(b),
        "rtt_samples" => w.rtt_samples.push_batch(b),
        "flows" => w.flows.push_batch(b),
        "sockets" => w.sockets.push_batch(b),
        "host_counters" => w.host_counters.push_batch(b),
        "recorder_stats" => w.recorder_stats.push_batch(b),
        _ => {}
    }
}

/// Rows with `time` in the window.
fn in_window(batch: &RecordBatch, window: &Window) -> Result<RecordBatch> {
    if window.from.is_none() && window.to.is_none() {
        return Ok(batch.clone());
    }
    let time = batch
        .column_by_name("time")
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .context("no time column of type Timestamp(ns)")?;
    let mask: BooleanArray = time
        .iter()
        .map(|t| t.map(|t| window.from.is_none_or(|f| t >= f) && window.to.is_none_or(|e| t < e)))
        .collect();
    Ok(filter_record_batch(batch, &mask)?)
}

// ---------------------------------------------------------------------------------
// Reading bundles.

/// Directories bundles were extracted to; removed by [`cleanup`].
static EXTRACTED: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

/// Removes every extracted bundle (called before the process exits).
pub fn cleanup() {
    if let Ok(mut v) = EXTRACTED.lock() {
        v.clear();
    }
}

/// Whether `dir` lies in a directory a bundle was extracted to.
pub fn is_extracted(dir: &Path) -> bool {
    EXTRACTED.lock().map(|v| v.iter().any(|t| dir.starts_with(t.path()))).unwrap_or(false)
}

fn private_tempdir(prefix: &str) -> Result<tempfile::TempDir> {
    let t = tempfile::Builder::new().prefix(prefix).tempdir().context("cannot create a temporary directory")?;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).context("cannot protect a temporary directory")?;
    Ok(t)
}

/// Paths with every bundle replaced by the directory it was extracted to.
pub fn resolve(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            if !p.is_file() {
                return Ok(p.clone());
            }
            let mut head = [0u8; 512];
            let n = read_up_to(p, &mut head).with_context(|| format!("cannot read {}", p.display()))?;
            let is_tar = n == 512 && &head[257..262] == b"ustar";
            if is_tar {
                extract(p)
            } else if p.extension().is_some_and(|e| e == "tcpfr") {
                bail!(
                    "{} is not a tcpfr bundle: it is not a tar archive (damaged, truncated, or another kind of file); make it again with `tcpfr bundle`",
                    p.display()
                )
            } else {
                Ok(p.clone())
            }
        })
        .collect()
}

fn read_up_to(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks and extracts a bundle; returns the directory holding its recordings.
fn extract(bundle: &Path) -> Result<PathBuf> {
    let damaged = |why: String| anyhow::anyhow!("bundle {} is damaged: {why}; make it again with `tcpfr bundle`, or ask for a new copy", bundle.display());
    let dir = private_tempdir("tcpfr-open-")?;
    let file = File::open(bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut sums: Option<String> = None;
    let entries = archive.entries().map_err(|e| damaged(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        let kind = entry.header().entry_type();
        let path = entry.path().map_err(|e| damaged(e.to_string()))?.into_owned();
        let rel = path.to_string_lossy().into_owned();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            bail!("{} is not a tcpfr bundle: member {rel} is not a regular file", bundle.display());
        }
        let safe = path.components().all(|c| matches!(c, Component::Normal(_))) && path.components().count() <= 4;
        if !safe {
            bail!("{} is not a tcpfr bundle: member {rel:?} has an unsafe path", bundle.display());
        }
        if rel == SUMS {
            let mut s = String::new();
            entry.read_to_string(&mut s).map_err(|e| damaged(format!("{SUMS}: {e}")))?;
            sums = Some(s);
            continue;
        }
        let dest = dir.path().join(&path);
        if let Some(parent) = dest.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| damaged(format!("member {rel}: {e}")))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry.read(&mut buf).map_err(|e| damaged(format!("member {rel}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).with_context(|| format!("cannot write {}", dest.display()))?;
        }
        hashes.insert(rel, hex::encode(hasher.finalize()));
    }
    let Some(sums) = sums else {
        if hashes.keys().any(|k| k == layout::MANIFEST || k.ends_with("/manifest.json")) {
            return Err(damaged(format!("it has no {SUMS}")));
        }
        bail!("{} is a tar archive but not a tcpfr bundle (no {SUMS}, no manifest.json)", bundle.display());
    };
    // Every member listed exactly once: a line listed twice must not make up for a
    // member that is not listed (and so never checked).
    let mut listed = std::collections::BTreeSet::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let Some((hash, rel)) = line.split_once("  ") else { return Err(damaged(format!("{SUMS} has a malformed line {line:?}"))) };
        match hashes.get(rel) {
            None => return Err(damaged(format!("{rel} is missing (truncated?)"))),
            Some(h) if h != hash => return Err(damaged(format!("{rel} has checksum {h}, expected {hash}"))),
            Some(_) if !listed.insert(rel) => return Err(damaged(format!("{SUMS} lists {rel} twice"))),
            Some(_) => {}
        }
    }
    if listed.len() != hashes.len() {
        let extra: Vec<&String> = hashes.keys().filter(|k| !listed.contains(k.as_str())).collect();
        return Err(damaged(format!("members not in {SUMS}: {extra:?}")));
    }
    if !hashes.keys().any(|k| k.ends_with(layout::MANIFEST)) {
        return Err(damaged("it holds no manifest.json".into()));
    }
    for source in discover(&[dir.path().to_path_buf()]).map_err(|e| damaged(e.to_string()))? {
        if let Source::Recording(rec) = source {
            if let Some(p) = rec.verify(Verify::Full).into_iter().next() {
                return Err(damaged(p.to_string()));
            }
        }
    }
    let path = dir.path().to_path_buf();
    EXTRACTED.lock().map_err(|_| anyhow::anyhow!("internal error: lock poisoned"))?.push(dir);
    Ok(path)
}

/// The time range a bundled recording covers: its manifest's start and end (the
/// window bundled), so rates over a bundle equal those over the original.
pub fn bundled_range(rec: &Recording) -> Option<(i64, i64)> {
    let start = parse_rfc3339(&rec.manifest.start)?;
    let end = parse_rfc3339(rec.manifest.end.as_deref()?)?;
    Some((start, end))
}
