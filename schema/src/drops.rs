//! `drops`: TCP packets this host's kernel dropped (`skb:kfree_skb`), with the kernel's
//! reason. The program counts them in a map per flow, direction and reason, so a drop
//! storm costs map updates rather than one ring record per packet; the recorder takes
//! the counts out of the map every interval and writes one row per entry.

/// Key of the kernel's drop counts (`DROPS` map): one flow, direction and reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawDropKey {
    /// Network namespace inode of the device or socket, 0 if unknown.
    pub netns: u32,
    /// `enum skb_drop_reason` (names from BTF).
    pub reason: u32,
    /// Addresses and ports from our side: the packet's source is local for
    /// [`direction::OUT`], its destination for [`direction::IN`].
    pub tuple: crate::raw::RawTuple,
    /// [`direction`].
    pub direction: u8,
    pub _pad: [u8; 7],
    /// The local socket: the sender's for [`direction::OUT`] (`skb->sk`), the
    /// receiver's for [`direction::IN`] when the kernel had found it (`rx_sk`); 0 if
    /// none. A key, as in the event records: the recorder turns it into a socket id
    /// and an owner.
    pub sk: u64,
}
const _: () = assert!(core::mem::size_of::<RawDropKey>() == 64);

/// Value of the kernel's drop counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawDropValue {
    /// Packets (skbs: a GSO packet is one, as netfilter counts it).
    pub packets: u64,
    /// `bpf_ktime_get_ns()` of the first and the last drop.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Lowest and highest TCP sequence number of the packets dropped, in TCP's modular
    /// order (a range that wraps has `seq_first > seq_last`).
    pub seq_first: u32,
    pub seq_last: u32,
}
const _: () = assert!(core::mem::size_of::<RawDropValue>() == 32);

/// Values of [`RawDropKey::direction`].
pub mod direction {
    /// Received (the packet came in on a device).
    pub const IN: u8 = 1;
    /// Sent by this host (no input device).
    pub const OUT: u8 = 2;

    pub fn name(d: u8) -> &'static str {
        match d {
            IN => "in",
            OUT => "out",
            _ => "unknown",
        }
    }
}

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// TCP packets the local kernel dropped, counted per flow, direction and reason
        /// over each interval (recorder option `--counters-interval`, default 1 s): one row per
        /// combination that dropped something. The reason is the kernel's own
        /// (`enum skb_drop_reason`, e.g. `NETFILTER_DROP` for a firewall rule,
        /// `TCP_ZEROWINDOW`, `SOCKET_RCVBUFF`, `QDISC_DROP`). SYNs dropped because a
        /// listener's accept queue was full are not here: the kernel does not report
        /// them as drops (see `listeners`).
        pub struct Drop in "drops" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// The last drop of the row (UTC).
            time: UtcNanos => "ns",
            /// The first drop of the row (UTC).
            first_time: UtcNanos => "ns",
            /// Network namespace inode; null if unknown.
            netns: Option<u32>,
            /// `ipv4` or `ipv6`.
            family: Str,
            /// Our address: the packet's source for `out`, its destination for `in`.
            laddr: Str,
            /// Our port.
            lport: u16,
            /// The other end's address.
            raddr: Str,
            /// The other end's port.
            rport: u16,
            /// `in` (received) or `out` (sent by this host).
            direction: Str,
            /// The kernel's reason, without the `SKB_DROP_REASON_` prefix (`NOT_SPECIFIED` when it gave none).
            reason: Str,
            /// Packets dropped (a TSO/GSO packet counts once, as netfilter's counters count it).
            packets: i64 => "packets",
            /// Our socket of the connection (joins with the other tables on (host, socket_id)): the sender's for `out`, the receiver's for `in` when the kernel had found it before dropping (not for firewall drops on arrival, which come first); null otherwise, and when the socket had closed and its kernel address gone to a new one before the interval ended.
            socket_id: Option<i64>,
            /// Process that owns that socket; null when unknown.
            pid: Option<i32>,
            /// Command name of that process.
            comm: Option<Str>,
            /// Lowest TCP sequence number of the packets dropped, in TCP's modular order: with `seq_last`, a range that holds every one of them (to match `retransmits.seq` of the same connection; `seq_first > seq_last` when the range wraps past 2^32).
            seq_first: u32,
            /// Highest TCP sequence number of the packets dropped, in TCP's modular order.
            seq_last: u32,
        }
    }
}
