//! The writer thread: owns the `RecordingWriter` so that Parquet encoding and disk I/O
//! never stall the thread that drains the ring buffer.

use tcpfr_schema::TableId;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::path::PathBuf;

use anyhow::Result;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::manifest::Manifest;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::write::RecordingWriter;

use crate::enrich::Batches;
use crate::ring::Retention;
use crate::writer_stats::WriterStats;

pub enum Msg {
    /// Rows to buffer, then write those up to `watermark` (UTC ns); `now` drives rotation.
    Flush {
        rows: Batches,
        host_counters: Vec<HostCounters>,
        recorder_stats: Vec<RecorderStats>,
        watermark: i64,
        now: i64,
    },
    /// Freeze an incident window (see `snapshot.rs`); the snapshot's directory, or
    /// why not, goes back on `reply`.
    Snapshot {
        req: crate::snapshot::Request,
        reply: Option<tokio::sync::oneshot::Sender<Result<PathBuf, String>>>,
    },
    /// Answered once every message sent before it has been handled.
    Sync(std::sync::mpsc::Sender<()>),
    /// Write everything, close the recording at `end`.
    Finish {
        rows: Batches,
        host_counters: Vec<HostCounters>,
        recorder_stats: Vec<RecorderStats>,
        end: i64,
    },
}

/// Sees every flush's rows before they are written, whether or not they can be (the
/// live metrics are about the traffic; the health families say what reached the disk).
pub trait FlushObserver: Send + Sync {
    fn observe(&self, rows: &Batches, host_counters: &[HostCounters], recorder_stats: &[RecorderStats]);
}

/// What the writer thread does besides writing: the flight-recorder ring (`ring.rs`)
/// and snapshots (`snapshot.rs`), both in `out`.
pub struct Config {
    pub out: PathBuf,
    pub retention: Retention,
    pub snapshots: crate::snapshot::Limits,
    /// Shown every flush's rows first (the live metrics of `--metrics-listen`).
    pub observers: Vec<Arc<dyn FlushObserver>>,
    /// `--ship`: poked when files close, told which files the ring deletes.
    pub ship: Option<Arc<crate::ship::ShipStats>>,
}

pub struct WriterHandle {
    pub tx: SyncSender<Msg>,
    pub stats: Arc<WriterStats>,
    thread: JoinHandle<Result<Manifest>>,
}

impl WriterHandle {
    pub fn spawn(writer: RecordingWriter, cfg: Config) -> Self {
        // A few seconds of batches: if the disk cannot keep up, the pipeline waits,
        // the ring buffer fills, and the kernel counts what it drops.
        let (tx, rx) = sync_channel(4);
        let stats = Arc::new(WriterStats::default());
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("tcpfr-writer".into())
            .spawn(move || {
                crate::privileges::confine_thread(crate::privileges::Role::Worker);
                run(writer, rx, st, cfg)
            })
            .expect("spawning the writer thread");
        WriterHandle { tx, stats, thread }
    }

    /// Waits for the writer to finish; returns the final manifest.
    pub fn join(self) -> Result<Manifest> {
        drop(self.tx);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => anyhow::bail!("the writer thread panicked"),
        }
    }
}

/// How often a degraded writer checks whether the output is writable again.
const PROBE_INTERVAL_NS: i64 = 1_000_000_000;
/// Free space needed to resume writing.
const RESUME_FREE_BYTES: u64 = 4 << 20;

struct Degraded {
    since: i64,
    reason: String,
    dropped: u64,
    next_probe: i64,
}

/// A write failed: gives up the open files (keeping what can be kept), counts what is
/// lost, and starts counting only; rows up to `since` are on disk.
fn give_up(w: &mut RecordingWriter, e: &tcpfr_schema::FormatError, stats: &WriterStats, since: i64, now: i64) -> Degraded {
    let reason = describe(e);
    tracing::error!("writing the recording failed ({reason}): {e}; counting events only until it can be written again");
    *stats.last_error.lock().unwrap() = Some(e.to_string());
    let mut dropped = 0;
    for (i, k) in w.abandon(now).iter().enumerate() {
        stats.rows_dropped[i].fetch_add(*k, Ordering::Relaxed);
        dropped += k;
    }
    Degraded { since, reason, dropped, next_probe: now + PROBE_INTERVAL_NS }
}

/// Rows per table (in [`TableId::ALL`] order) of one flush message.
fn count_rows(b: &Batches, host_counters: usize, recorder_stats: usize) -> [u64; TableId::COUNT] {
    let mut c = b.rows();
    c[TableId::HostCounters.index()] = host_counters as u64;
    c[TableId::RecorderStats.index()] = recorder_stats as u64;
    c
}

/// At stop, the last interval's `recorder_stats` rows are made before the writer has
/// written what it still buffers and what the final message brings; `finish` writes
/// those rows, so they are counted into the last rows of their streams here (the
/// table that promises nothing was lost silently counts exactly).
fn count_final_rows(w: &RecordingWriter, rows: &Batches, recorder_stats: &mut [RecorderStats], stats: &WriterStats) {
    let incoming = count_rows(rows, 0, 0);
    let pending = w.pending_rows();
    for (i, table) in tcpfr_schema::TABLES.iter().enumerate() {
        let n = pending[i] + incoming[i];
        let last = recorder_stats.iter_mut().rev().find(|r| r.interval_ns > 0 && r.gap_start.is_none() && &*r.stream == *table);
        if let Some(r) = last {
            r.rows_written += n as i64;
            stats.rows_written[i].fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Whether `dir` can take writes again: enough free space, and a file can be made.
fn writable(dir: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct for statvfs to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 || st.f_flag & libc::ST_RDONLY != 0 {
        return false;
    }
    if (st.f_bavail as u64).saturating_mul(st.f_frsize as u64) < RESUME_FREE_BYTES {
        return false;
    }
    let probe = dir.join(".tcpfr-write-probe");
    let ok = std::fs::write(&probe, [0u8; 4096]).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// The cause of a write error in a few words.
fn describe(e: &tcpfr_schema::FormatError) -> String {
    let text = e.to_string();
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()).and_then(|e| e.raw_os_error());
    match io {
        Some(libc::ENOSPC) => "disk full".into(),
        Some(libc::EROFS) => "read-only file system".into(),
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".into(),
        Some(libc::EDQUOT) => "disk quota exceeded".into(),
        _ if text.contains("No space left") => "disk full".into(),
        _ if text.contains("Read-only file system") => "read-only file system".into(),
        _ => "write error".into(),
    }
}

/// Hands a flush's rows to the recording writer.
pub fn push_all(w: &mut RecordingWriter, rows: Batches, host_counters: Vec<HostCounters>, stats: Vec<RecorderStats>) {
    rows.push_into(w);
    host_counters.into_iter().for_each(|r| w.host_counters.push(r));
    stats.into_iter().for_each(|r| w.recorder_stats.push(r));
}

fn run(w: RecordingWriter, rx: Receiver<Msg>, stats: Arc<WriterStats>, cfg: Config) -> Result<Manifest> {
    let mut t = WriterThread::new(w, stats, cfg);
    t.ring(crate::clock::realtime_ns());
    let mut end = None;
    for msg in rx {
        match msg {
            Msg::Flush { rows, host_counters, recorder_stats, watermark, now } => {
                for o in &t.observers {
                    o.observe(&rows, &host_counters, &recorder_stats);
                }
                if t.degraded.is_some() {
                    t.drop_while_degraded(count_rows(&rows, host_counters.len(), recorder_stats.len()), watermark, now);
                } else {
                    push_all(&mut t.w, rows, host_counters, recorder_stats);
                    t.flush(watermark, now);
                }
            }
            Msg::Snapshot { req, reply } => {
                let r = t.snaps.trigger(&req, &t.w);
                match &r {
                    Ok(dir) => tracing::info!("snapshot ({}: {}): {}", req.source, req.reason, dir.display()),
                    Err(e) => tracing::error!("snapshot failed: {}", crate::error_text(e)),
                }
                if let Some(tx) = reply {
                    let _ = tx.send(r.map_err(|e| crate::error_text(&e)));
                }
            }
            Msg::Sync(reply) => {
                let _ = reply.send(());
            }
            Msg::Finish { rows, host_counters, mut recorder_stats, end: e } => {
                for o in &t.observers {
                    o.observe(&rows, &host_counters, &recorder_stats);
                }
                if t.degraded.is_none() {
                    count_final_rows(&t.w, &rows, &mut recorder_stats, &t.stats);
                }
                push_all(&mut t.w, rows, host_counters, recorder_stats);
                end = Some(e);
                break;
            }
        }
    }
    t.finish(end.unwrap_or_else(crate::clock::realtime_ns))
}

/// The writer thread's state between messages.
struct WriterThread {
    w: RecordingWriter,
    stats: Arc<WriterStats>,
    out: PathBuf,
    retention: Retention,
    snaps: crate::snapshot::Snapshots,
    observers: Vec<Arc<dyn FlushObserver>>,
    ship: Option<Arc<crate::ship::ShipStats>>,
    /// Set while the output cannot be written (disk full, read-only): rows are counted
    /// and dropped, the kernel side goes on, and writing resumes once a probe succeeds.
    degraded: Option<Degraded>,
}

impl WriterThread {
    fn new(w: RecordingWriter, stats: Arc<WriterStats>, cfg: Config) -> Self {
        let Config { out, retention, snapshots, observers, ship } = cfg;
        let snaps = crate::snapshot::Snapshots::new(&out, snapshots);
        WriterThread { w, stats, out, retention, snaps, observers, ship, degraded: None }
    }

    fn error(&self, what: &str, e: anyhow::Error) {
        let text = format!("{what}: {}", crate::error_text(&e));
        tracing::error!("{text}");
        *self.stats.last_error.lock().unwrap() = Some(text);
    }

    /// The flight-recorder ring, and the uploader told which files it deleted.
    fn ring(&mut self, now: i64) {
        if !self.retention.is_set() {
            return;
        }
        let e = match crate::ring::enforce(&self.out, &mut self.w, &self.retention, now) {
            Ok(e) => e,
            Err(e) => return self.error("enforcing --max-disk/--max-age", e),
        };
        if e.segments > 0 {
            tracing::debug!("ring: deleted {} segments ({} bytes); {} bytes in use", e.segments, e.bytes, e.in_use);
        }
        self.stats.evicted_segments.fetch_add(e.segments, Ordering::Relaxed);
        self.stats.evicted_bytes.fetch_add(e.bytes, Ordering::Relaxed);
        if let Some(ship) = &self.ship {
            let mut by_rec: Vec<(&str, Vec<tcpfr_schema::manifest::FileEntry>)> = Vec::new();
            for (id, f) in &e.files {
                match by_rec.iter_mut().find(|(r, _)| r == id) {
                    Some((_, v)) => v.push(f.clone()),
                    None => by_rec.push((id, vec![f.clone()])),
                }
            }
            for (id, files) in by_rec {
                ship.evicted(id, &files);
            }
        }
    }

    /// Writes what is due, rotating when a snapshot's window has ended.
    fn flush(&mut self, watermark: i64, now: i64) {
        let files_before = self.w.manifest().files.len();
        let (w, snaps) = (&mut self.w, &self.snaps);
        let flushed = w.flush(watermark, now).and_then(|mut report| {
            // A snapshot whose window has ended completes now, not at the next rotation.
            if !report.rotated && snaps.window_passed(watermark) {
                w.rotate(now)?;
                report.rotated = true;
            }
            Ok(report)
        });
        let report = match flushed {
            Ok(report) => report,
            Err(e) => {
                self.degraded = Some(give_up(&mut self.w, &e, &self.stats, watermark, now));
                return;
            }
        };
        let files = self.w.manifest().files.len().saturating_sub(files_before);
        self.stats.files_written.fetch_add(files as u64, Ordering::Relaxed);
        if let Some(ship) = self.ship.as_ref().filter(|_| files > 0) {
            ship.wake();
        }
        if report.rotated || report.rows_written.iter().any(|n| *n > 0) {
            self.stats.last_write_ns.store(crate::clock::realtime_ns(), Ordering::Relaxed);
        }
        if report.rotated {
            // Link into snapshots before the ring may delete anything.
            if let Err(e) = self.snaps.update(&self.w, watermark) {
                self.error("snapshot", e);
            }
            self.ring(now);
        }
        for (i, n) in report.rows_written.iter().enumerate() {
            self.stats.rows_written[i].fetch_add(*n, Ordering::Relaxed);
        }
    }

    /// While degraded: counts a flush's rows as dropped and, at each probe interval,
    /// frees what the ring may and resumes if the output is writable again.
    fn drop_while_degraded(&mut self, rows: [u64; TableId::COUNT], watermark: i64, now: i64) {
        let d = self.degraded.as_mut().expect("degraded");
        for (i, k) in rows.iter().enumerate() {
            self.stats.rows_dropped[i].fetch_add(*k, Ordering::Relaxed);
            d.dropped += k;
        }
        if now < d.next_probe {
            return;
        }
        // Old segments may be what fills the disk: --max-age and --max-disk go on
        // freeing space while nothing can be written.
        self.ring(now);
        if !writable(self.w.dir()) {
            self.degraded.as_mut().expect("degraded").next_probe = now + PROBE_INTERVAL_NS;
            return;
        }
        let d = self.degraded.take().expect("degraded");
        let kept = self.w.retry_salvage();
        if kept > 0 {
            tracing::info!("kept {kept} rows of files given up while the output was not writable");
        }
        let host = tcpfr_schema::Str::from(self.w.manifest().host.as_str());
        let note = format!("{}: nothing written, {} rows dropped; writing resumed", d.reason, d.dropped);
        let mut row = crate::recorder_stats::gap(&host, d.since, now, note);
        // The interval rows of the gap were dropped too: the total is here.
        row.rows_dropped = d.dropped as i64;
        self.w.recorder_stats.push(row);
        tracing::warn!("the output is writable again: recording resumed ({} rows were dropped)", d.dropped);
        // Make the gap row durable at once: another failure would lose what is only
        // buffered or logged.
        if let Err(e) = self.w.rotate(now) {
            self.degraded = Some(give_up(&mut self.w, &e, &self.stats, watermark, now));
        }
    }

    /// Closes the recording at `end` and completes a snapshot still open.
    fn finish(mut self, end: i64) -> Result<Manifest> {
        let dir = self.w.dir().to_path_buf();
        let fallback = self.w.manifest().clone();
        let manifest = match self.w.finish(end) {
            Ok(m) => m,
            Err(e) if self.degraded.is_some() => {
                // Left unfinished: the next start completes it (crash recovery).
                tracing::error!("cannot close the recording ({e}); the next start will complete it");
                return Ok(fallback);
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self.snaps.finish(&manifest, &dir) {
            tracing::error!("completing the snapshot: {}", crate::error_text(&e));
        }
        Ok(manifest)
    }
}
