//! `sockets`: one row per socket, written as soon as its addresses are known — the
//! dimension the high-volume `rtt_samples` refer to by `socket_id` instead of
//! repeating addresses and owner on every sample.

#[cfg(feature = "std")]
pub use table::*;

use crate::raw::RawHeader;

/// `kind::SOCKET_OWNER`: one TCP socket and the process holding it, from the owner
/// walk over every task's open files (`iter/task_file`) at start. `hdr.sk` is the
/// socket, `hdr.netns` its namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSocketOwner {
    pub hdr: RawHeader,
    /// Thread group id (what userspace calls the pid) of a process with the socket open.
    pub tgid: u32,
    /// Local port (host order) and TCP state: listeners are looked up by port.
    pub lport: u16,
    pub state: u8,
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<RawSocketOwner>() == 32);

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    /// Values of [`Socket::origin`].
    pub mod origin {
        /// We saw connect() (an active open).
        pub const CONNECT: &str = "connect";
        /// Accepted by one of our listeners (a passive open).
        pub const ACCEPT: &str = "accept";
        /// A listening socket.
        pub const LISTEN: &str = "listen";
        /// Already open when first seen (older than the recording, or its opening was lost).
        pub const EXISTING: &str = "existing";
    }

    crate::define_table! {
        /// One row per socket the recording mentions, written once, within a second of
        /// its addresses becoming known (for connect(), once the local port is chosen).
        /// Join other tables to it on (host, socket_id) for addresses and owner where
        /// they do not carry them (`rtt_samples`); the analyzer's `rtt_samples` view
        /// does that join.
        pub struct Socket in "sockets" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the socket was first seen (UTC).
            time: UtcNanos => "ns",
            /// The socket's id in every table.
            socket_id: i64,
            /// How we came to know it: `connect`, `accept`, `listen` or `existing`.
            origin: Str,
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
            /// Process that owns the socket (see `retransmits.pid`); null when unknown.
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
