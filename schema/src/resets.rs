//! `resets`: RSTs the stack sent (`tcp:tcp_send_reset`) and received
//! (`tcp:tcp_receive_reset`).
//!
//! Resets made by netfilter (`-j REJECT --reject-with tcp-reset`) bypass the TCP stack:
//! the peer receiving them shows up here as `received`, the sender side does not.

use crate::raw::{RawHeader, RawTuple};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawReset {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    /// TCP state of the socket, 0 when the reset was sent without a socket.
    pub state: u8,
    pub _pad: [u8; 3],
    /// `enum sk_rst_reason` for sent resets (names read from tracefs), `u32::MAX` if absent.
    pub reason: u32,
}
const _: () = assert!(core::mem::size_of::<RawReset>() == 72);

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// One row per TCP reset sent or received by this host's TCP stack.
        pub struct Reset in "resets" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the reset was sent or received (UTC).
            time: UtcNanos => "ns",
            /// Socket it concerns; null for resets sent without a socket (e.g. a SYN to a closed port: "connection refused").
            socket_id: Option<i64>,
            /// Network namespace inode of the socket; null if unknown.
            netns: Option<u32>,
            /// `ipv4` or `ipv6` (IPv4-mapped addresses count as `ipv4`).
            family: Str,
            /// Local address, textual.
            laddr: Str,
            /// Local port.
            lport: u16,
            /// Remote address (who we reset, or who reset us).
            raddr: Str,
            /// Remote port.
            rport: u16,
            /// `sent` (we reset the peer) or `received` (the peer reset us).
            direction: Str,
            /// TCP state of our socket at the time; null when sent without a socket.
            state: Option<Str>,
            /// Kernel's reason for a sent reset (`NO_SOCKET`, `TCP_ABORT_ON_CLOSE`, …; kernels since 6.10); null for received resets.
            reason: Option<Str>,
            /// Process that owns the socket; null when unknown or no socket.
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
