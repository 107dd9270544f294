//! What a scrape prints besides the event families: the recorder's own health (rows
//! written and dropped, disk use, the ring buffer's fill, shipping).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tcpfr_schema::TABLES;

use super::text::{float, Text};
use super::{families, Metrics};
use crate::ring_fill::RingFill;
use crate::writer_stats::WriterStats;

/// How long a measurement of the output directory's size is reused.
const DISK_CACHE: Duration = Duration::from_secs(5);

/// Everything a scrape prints: the event counters and the recorder's health.
pub struct Exporter {
    pub metrics: Arc<Metrics>,
    pub writer: Arc<WriterStats>,
    pub ring: Option<RingFill>,
    pub out: PathBuf,
    /// `--ship`: the uploader's counters.
    pub ship: Option<Arc<crate::ship::ShipStats>>,
    disk: Mutex<Option<(Instant, u64)>>,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>, writer: Arc<WriterStats>, ring: Option<RingFill>, out: PathBuf) -> Self {
        Exporter { metrics, writer, ring, out, ship: None, disk: Mutex::new(None) }
    }

    /// The whole `/metrics` body.
    pub fn render(&self) -> String {
        use families::*;
        let mut t = Text::default();
        self.metrics.render_into(&mut t);
        let w = &self.writer;
        if let Some(r) = &self.ring {
            t.family(RINGBUF_FILL, "gauge", "Fraction of the kernel-to-recorder ring buffer holding events not read yet, at scrape time.");
            t.sample(RINGBUF_FILL, &[], float(r.ratio()));
        }
        t.family(ROWS_WRITTEN, "counter", "Rows written to the recording's Parquet files, by table.");
        for (i, name) in TABLES.iter().enumerate() {
            t.sample(ROWS_WRITTEN, &[("table", name)], w.rows_written[i].load(Ordering::Relaxed));
        }
        t.family(ROWS_DROPPED, "counter", "Rows that could not be written (disk full, write errors).");
        t.sample(ROWS_DROPPED, &[], w.rows_dropped.iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>());
        t.family(FILES_WRITTEN, "counter", "Parquet files completed (closed at a segment rotation).");
        t.sample(FILES_WRITTEN, &[], w.files_written.load(Ordering::Relaxed));
        t.family(DISK_BYTES, "gauge", "Bytes of files under the output directory (--out), hard links counted once.");
        t.sample(DISK_BYTES, &[], self.disk_bytes());
        t.family(LAST_WRITE, "gauge", "When rows were last written to the recording (Unix time, seconds); 0 before the first write.");
        t.sample(LAST_WRITE, &[], float(w.last_write_ns.load(Ordering::Relaxed) as f64 / 1e9));
        t.family(SEGMENTS_EVICTED, "counter", "Segments deleted by the flight-recorder ring (--max-disk, --max-age).");
        t.sample(SEGMENTS_EVICTED, &[], w.evicted_segments.load(Ordering::Relaxed));
        if let Some(s) = &self.ship {
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            t.family(SHIP_FILES, "counter", "Files in the object store of --ship (uploaded, or found there after a restart).");
            t.sample(SHIP_FILES, &[], n(&s.shipped_files));
            t.family(SHIP_BYTES, "counter", "Bytes of those files.");
            t.sample(SHIP_BYTES, &[], n(&s.shipped_bytes));
            t.family(SHIP_UNSHIPPED_FILES, "gauge", "Closed files waiting for upload (they count against --max-disk).");
            t.sample(SHIP_UNSHIPPED_FILES, &[], n(&s.unshipped_files));
            t.family(SHIP_UNSHIPPED_BYTES, "gauge", "Bytes of the files waiting for upload.");
            t.sample(SHIP_UNSHIPPED_BYTES, &[], n(&s.unshipped_bytes));
            t.family(SHIP_ERRORS, "counter", "Failed upload attempts (the log and recorder_stats say why).");
            t.sample(SHIP_ERRORS, &[], n(&s.errors));
            t.family(SHIP_LOST_FILES, "counter", "Files deleted by --max-disk/--max-age before they were uploaded.");
            t.sample(SHIP_LOST_FILES, &[], n(&s.lost_files));
            t.family(SHIP_LOST_BYTES, "counter", "Bytes of those files.");
            t.sample(SHIP_LOST_BYTES, &[], n(&s.lost_bytes));
            t.family(SHIP_LAST_SUCCESS, "gauge", "When an upload round last completed without error (Unix time, seconds); 0: not yet.");
            t.sample(SHIP_LAST_SUCCESS, &[], float(n(&s.last_success_ns) as f64 / 1e9));
        }
        t.out
    }

    fn disk_bytes(&self) -> u64 {
        let mut cache = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, bytes)) = *cache {
            if at.elapsed() < DISK_CACHE {
                return bytes;
            }
        }
        let bytes = dir_bytes(&self.out);
        *cache = Some((Instant::now(), bytes));
        bytes
    }
}

/// Sizes of the files below `dir` (not following symbolic links), each inode once:
/// snapshots are hard links to the recording's files.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = ahash::AHashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) {
                total += m.len();
            }
        }
    }
    total
}
