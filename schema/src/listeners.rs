//! `listeners`: the accept queue and the connection attempts each listening socket had
//! to drop, from the socket walk (`iter/tcp`) every `--rtt-interval`. A SYN or a final
//! ACK that arrives when the accept queue is full is dropped without `skb:kfree_skb`
//! seeing it; the listener counts it in its own `sk_drops` (which `ss -tlnm` shows as
//! `d…`), and the kernel in ListenDrops.

use crate::raw::{RawHeader, RawTuple};

/// `kind::LISTENER`: one listening socket as the walk saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawListener {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    /// Connections waiting for accept() (`sk_ack_backlog`).
    pub accept_queue: u32,
    /// The queue's limit: the backlog given to listen(), capped by somaxconn
    /// (`sk_max_ack_backlog`).
    pub accept_queue_max: u32,
    /// Packets the listener dropped since it was made (`sk_drops`).
    pub drops: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<RawListener>() == 80);

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// Listening sockets whose accept queue was not empty or that dropped connection
        /// attempts, one row per listener and socket walk (recorder option
        /// `--rtt-interval`, default 1 s). A listener drops a SYN or the handshake's
        /// final ACK when its accept queue is full (the application does not call
        /// accept() fast enough, or its backlog is too small); the client sees a
        /// connect() that retransmits its SYN. The sum of `drops` over a namespace's
        /// listeners is the namespace's TcpExt ListenDrops over the same time. A walk
        /// runs in a namespace only when a segment moved there since the last one.
        pub struct Listener in "listeners" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the walk read the listener (UTC).
            time: UtcNanos => "ns",
            /// The listening socket; joins with `sockets` on (host, socket_id).
            socket_id: i64,
            /// Network namespace inode of the listener; null if unknown.
            netns: Option<u32>,
            /// `ipv4` or `ipv6`.
            family: Str,
            /// Address it listens on (`0.0.0.0` or `::` for any).
            laddr: Str,
            /// Port it listens on.
            lport: u16,
            /// Connections waiting for accept() when the walk read it.
            accept_queue: u32 => "connections",
            /// The accept queue's limit: listen()'s backlog, capped by net.core.somaxconn.
            accept_queue_max: u32 => "connections",
            /// SYNs and final ACKs the listener dropped since the walk before (a listener made during the recording counts from 0; one older than the recording from the first walk that saw it): its accept queue was full.
            drops: i64 => "packets",
            /// Process holding the listener, if known.
            pid: Option<i32>,
            /// Its command name, if known.
            comm: Option<Str>,
        }
    }
}
