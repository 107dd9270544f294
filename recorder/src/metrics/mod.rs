//! Live metrics (`--metrics-listen`): the recording's event tables as Prometheus
//! counters and an RTT histogram, labelled by service and peer, plus the recorder's own
//! health, served at `/metrics` in the text exposition format.
//!
//! The event families' names, help, labels and buckets are a contract shared with
//! `tcpfr export openmetrics` (which computes the same from a recording):
//! [`tcpfr_schema::metrics`]. `aggregate` adds them up, `health` adds the recorder's own
//! families, `text` writes the format, `http` serves it.
//!
//! Nothing here runs on the thread that drains the kernel's ring buffer. The writer
//! thread hands every flush's rows (the Arrow batches it is about to write) to
//! [`Metrics::observe`], which adds them up and publishes a copy of the counters; a
//! scrape prints the latest copy on a thread of its own (`http.rs`), so a slow or
//! frequent scraper never holds up the writer. Counters start at 0 when the recorder
//! starts.
//!
//! Labels: `service` is the services map's name (`tcpfr-services`, the same decision
//! as the analyzer's `service` column), where the map and the well-known ports name
//! no service the process name for the first `--max-services` of those, `other` for
//! the rest; `peer` is the remote address, for the first `--max-peers` distinct
//! addresses seen (a series never changes its label), `other` for the rest and for
//! events without an address. So every label set is bounded whatever local users do.

pub mod http;
pub mod text;

mod aggregate;
mod health;

pub use aggregate::Metrics;
pub use health::{dir_bytes, Exporter};

/// Families only the recorder has (its own health, shipping); the event families are
/// the contract with `tcpfr export openmetrics`, [`tcpfr_schema::metrics`].
pub mod families {
    pub const EVENTS: &str = "tcpfr_recorder_events_total";
    pub const EVENTS_LOST: &str = "tcpfr_recorder_events_lost_total";
    pub const RINGBUF_FILL: &str = "tcpfr_recorder_ringbuf_fill_ratio";
    pub const ROWS_WRITTEN: &str = "tcpfr_recorder_rows_written_total";
    pub const ROWS_DROPPED: &str = "tcpfr_recorder_rows_dropped_total";
    pub const FILES_WRITTEN: &str = "tcpfr_recorder_files_written_total";
    pub const DISK_BYTES: &str = "tcpfr_recorder_disk_bytes";
    pub const LAST_WRITE: &str = "tcpfr_recorder_last_write_timestamp_seconds";
    pub const SEGMENTS_EVICTED: &str = "tcpfr_recorder_segments_evicted_total";
    pub const SHIP_FILES: &str = "tcpfr_ship_files_total";
    pub const SHIP_BYTES: &str = "tcpfr_ship_bytes_total";
    pub const SHIP_UNSHIPPED_FILES: &str = "tcpfr_ship_unshipped_files";
    pub const SHIP_UNSHIPPED_BYTES: &str = "tcpfr_ship_unshipped_bytes";
    pub const SHIP_ERRORS: &str = "tcpfr_ship_errors_total";
    pub const SHIP_LOST_FILES: &str = "tcpfr_ship_lost_files_total";
    pub const SHIP_LOST_BYTES: &str = "tcpfr_ship_lost_bytes_total";
    pub const SHIP_LAST_SUCCESS: &str = "tcpfr_ship_last_success_timestamp_seconds";
}
