//! `flows`: one row per connection, written when it closes (or, still open, when the
//! recording ends). Lifetime and handshake outcome come from state changes; the
//! counters from a sock_ops program that sees the socket from its first SYN to CLOSE.

use crate::raw::{RawHeader, RawTuple};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawFlowCounters {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    pub segs_in: u32,
    pub segs_out: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub total_retrans: u32,
    pub srtt_us: u32,
    pub rtt_min_us: u32,
    /// State the socket is leaving (close) or is in (tracked).
    pub state: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
}
const _: () = assert!(core::mem::size_of::<RawFlowCounters>() == 112);

/// What limited a connection, read from its `tcp_sock` as it reaches CLOSE (what
/// `ss -ti` shows as busy/rwnd_limited/sndbuf_limited, delivery_rate, ecn, …).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawFlowLimits {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    /// `tcp_sock.chrono_stat[]` (jiffies): busy, receive-window and send-buffer limited.
    pub chrono_stat: [u32; 3],
    /// `tcp_sock.chrono_start` (jiffies) of the period still running, of type `chrono_type`.
    pub chrono_start: u32,
    /// `jiffies` now: the running period lasted `jiffies - chrono_start`.
    pub jiffies: u32,
    pub delivered_ce: u32,
    pub dsack_dups: u32,
    pub reord_seen: u32,
    /// The last delivery-rate sample: `rate_delivered` segments in `rate_interval_us`.
    pub rate_delivered: u32,
    pub rate_interval_us: u32,
    pub mss_cache: u32,
    /// 0 none running, 1 busy, 2 receive-window limited, 3 send-buffer limited.
    pub chrono_type: u8,
    pub _pad: [u8; 3],
    /// `icsk_ca_ops->name`, NUL-padded.
    pub congestion_control: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<RawFlowLimits>() == 128);

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    /// Values of [`Flow::counters`].
    pub mod counters {
        /// sock_ops saw the connection from its start to CLOSE: counters are exact.
        pub const COMPLETE: &str = "complete";
        /// The connection existed before the recorder started: no counters.
        pub const OPENED_BEFORE_RECORDING: &str = "opened_before_recording";
        /// Still open when the recording ended: no counters (they are taken at close).
        pub const OPEN_AT_END: &str = "open_at_end";
        /// sock_ops never saw this socket (not in the cgroup v2 hierarchy, or its events
        /// were lost — see `recorder_stats`).
        pub const NOT_TRACKED: &str = "not_tracked";
    }

    /// Values of [`Flow::handshake`].
    pub mod handshake {
        pub const COMPLETED: &str = "completed";
        /// Client gave up after SYN retransmits (ETIMEDOUT).
        pub const TIMEOUT: &str = "timeout";
        /// Client got an RST for its SYN (ECONNREFUSED).
        pub const REFUSED: &str = "refused";
        /// An ICMP error ended the attempt (EHOSTUNREACH, ENETUNREACH, …).
        pub const UNREACHABLE: &str = "unreachable";
        /// The application closed the socket while still connecting (its own timeout).
        pub const ABANDONED: &str = "abandoned";
        /// Server side: reset while in SYN_RECV.
        pub const RESET: &str = "reset";
        /// Any other error while connecting (see `error`).
        pub const FAILED: &str = "failed";
        /// Client: this host's own firewall dropped its SYNs (a SYN retransmit failed
        /// with EPERM), and the attempt then timed out, was given up or failed.
        pub const FILTERED: &str = "filtered";
    }

    crate::define_table! {
        /// One row per TCP connection (listeners excluded): written when the connection
        /// closes, or at the end of the recording for connections still open (then
        /// `close_time` is null). Connections that opened before the recording started
        /// have a null `open_time` and no sock_ops counters; `counters` says why
        /// counters are missing instead of guessing.
        pub struct Flow in "flows" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the row was written: `close_time`, or the end of the recording for connections still open.
            time: UtcNanos => "ns",
            /// Socket of the connection; joins with the other tables on (host, socket_id).
            socket_id: i64,
            /// Network namespace inode of the socket; null if unknown.
            netns: Option<u32>,
            /// `ipv4` or `ipv6` (IPv4-mapped addresses count as `ipv4`).
            family: Str,
            /// Local address, textual.
            laddr: Str,
            /// Local port.
            lport: u16,
            /// Remote address, textual.
            raddr: Str,
            /// Remote port.
            rport: u16,
            /// `client` (we called connect: active open) or `server` (accepted by one of our listeners: passive open); null when the connection is older than the recording.
            role: Option<Str>,
            /// When the connection started: the SYN (client) or the arrival of the handshake's final ACK (server); null if before the recording.
            open_time: Option<UtcNanos> => "ns",
            /// When it reached CLOSE; null if still open at the end of the recording.
            close_time: Option<UtcNanos> => "ns",
            /// close_time − open_time; null if either is unknown.
            duration_ns: Option<i64> => "ns",
            /// Outcome of the handshake: `completed`, `timeout` (gave up after SYN retransmits), `refused` (RST in reply to the SYN), `unreachable` (ICMP error), `abandoned` (application closed it while connecting), `filtered` (client: this host's firewall dropped its SYN retransmits, seen as EPERM; format 1.2), `reset` (server: reset in SYN_RECV), `failed` (another error, see `error`); null if not observed.
            handshake: Option<Str>,
            /// How long the client waited for the handshake: from connect() to ESTABLISHED, or to the failure; null on the server side (the kernel hands over a connection only once its handshake is done) and for connections older than the recording.
            handshake_ns: Option<i64> => "ns",
            /// SYN (client) or SYN-ACK (server) retransmissions seen for this connection.
            syn_retransmits: i32 => "segments",
            /// Last state before CLOSE, or the current state if still open.
            last_state: Str,
            /// Error the kernel set when closing (`ETIMEDOUT`, `ECONNREFUSED`, `ECONNRESET`, …); null for an orderly close.
            error: Option<Str>,
            /// Whether the counter columns are exact: `complete`, or why they are null: `opened_before_recording`, `open_at_end`, `not_tracked`.
            counters: Str,
            /// Segments sent, retransmissions included (tcp_sock.segs_out).
            segs_out: Option<i64> => "segments",
            /// Segments received (tcp_sock.segs_in).
            segs_in: Option<i64> => "segments",
            /// Segments sent that carried data (tcp_sock.data_segs_out).
            data_segs_out: Option<i64> => "segments",
            /// Segments received that carried data.
            data_segs_in: Option<i64> => "segments",
            /// Retransmitted segments over the connection's life (tcp_sock.total_retrans).
            retrans_segs: Option<i64> => "segments",
            /// Retransmitted segments recorded in `retransmits` for this socket (`counted` rows), available even without counters.
            retrans_segs_seen: i64 => "segments",
            /// Bytes acknowledged by the peer (what we sent).
            bytes_acked: Option<i64> => "bytes",
            /// Bytes received from the peer.
            bytes_received: Option<i64> => "bytes",
            /// Smoothed RTT at close.
            srtt_us: Option<u32> => "us",
            /// Minimum RTT seen over the connection's life.
            min_rtt_us: Option<u32> => "us",
            /// Time the connection had data in flight or waiting to be sent, over its life (`ss -ti` busy; includes the two limited times below), from the kernel's chrono counters at close (jiffies: steps of 1/HZ s, 4 ms at HZ=250). Null when the close was not seen, the kernel lacks the counters, or HZ is unknown (recorder_stats says), and in files of format 1.0/1.1.
            busy_ns: Option<i64> => "ns",
            /// Part of `busy_ns` the sender could not send because the receiver's advertised window was full (`ss -ti` rwnd_limited): the peer reads too slowly or its receive buffer is small.
            rwnd_limited_ns: Option<i64> => "ns",
            /// Part of `busy_ns` the sender could not send because its own send buffer was full (`ss -ti` sndbuf_limited): SO_SNDBUF or tcp_wmem too small for the path's bandwidth × delay.
            sndbuf_limited_ns: Option<i64> => "ns",
            /// The kernel's last delivery-rate sample at close, as `ss -ti` delivery_rate: segments delivered × MSS over the sample's interval, in bits per second; null without a sample.
            delivery_rate_bps: Option<i64> => "bit/s",
            /// Congestion control algorithm at close (`cubic`, `bbr`, `reno`, …).
            congestion_control: Option<Str>,
            /// Sending MSS at close (`tcp_sock.mss_cache`).
            mss: Option<u32> => "bytes",
            /// Segments the peer reported as received twice by DSACK (`tcp_sock.dsack_dups`): retransmissions that were not needed (spurious). Summed over a namespace it equals TcpExt TCPDSACKRecvSegs.
            dsack_dups: Option<i64> => "segments",
            /// Times the kernel detected reordering on this connection (`tcp_sock.reord_seen`); reordering makes fast retransmits that were not needed.
            reord_seen: Option<i64> => "events",
            /// Segments delivered with an ECN Congestion Experienced mark (`tcp_sock.delivered_ce`): a router signalled congestion without dropping; 0 without ECN.
            delivered_ce: Option<i64> => "segments",
            /// Process that owns the socket; null when unknown.
            pid: Option<i32>,
            /// Command name of that process.
            comm: Option<Str>,
            /// cgroup v2 id of that process.
            cgroup_id: Option<i64>,
            /// cgroup v2 path of that process.
            cgroup: Option<Str>,
            /// Container id when the cgroup path names one.
            container_id: Option<Str>,
        }
    }
}
