//! `rtt_samples`: congestion-control snapshots from `tcp:tcp_probe`, which fires on
//! every incoming ACK; the kernel side keeps at most one per socket per sample interval.

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
        /// Periodic samples of a connection's RTT and congestion state, taken when an ACK
        /// arrives, at most one per socket per sample interval (recorder option
        /// `--rtt-interval`, in the manifest). Addresses and owner are in `sockets`
        /// (join on host, socket_id): repeating them on every sample would double the
        /// size of the busiest table.
        pub struct RttSample in "rtt_samples" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the ACK was processed (UTC).
            time: UtcNanos => "ns",
            /// Socket sampled; joins with `sockets` and the other tables on (host, socket_id).
            socket_id: i64,
            /// Smoothed RTT (the kernel's srtt).
            srtt_us: u32 => "us",
            /// RTT mean deviation (the kernel's rttvar); null if the kernel's layout could not be read.
            rttvar_us: Option<u32> => "us",
            /// Congestion window.
            cwnd: u32 => "segments",
            /// Slow-start threshold; null while the kernel has none yet (initial slow start).
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
