//! `rtt_samples`: congestion-control snapshots from a walk over the TCP sockets every
//! sample interval (a BPF iterator; sockets without progress since the last walk are
//! skipped) or, with `--rtt-per-ack`, from the BTF tracepoint `tcp_probe`, which fires
//! on every incoming ACK and of which the kernel side keeps at most one per socket per
//! interval.

use crate::raw::{RawHeader, RawTuple};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawRttSample {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    /// Smoothed RTT in µs.
    pub srtt_us: u32,
    /// RTT variance in µs (`tcp_sock.rttvar_us`), `u32::MAX` when not readable.
    pub rttvar_us: u32,
    pub snd_cwnd: u32,
    pub ssthresh: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    /// `snd_nxt - snd_una`: bytes sent and not yet acknowledged.
    pub bytes_in_flight: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<RawRttSample>() == 96);

/// The kernel's "no threshold yet" value of `snd_ssthresh`.
pub const TCP_INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// Periodic samples of a connection's RTT and congestion state. By default the
        /// recorder walks the host's TCP sockets every sample interval (recorder option
        /// `--rtt-interval`, default 1 s, in the manifest) and writes one row per
        /// connection that made progress since the previous walk (bytes acknowledged or
        /// received, a retransmission, a state change): a connection idle since the last
        /// walk gets no row, and the first walk that sees a connection always writes
        /// one. Every connection also gets a row when it leaves ESTABLISHED (even if
        /// nothing moved since the last walk), so one shorter than the interval has one
        /// too. With `--rtt-per-ack` (in the manifest as `rtt_per_ack`) rows are taken
        /// when an ACK arrives instead, at most one per socket per interval (0: every
        /// ACK); both modes read the same fields of the socket. Addresses and owner are in `sockets` (join on host, socket_id):
        /// repeating them on every sample would double the size of the busiest table.
        pub struct RttSample in "rtt_samples" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the walk read the socket (or the connection left ESTABLISHED), or with `--rtt-per-ack` when the ACK was processed (UTC).
            time: UtcNanos => "ns",
            /// Socket sampled; joins with `sockets` and the other tables on (host, socket_id).
            socket_id: i64,
            /// Smoothed RTT (the kernel's srtt).
            srtt_us: u32 => "us",
            /// RTT mean deviation (the kernel's rttvar); null if the kernel's layout could not be read.
            rttvar_us: Option<u32> => "us",
            /// Congestion window.
            cwnd: u32 => "segments",
            /// Slow-start threshold (the kernel's snd_ssthresh); null while the kernel has none yet (initial slow start).
            ssthresh: Option<u32> => "segments",
            /// Send window the peer advertised.
            snd_wnd: u32 => "bytes",
            /// Receive window we advertise.
            rcv_wnd: u32 => "bytes",
            /// Bytes sent and not yet acknowledged (snd_nxt − snd_una).
            bytes_in_flight: u32 => "bytes",
        }
    }
}
