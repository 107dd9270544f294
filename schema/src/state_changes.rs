//! `state_changes`: every TCP state transition, from `sock:inet_sock_set_state`. The
//! source of connection lifetimes, handshake outcomes and socket ownership.

use crate::raw::{RawHeader, RawTask, RawTuple};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawStateChange {
    pub hdr: RawHeader,
    pub tuple: RawTuple,
    /// The running task. `connect()` and `listen()` run in the owner's context; other
    /// transitions may run in softirq, where this is whoever was interrupted.
    pub task: RawTask,
    pub old_state: u8,
    pub new_state: u8,
    pub _pad: u16,
    /// `sk->sk_err` when the new state is CLOSE (ETIMEDOUT, ECONNREFUSED, …), else 0.
    pub sk_err: i32,
}
const _: () = assert!(core::mem::size_of::<RawStateChange>() == 104);

#[cfg(feature = "std")]
pub use table::*;

#[cfg(feature = "std")]
mod table {
    use crate::table::{Str, UtcNanos};

    crate::define_table! {
        /// One row per TCP state transition of any socket (listeners included).
        pub struct StateChange in "state_changes" ordered by time {
            /// Host name of the machine that made the recording.
            host: Str,
            /// When the transition happened (UTC).
            time: UtcNanos => "ns",
            /// Socket this happened on; joins with the other tables on (host, socket_id).
            socket_id: i64,
            /// Network namespace inode of the socket; null if it could not be read.
            netns: Option<u32>,
            /// `ipv4` or `ipv6` (IPv4-mapped addresses count as `ipv4`).
            family: Str,
            /// Local address, textual.
            laddr: Str,
            /// Local port.
            lport: u16,
            /// Remote address, textual (`0.0.0.0` / `::` for listeners).
            raddr: Str,
            /// Remote port (0 for listeners).
            rport: u16,
            /// State before the transition (`CLOSE`, `SYN_SENT`, `ESTABLISHED`, …).
            old_state: Str,
            /// State after the transition.
            new_state: Str,
            /// Why the socket closed, when `new_state` is `CLOSE` and the kernel set an error: `ETIMEDOUT`, `ECONNREFUSED`, `ECONNRESET`, `EHOSTUNREACH`, …; null otherwise.
            error: Option<Str>,
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
