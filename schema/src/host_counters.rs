//! `host_counters`: the kernel's own TCP counters from `/proc/net/snmp` and
//! `/proc/net/netstat`, per network namespace, as deltas per interval. They are the
//! independent truth the event tables are checked against (RetransSegs vs
//! `sum(retransmits.segments)`), and the classic `ΔRetransSegs / ΔOutSegs` rate.

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// One row per interval (recorder option `--counters-interval`, default 1 s) and
        /// network namespace recorded. Counters are deltas over the interval, except
        /// `curr_estab` (a gauge). The first row of a recording covers the time from the
        /// recorder's start.
        pub struct HostCounters in "host_counters" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// End of the interval (UTC).
            time: UtcNanos => "ns",
            /// Length of the interval.
            interval_ns: i64 => "ns",
            /// Network namespace inode these counters belong to.
            netns: u32,
            /// Name of the namespace: `host` for the recorder's own, the `ip netns` name for named ones, else null.
            netns_name: Option<Str>,
            /// Tcp: ActiveOpens — connect() calls that sent a SYN.
            active_opens: i64,
            /// Tcp: PassiveOpens — connections accepted by listeners.
            passive_opens: i64,
            /// Tcp: AttemptFails — failed connection attempts (SYN_SENT/SYN_RECV → CLOSE, SYN_RECV → LISTEN).
            attempt_fails: i64,
            /// Tcp: EstabResets — resets of ESTABLISHED/CLOSE_WAIT connections.
            estab_resets: i64,
            /// Tcp: CurrEstab — connections in ESTABLISHED or CLOSE_WAIT at the end of the interval (gauge).
            curr_estab: i64,
            /// Tcp: InSegs — segments received.
            in_segs: i64 => "segments",
            /// Tcp: OutSegs — segments sent, excluding retransmissions.
            out_segs: i64 => "segments",
            /// Tcp: RetransSegs — segments retransmitted (SYN and SYN-ACK included).
            retrans_segs: i64 => "segments",
            /// Tcp: InErrs — segments received in error.
            in_errs: i64 => "segments",
            /// Tcp: OutRsts — resets sent.
            out_rsts: i64,
            /// TcpExt: TCPSynRetrans — SYN and SYN-ACK retransmissions.
            syn_retrans: i64 => "segments",
            /// TcpExt: TCPTimeouts — retransmission timeouts (RTO) fired.
            timeouts: i64,
            /// TcpExt: TCPLossProbes — tail loss probes sent.
            loss_probes: i64,
            /// TcpExt: TCPLostRetransmit — retransmissions that were lost again.
            lost_retransmit: i64,
            /// TcpExt: TCPFastRetrans — fast retransmissions.
            fast_retrans: i64,
            /// TcpExt: TCPSlowStartRetrans — retransmissions in slow start after an RTO.
            slow_start_retrans: i64,
            /// TcpExt: TCPRetransFail — retransmissions the stack failed to send.
            retrans_fail: i64,
            /// TcpExt: TCPSpuriousRTOs — RTOs found to be spurious (F-RTO).
            spurious_rtos: i64,
            /// TcpExt: TCPAbortOnTimeout — connections killed after too many retransmissions.
            abort_on_timeout: i64,
            /// TcpExt: TCPAbortOnData + TCPAbortOnClose + TCPAbortOnMemory + TCPAbortOnLinger — connections reset locally.
            aborts_other: i64,
            /// TcpExt: ListenOverflows — SYNs or final ACKs dropped because an accept queue was full.
            listen_overflows: i64,
            /// TcpExt: ListenDrops — SYNs dropped on listeners for any reason.
            listen_drops: i64,
        }
    }
}
