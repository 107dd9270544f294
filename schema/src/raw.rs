//! The common parts of the kernel → userspace event layouts, shared byte for byte by `recorder-ebpf` (which
//! writes them into the ring buffer) and `recorder` (which decodes them).
//!
//! Every event starts with a [`RawHeader`]; its `kind` says which struct follows. The
//! per-kind structs live next to their tables (`retransmits::RawRetransmit`, …). All
//! structs are `#[repr(C)]`, 8-byte aligned (the ring buffer reserves in multiples of 8)
//! and have explicit padding so that both sides agree without relying on the compiler.
//! Changing a layout here changes both sides at once; [`RAW_ABI_VERSION`] guards against
//! a recorder loading an eBPF object built from a different version of this file.

/// Bumped whenever a struct in this module changes. The eBPF object exports it as a
/// global; the recorder refuses to run an object whose value differs.
pub const RAW_ABI_VERSION: u32 = 1;

/// Discriminant in [`RawHeader::kind`].
pub mod kind {
    /// `tcp:tcp_retransmit_skb` → `RawRetransmit`
    pub const RETRANSMIT: u8 = 1;
    /// `tcp:tcp_retransmit_synack` → `RawRetransmit` with `kind = SYNACK`
    pub const RETRANSMIT_SYNACK: u8 = 2;
    /// `sock:inet_sock_set_state` (TCP only) → `RawStateChange`
    pub const STATE_CHANGE: u8 = 3;
    /// `tcp:tcp_send_reset` → `RawReset`
    pub const RESET_SENT: u8 = 4;
    /// `tcp:tcp_receive_reset` → `RawReset`
    pub const RESET_RECEIVED: u8 = 5;
    /// `tcp:tcp_probe` (rate-limited per socket) → `RawRttSample`
    pub const RTT_SAMPLE: u8 = 6;
    /// sock_ops `STATE_CB` when a socket reaches CLOSE → `RawFlowCounters`
    pub const FLOW_COUNTERS: u8 = 7;
    /// sock_ops `TCP_CONNECT_CB` / `*_ESTABLISHED_CB`: the socket is tracked by sock_ops
    /// from now on, so its counters will arrive at close → `RawFlowCounters`
    pub const FLOW_TRACKED: u8 = 8;
    /// Number of kinds + 1; sizes per-kind counter arrays.
    pub const COUNT: usize = 9;
}

/// Address family values as the kernel uses them.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Common prefix of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawHeader {
    /// One of [`kind`].
    pub kind: u8,
    pub _pad: [u8; 3],
    /// Network namespace inode of the socket, 0 when it could not be read.
    pub netns: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event happened.
    pub ts_ns: u64,
    /// Kernel address of the `struct sock`: the key that ties events of one socket
    /// together until it is closed (the recorder turns it into a `socket_id`).
    pub sk: u64,
}

/// Addresses and ports as the socket sees them: local first. IPv4 addresses use the
/// first 4 bytes of the 16-byte arrays; IPv6 (including v4-mapped) use all 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawTuple {
    pub family: u16,
    pub lport: u16,
    pub rport: u16,
    pub _pad: u16,
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
}

/// The task that was running when the event fired. Only meaningful where the kernel
/// runs in the caller's context (e.g. `connect()`, `listen()`); see `recorder/src/sockets.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawTask {
    /// Thread group id (what userspace calls the pid).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    pub comm: [u8; 16],
}

/// TCP states in the kernel's numbering (`include/net/tcp_states.h`).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    pub const NEW_SYN_RECV: u8 = 12;

    /// The name used in recordings (`"ESTABLISHED"`, …), `None` for unknown values.
    pub const fn name(state: u8) -> Option<&'static str> {
        Some(match state {
            ESTABLISHED => "ESTABLISHED",
            SYN_SENT => "SYN_SENT",
            SYN_RECV => "SYN_RECV",
            FIN_WAIT1 => "FIN_WAIT1",
            FIN_WAIT2 => "FIN_WAIT2",
            TIME_WAIT => "TIME_WAIT",
            CLOSE => "CLOSE",
            CLOSE_WAIT => "CLOSE_WAIT",
            LAST_ACK => "LAST_ACK",
            LISTEN => "LISTEN",
            CLOSING => "CLOSING",
            NEW_SYN_RECV => "NEW_SYN_RECV",
            _ => return None,
        })
    }
}

// Layout checks: a change that moves a field fails the build on both sides.
const _: () = {
    assert!(core::mem::size_of::<RawHeader>() == 24);
    assert!(core::mem::size_of::<RawTuple>() == 40);
    assert!(core::mem::size_of::<RawTask>() == 32);
};
