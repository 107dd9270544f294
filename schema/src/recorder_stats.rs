//! `recorder_stats`: what the recorder saw, lost and wrote, per interval and stream —
//! so that a gap in the data is always visible in the data itself.

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    /// Values of [`RecorderStats::stream`] besides the table names.
    pub mod stream {
        /// Rows about the recorder as a whole: start, stop, gaps.
        pub const RECORDER: &str = "recorder";
        /// Rows about shipping to an object store (`--ship`): the `shipped_*`,
        /// `unshipped_*` and `ship_*` columns, one row per interval.
        pub const SHIP: &str = "ship";
    }

    crate::define_table! {
        /// One row per interval and stream (a table name, or `recorder` for the process
        /// as a whole), plus one row per gap: a period in which events may be missing
        /// (recorder not running, crashed, disk full, output unwritable). A recording
        /// with no lost events and no gap rows is complete.
        pub struct RecorderStats in "recorder_stats" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// End of the interval (UTC).
            time: UtcNanos => "ns",
            /// Length of the interval.
            interval_ns: i64 => "ns",
            /// Table these numbers are about (`retransmits`, `rtt_samples`, …) or `recorder`.
            stream: Str,
            /// Kernel events received for this stream.
            events_seen: i64,
            /// Kernel events dropped because the ring buffer was full (counted in the kernel).
            events_lost: i64,
            /// Events left out on purpose by the recorder's filters (ports, CIDRs, cgroups) or the RTT sample interval.
            events_filtered: i64,
            /// Rows written to Parquet.
            rows_written: i64,
            /// Rows that could not be written (disk full, I/O error).
            rows_dropped: i64,
            /// Start of a period in which data may be missing; null on ordinary rows.
            gap_start: Option<UtcNanos> => "ns",
            /// End of that period.
            gap_end: Option<UtcNanos> => "ns",
            /// What happened, in words (`recorder started`, `crash recovery: …`, `disk full`), or null.
            note: Option<Str>,
            /// Shipping (`--ship`; rows of stream `ship`, null elsewhere and in format 1.0): closed files of the recordings in the output directory that are in the object store, uploaded or found there, since the recorder started.
            shipped_files: Option<i64>,
            /// Their bytes.
            shipped_bytes: Option<i64> => "bytes",
            /// Shipping: closed files waiting for upload at `time` (they count against `--max-disk` like any file).
            unshipped_files: Option<i64>,
            /// Their bytes.
            unshipped_bytes: Option<i64> => "bytes",
            /// Shipping: failed upload attempts since the recorder started (the last error's text is in `note`).
            ship_errors: Option<i64>,
            /// Shipping: files deleted by the flight-recorder ring (`--max-disk`, `--max-age`) before they were uploaded, since the recorder started.
            ship_lost_files: Option<i64>,
            /// Their bytes.
            ship_lost_bytes: Option<i64> => "bytes",
        }
    }
}
