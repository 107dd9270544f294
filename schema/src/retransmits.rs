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
    /// The socket's congestion state (`icsk_ca_state`, one of [`ca_state`]) as it
    /// retransmitted, [`UNKNOWN`] when not read (no offset, SYN-ACKs).
    pub ca_state: u8,
    /// Return value of the attempt: 0 = sent, negative errno = not sent (e.g. -16
    /// EBUSY when the device queue was busy; such attempts are not in RetransSegs).
    pub err: i32,
    /// Segments in the retransmitted skb (`tcp_skb_cb.tcp_gso_segs`).
    pub segs: u32,
    /// The socket's `tcp_sock.total_retrans` after this attempt: it grows by `segs`
    /// exactly when the kernel counted the attempt (in RetransSegs too), which some
    /// failed attempts are and some are not.
    pub total_retrans: u32,
    /// The timer armed or firing (`icsk_pending`, one of [`timer`]), [`UNKNOWN`] when not read.
    pub pending: u8,
    /// `icsk_backoff`: how often the retransmission timer has doubled since the last
    /// valid RTT measurement; [`UNKNOWN`] when not read.
    pub backoff: u8,
    /// 1 when the armed timer's expiry has passed and it is not waiting for the
    /// socket's owner: the retransmit comes from that timer's run. 0 otherwise,
    /// [`UNKNOWN`] when not read.
    pub timer_firing: u8,
    /// 1 when `seq` was read (a data or SYN retransmit on a kernel whose BTF has it).
    pub has_seq: u8,
    /// `tcp_skb_cb.seq`: the first sequence number of the retransmitted skb.
    pub seq: u32,
}
const _: () = assert!(core::mem::size_of::<RawRetransmit>() == 88);

/// A byte field of [`RawRetransmit`] the program could not read.
pub const UNKNOWN: u8 = 0xff;

/// Values of `icsk_ca_state` (`enum tcp_ca_state`).
pub mod ca_state {
    pub const OPEN: u8 = 0;
    pub const DISORDER: u8 = 1;
    pub const CWR: u8 = 2;
    pub const RECOVERY: u8 = 3;
    pub const LOSS: u8 = 4;
}

/// Values of `icsk_pending` (`ICSK_TIME_*`) that tell a retransmit's cause.
pub mod timer {
    /// No timer pending: cleared by the retransmission timer just before it retransmits.
    pub const NONE: u8 = 0;
    /// The tail loss probe timer: a retransmit while it fires is the probe.
    pub const LOSS_PROBE: u8 = 5;
}

/// Values of the `retransmits.cause` column.
pub mod cause {
    use super::{ca_state, timer, RawRetransmit, UNKNOWN};

    /// Why a data segment was retransmitted, from the socket's congestion state and
    /// timer at that moment, as the kernel files it in its counters; `None` for
    /// SYN/SYN-ACK retransmits and when the kernel's fields could not be read.
    /// `Loss` is entered by the retransmission timer (RTO) and, rarely, when the path
    /// MTU shrinks: TCPSlowStartRetrans. A retransmit while the tail loss probe timer
    /// fires (armed and due) is that probe (a probe may also send new data, which is
    /// not a retransmit). Every other one comes from ACK processing (duplicate ACKs,
    /// SACK, RACK), in Recovery or, after an undo in the same ACK, in Open:
    /// TCPFastRetrans, which the kernel counts for any state but Loss.
    pub fn of(ev: &RawRetransmit) -> Option<&'static str> {
        if ev.kind != super::retransmit_kind::DATA || ev.ca_state == UNKNOWN {
            return None;
        }
        let probe_firing = ev.pending == timer::LOSS_PROBE && ev.timer_firing == 1;
        Some(match ev.ca_state {
            ca_state::LOSS => "timeout",
            // The kernel schedules probes in Open and CWR only.
            ca_state::OPEN | ca_state::CWR if probe_firing => "probe",
            ca_state::OPEN | ca_state::DISORDER | ca_state::CWR | ca_state::RECOVERY => "fast",
            _ => "other",
        })
    }

    /// The retransmission timer's backoff exponent for a retry the timer itself made, of
    /// data or of a SYN (socket in Loss, no timer pending: the timer clears it before it
    /// fires); `None` for every other retransmit, whose backoff says nothing about a
    /// stall, and for SYN-ACKs (the listener's timer state is not the request's).
    pub fn rto_backoff(ev: &RawRetransmit) -> Option<u8> {
        let by_timer = ev.ca_state == ca_state::LOSS && ev.pending == timer::NONE;
        (ev.kind != super::retransmit_kind::SYNACK && by_timer && ev.backoff != UNKNOWN).then_some(ev.backoff)
    }
}

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
            /// TCP sequence number of the first byte retransmitted (to match with the `drops` of the same connection: `seq` between their `seq_first` and `seq_last`); null for `synack` rows and in files of format 1.0/1.1.
            seq: Option<u32>,
            /// Result of the attempt: 0 = handed to the device; otherwise the kernel could not send it and will try again (-16 EBUSY: the original still queued; -11 EAGAIN: no window; -1 EPERM: dropped by a local firewall; …); null when the kernel does not report it (before 6.13).
            err: Option<i32>,
            /// Whether the kernel counted these segments as retransmitted (Tcp RetransSegs and the connection's total_retrans): true for sent ones and for ones that failed while transmitting (e.g. local firewall), false for attempts given up before (EBUSY, EAGAIN, ENOMEM). `sum(segments) WHERE counted` reconciles with RetransSegs.
            counted: bool,
            /// Why a data segment was retransmitted: `timeout` (the socket was in Loss: after a retransmission timeout, RTO), `fast` (fast retransmit: ACKs told of the loss — duplicate ACKs, SACK, RACK), `probe` (tail loss probe: the last segment sent again because no ACK came within about two RTTs), `other` (a congestion state tcpfr does not know). Null for `syn`/`synack` rows and in files of format 1.0/1.1. `sum(segments) WHERE cause = 'fast' AND err = 0` equals TcpExt TCPFastRetrans; `timeout` segments of rows without `rto_backoff` equal TCPSlowStartRetrans.
            cause: Option<Str>,
            /// On a retry the retransmission timer made itself (of data: `cause` = `timeout`; or of a SYN): how often the timer had already doubled in this stall, so 0 for the first RTO, 1 for the second in a row, …; the timer that fired had waited RTO × 2^`rto_backoff`. Null on every other row, on `synack` rows, and in format 1.0/1.1. `count(*) WHERE rto_backoff IS NOT NULL` is the TcpExt TCPTimeouts of connections we opened or accepted (the kernel also counts there the last firing that gives a connection up, and listeners' SYN-ACK timeouts).
            rto_backoff: Option<i32>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: u8, ca: u8, pending: u8, backoff: u8) -> RawRetransmit {
        RawRetransmit { kind, ca_state: ca, pending, backoff, timer_firing: 1, ..Default::default() }
    }

    #[test]
    fn cause_follows_the_congestion_state_and_the_timer() {
        use retransmit_kind::{DATA, SYN, SYNACK};
        let cases = [
            (ev(DATA, ca_state::LOSS, timer::NONE, 2), Some("timeout"), Some(2)),
            // After the timer: the rest of the window, sent again on ACKs while in Loss.
            (ev(DATA, ca_state::LOSS, 1, 0), Some("timeout"), None),
            (ev(DATA, ca_state::RECOVERY, 1, 0), Some("fast"), None),
            (ev(DATA, ca_state::RECOVERY, timer::LOSS_PROBE, 0), Some("fast"), None),
            (ev(DATA, ca_state::OPEN, timer::LOSS_PROBE, 0), Some("probe"), None),
            (ev(DATA, ca_state::CWR, timer::LOSS_PROBE, 0), Some("probe"), None),
            // An ACK undid Recovery and armed the probe timer, then retransmitted.
            (RawRetransmit { timer_firing: 0, ..ev(DATA, ca_state::OPEN, timer::LOSS_PROBE, 0) }, Some("fast"), None),
            (ev(DATA, ca_state::OPEN, 1, 0), Some("fast"), None),
            (ev(DATA, ca_state::DISORDER, 1, 0), Some("fast"), None),
            (ev(DATA, 7, 1, 0), Some("other"), None),
            (ev(DATA, UNKNOWN, UNKNOWN, UNKNOWN), None, None),
            (ev(DATA, ca_state::LOSS, timer::NONE, UNKNOWN), Some("timeout"), None),
            (ev(SYN, ca_state::LOSS, timer::NONE, 3), None, Some(3)),
            (ev(SYNACK, UNKNOWN, UNKNOWN, UNKNOWN), None, None),
        ];
        for (e, c, b) in cases {
            assert_eq!((cause::of(&e), cause::rto_backoff(&e)), (c, b), "{e:?}");
        }
    }
}
