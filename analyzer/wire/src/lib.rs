//! The wire side of tcpfr: read tcpdump captures (pcap, pcapng) with constant memory,
//! decode their TCP segments, and label retransmissions per flow with the meaning
//! tshark 4.0 gives them (`tcp.analysis.*`), so that what we count on the wire can be
//! put next to what the kernel recorded.
//!
//! No Arrow or DataFusion here: the analyzer turns these types into tables, and the
//! fuzz target can build this crate alone.
//!
//! - [`capture`]: frames out of pcap/pcapng files, errors with byte offsets.
//! - [`decode`]: link layer → IP → TCP, skipping (and counting) what is not TCP.
//! - [`analysis`]: tshark's per-conversation sequence analysis, handshakes, resets.

pub mod analysis;
pub mod capture;
pub mod decode;
pub mod segment;

pub use segment::{Frame, Skip, TcpOptions, TcpSegment};
