//! `retransmits`: one row per retransmission the kernel attempted — data, SYN and
//! SYN-ACK — from `tcp:tcp_retransmit_skb` and `tcp:tcp_retransmit_synack`.
//!
//! One row can stand for many segments (TSO/GSO); `segments` says how many, so that
//! `sum(segments) WHERE counted` reconciles with the kernel's `RetransSegs` counter.

use crate::raw::{RawHeader, RawTuple};

/// Values of [`RawRetransmit::kind`].
pub mod retransmit_kind {
    /// A data (or FIN) segment of an established or closing connection.
    pub const DATA: u8 = 0;
    /// A SYN of an active open (socket in SYN_SENT).
    pub const SYN: u8 = 1;
    /// A SYN-ACK from one of our listeners (`tcp_retransmit_synack`).
    pub const SYNACK: u8 = 2;

    /// The name used in recordings.
    pub const fn name(kind: u8) -> &'static str {
        match kind {
            SYN => "syn",
            SYNACK => "synack",
            _ => "data",
        }
    }
}

/// Kernel event for both retransmit tracepoints.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawRetransmit {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    /// TCP state (kernel numbering, see [`crate::raw::tcp_state`]).
    pub state: u8,
    /// One of [`retransmit_kind`].
    pub kind: u8,
    /// 1 when the kernel reported `err` (kernels since 6.13), 0 when the field is absent.
    pub has_err: u8,
    pub _pad: u8,
    /// Return value of the attempt: 0 = sent, negative errno = not sent (e.g. -16
    /// EBUSY when the device queue was busy; such attempts are not in RetransSegs).
    pub err: i32,
    /// Segments in the retransmitted skb (`tcp_skb_cb.tcp_gso_segs`).
    pub segs: u32,
    /// The socket's `tcp_sock.total_retrans` after this attempt: it grows by `segs`
    /// exactly when the kernel counted the attempt (in RetransSegs too), which some
    /// failed attempts are and some are not.
    pub total_retrans: u32,
}
const _: () = assert!(core::mem::size_of::<RawRetransmit>() == 80);

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// One row per retransmission attempt of a data segment, a SYN (active open in
        /// SYN_SENT) or a SYN-ACK (our listener answering a SYN). Failed attempts (the
        /// kernel could not send, `err` ≠ 0) are recorded too; `counted` says whether the
        /// kernel counted the attempt. One row may stand for several segments (TSO/GSO):
        /// count retransmitted segments as `sum(segments) WHERE counted`, which equals
        /// the kernel's RetransSegs for the same sockets.
        pub struct Retransmit in "retransmits" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the kernel retransmitted (UTC, from the kernel's monotonic clock plus the recording's clock offset).
            time: UtcNanos => "ns",
            /// Socket this happened on; joins with the other tables on (host, socket_id). Null for SYN-ACKs, which belong to a request socket that has no id yet.
            socket_id: Option<i64>,
            /// Network namespace inode of the socket (as in `/proc/PID/ns/net`); null if it could not be read.
            netns: Option<u32>,
            /// `ipv4` or `ipv6`. IPv4-mapped IPv6 addresses of dual-stack sockets are written as IPv4 and count as `ipv4`.
            family: Str,
            /// Local address, textual (`10.0.0.1`, `fd00::1`).
            laddr: Str,
            /// Local port.
            lport: u16,
            /// Remote address, textual.
            raddr: Str,
            /// Remote port.
            rport: u16,
            /// `data`, `syn` (retransmitted SYN of a connection we opened) or `synack` (retransmitted SYN-ACK of one of our listeners).
            kind: Str,
            /// TCP state of the socket at the time (`ESTABLISHED`, `SYN_SENT`, …; `SYN_RECV` for SYN-ACKs).
            state: Str,
            /// Segments carried by this retransmission (TSO/GSO can put many in one). Sum over `err = 0` rows equals the kernel's RetransSegs for the same sockets.
            segments: i32 => "segments",
            /// Result of the attempt: 0 = handed to the device; otherwise the kernel could not send it and will try again (-16 EBUSY: the original still queued; -11 EAGAIN: no window; -1 EPERM: dropped by a local firewall; …); null when the kernel does not report it (before 6.13).
            err: Option<i32>,
            /// Whether the kernel counted these segments as retransmitted (Tcp RetransSegs and the connection's total_retrans): true for sent ones and for ones that failed while transmitting (e.g. local firewall), false for attempts given up before (EBUSY, EAGAIN, ENOMEM). `sum(segments) WHERE counted` reconciles with RetransSegs.
            counted: bool,
            /// Process (thread group id) that owns the socket: the one that called connect(), or listen() for accepted connections. Null when unknown (socket older than the recording and not resolvable).
            pid: Option<i32>,
            /// Command name of that process (15 characters at most, as in `/proc/PID/comm`).
            comm: Option<Str>,
            /// cgroup v2 id of that process.
            cgroup_id: Option<i64>,
            /// cgroup v2 path of that process (`/system.slice/nginx.service`).
            cgroup: Option<Str>,
            /// Container id when the cgroup path names one (docker, containerd, cri-o, podman).
            container_id: Option<Str>,
        }
    }
}
