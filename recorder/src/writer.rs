//! The writer thread: owns the `RecordingWriter` so that Parquet encoding and disk I/O
//! never stall the thread that drains the ring buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use std::path::PathBuf;

use anyhow::Result;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::manifest::Manifest;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::write::RecordingWriter;

use crate::enrich::Batches;
use crate::ring::Retention;

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
    /// Write everything, close the recording at `end`.
    Finish {
        rows: Batches,
        host_counters: Vec<HostCounters>,
        recorder_stats: Vec<RecorderStats>,
        end: i64,
    },
}

/// What the writer did, read by the pipeline for `recorder_stats`.
#[derive(Default)]
pub struct WriterStats {
    pub rows_written: [AtomicU64; crate::enrich::stream::COUNT],
    pub rows_dropped: [AtomicU64; crate::enrich::stream::COUNT],
    pub last_error: Mutex<Option<String>>,
    /// Segments (and their bytes) deleted by the flight-recorder ring.
    pub evicted_segments: AtomicU64,
    pub evicted_bytes: AtomicU64,
}

/// What the writer thread does besides writing: the flight-recorder ring (`ring.rs`)
/// and snapshots (`snapshot.rs`), both in `out`.
pub struct Config {
    pub out: PathBuf,
    pub retention: Retention,
    pub snapshots: crate::snapshot::Limits,
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
            .spawn(move || run(writer, rx, st, cfg))
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

/// Hands a flush's rows to the recording writer.
pub fn push_all(w: &mut RecordingWriter, rows: Batches, host_counters: Vec<HostCounters>, stats: Vec<RecorderStats>) {
    rows.retransmits.into_iter().for_each(|b| w.retransmits.push_batch(b));
    rows.state_changes.into_iter().for_each(|b| w.state_changes.push_batch(b));
    rows.resets.into_iter().for_each(|b| w.resets.push_batch(b));
    rows.rtt_samples.into_iter().for_each(|b| w.rtt_samples.push_batch(b));
    rows.flows.into_iter().for_each(|b| w.flows.push_batch(b));
    rows.sockets.into_iter().for_each(|b| w.sockets.push_batch(b));
    host_counters.into_iter().for_each(|r| w.host_counters.push(r));
    stats.into_iter().for_each(|r| w.recorder_stats.push(r));
}

fn run(mut w: RecordingWriter, rx: Receiver<Msg>, stats: Arc<WriterStats>, cfg: Config) -> Result<Manifest> {
    let Config { out, retention, snapshots } = cfg;
    let mut snaps = crate::snapshot::Snapshots::new(&out, snapshots);
    let error = |what: &str, e: anyhow::Error| {
        tracing::error!("{what}: {e:#}");
        *stats.last_error.lock().unwrap() = Some(format!("{what}: {e:#}"));
    };
    let ring = |w: &mut RecordingWriter, now: i64| {
        if !retention.is_set() {
            return;
        }
        match crate::ring::enforce(&out, w, &retention, now) {
            Ok(e) => {
                if e.segments > 0 {
                    tracing::debug!("ring: deleted {} segments ({} bytes); {} bytes in use", e.segments, e.bytes, e.in_use);
                }
                stats.evicted_segments.fetch_add(e.segments, Ordering::Relaxed);
                stats.evicted_bytes.fetch_add(e.bytes, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!("enforcing --max-disk/--max-age failed: {e:#}");
                *stats.last_error.lock().unwrap() = Some(format!("ring: {e:#}"));
            }
        }
    };
    ring(&mut w, crate::clock::realtime_ns());
    let mut end = None;
    for msg in rx {
        match msg {
            Msg::Flush { rows, host_counters, recorder_stats, watermark, now } => {
                push_all(&mut w, rows, host_counters, recorder_stats);
                let flushed = w.flush(watermark, now).and_then(|mut report| {
                    // A snapshot whose window has ended completes now, not at the next rotation.
                    if !report.rotated && snaps.window_passed(watermark) {
                        w.rotate(now)?;
                        report.rotated = true;
                    }
                    Ok(report)
                });
                match flushed {
                    Ok(report) => {
                        if report.rotated {
                            // Link into snapshots before the ring may delete anything.
                            if let Err(e) = snaps.update(&w, watermark) {
                                error("snapshot", e);
                            }
                            ring(&mut w, now);
                        }
                        for (i, n) in report.rows_written.iter().enumerate() {
                            stats.rows_written[i].fetch_add(*n, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        tracing::error!("writing the recording failed: {e}");
                        *stats.last_error.lock().unwrap() = Some(e.to_string());
                    }
                }
            }
            Msg::Snapshot { req, reply } => {
                let r = snaps.trigger(&req, &w);
                match &r {
                    Ok(dir) => tracing::info!("snapshot ({}: {}): {}", req.source, req.reason, dir.display()),
                    Err(e) => tracing::error!("snapshot failed: {e:#}"),
                }
                if let Some(tx) = reply {
                    let _ = tx.send(r.map_err(|e| format!("{e:#}")));
                }
            }
            Msg::Finish { rows, host_counters, recorder_stats, end: e } => {
                push_all(&mut w, rows, host_counters, recorder_stats);
                end = Some(e);
                break;
            }
        }
    }
    let end = end.unwrap_or_else(crate::clock::realtime_ns);
    let dir = w.dir().to_path_buf();
    let manifest = w.finish(end)?;
    if let Err(e) = snaps.finish(&manifest, &dir) {
        tracing::error!("completing the snapshot: {e:#}");
    }
    Ok(manifest)
}
