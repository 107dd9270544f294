//! What the writer thread did (rows written and dropped, files, evictions, the last
//! error), shared with the thread that makes `recorder_stats` rows and with the health
//! metrics; in a module of its own so that neither depends on the writer.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Mutex;

use tcpfr_schema::TableId;

/// What the writer did, read by the pipeline for `recorder_stats`.
#[derive(Default)]
pub struct WriterStats {
    pub rows_written: [AtomicU64; TableId::COUNT],
    pub rows_dropped: [AtomicU64; TableId::COUNT],
    pub last_error: Mutex<Option<String>>,
    /// Segments (and their bytes) deleted by the flight-recorder ring.
    pub evicted_segments: AtomicU64,
    pub evicted_bytes: AtomicU64,
    /// Parquet files completed (for the live metrics).
    pub files_written: AtomicU64,
    /// When rows were last written (UTC ns; 0 before the first write).
    pub last_write_ns: AtomicI64,
}
