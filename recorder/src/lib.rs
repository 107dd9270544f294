//! tcpfr-recorder as a library: the pieces of the recording pipeline, used by the
//! `tcpfr-recorder` binary and by the benchmarks.
//!
//! The kernel side (`recorder-ebpf/`) puts events in a ring buffer; `events` decodes
//! them, `socket_table` and `procinfo` attach socket ids and owners, one module per
//! table (`retransmits`, `state_changes`, `resets`, `rtt_samples`, `flows`, `sockets`,
//! `host_counters`, `recorder_stats`) turns them into rows through `enrich`, and `writer` hands them to
//! the writer of `tcpfr-schema` on a thread of its own. `pipeline` ties it together.
//! Around the writer: `ring` (the flight-recorder ring), `snapshot`, `metrics` (live
//! `/metrics`) and `ship` (`--ship URL`: uploads closed files on a thread of its own).

pub mod btf;
pub mod clock;
pub mod control;
pub mod drops;
pub mod enrich;
pub mod events;
pub mod filter;
pub mod flows;
pub mod host_counters;
pub mod kernel_hz;
pub mod listeners;
pub mod loader;
pub mod metrics;
pub mod net;
pub mod outdir;
pub mod pipeline;
pub mod options;
pub mod privileges;
pub mod procinfo;
pub mod programs;
pub mod recorder_stats;
pub mod resets;
pub mod retransmits;
pub mod ring;
pub mod ring_fill;
pub mod rules;
pub mod ship;
pub mod rtt_samples;
pub mod snapshot;
pub mod socket_table;
pub mod sockets;
pub mod synth;
pub mod state_changes;
pub mod tracefs;
pub mod writer;
pub mod writer_stats;


pub use options::Options;

/// An error and its causes on one line, each said once (see
/// [`tcpfr_schema::error::chain_text`]); for logs and the control socket's replies.
pub fn error_text(e: &anyhow::Error) -> String {
    tcpfr_schema::error::chain_text(e.chain())
}
