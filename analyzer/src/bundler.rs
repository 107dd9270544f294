//! `tcpfr bundle`: a time window of recordings rewritten into one tar (the format is in
//! the module docs of `bundle`, which reads them), redacted on request.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::filter_record_batch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::read::Recording;
use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
use tcpfr_schema::{layout, schema_of, TABLES};

use crate::bundle::{private_tempdir, SUMS};
use crate::dataset::Dataset;
use crate::env::Env;
use crate::outfile::OutFile;
use crate::progress;
use crate::redact::{self, Redactor};
use crate::window::Window;

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
pub async fn create(env: &Env, req: Request<'_>) -> Result<()> {
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
    let ds = Dataset::open(env, &paths).await?;
    if let Some(s) = ds.lone_files.first() {
        bail!("{} is a single Parquet file; bundle its recording directory instead (the one with manifest.json)", s.display());
    }
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
    let mut bar = progress::Bar::new(env.progress, total, progress::Unit::Bytes, format!("bundling {}", output.display()));
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

