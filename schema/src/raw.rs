//! The common parts of the kernel → userspace event layouts, shared byte for byte by `recorder-ebpf` (which
//! writes them into the ring buffer) and `recorder` (which decodes them).
//!
//! Every event starts with a [`RawHeader`]; its `kind` says which struct follows. The
//! per-kind structs live next to their tables (`retransmits::RawRetransmit`, …). All
//! structs are `#[repr(C)]`, 8-byte aligned (the ring buffer reserves in multiples of 8)
//! and have explicit padding so that both sides agree without relying on the compiler.
//! Changing a layout here changes both sides at once; [`RAW_ABI_VERSION`] guards against
//! a recorder loading an eBPF object built from a different version of this file.

/// Bumped whenever an event layout changes. The recorder embeds the eBPF object built
/// from the same source, and puts this in the config it hands the programs.
pub const RAW_ABI_VERSION: u32 = 11;

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
    /// The `iter/tcp` walk every `--rtt-interval` (sockets with progress since the
    /// last walk), or with `--rtt-per-ack` `tcp_probe` (rate-limited per socket)
    /// → `RawRttSample`
    pub const RTT_SAMPLE: u8 = 6;
    /// sock_ops `STATE_CB` when a socket reaches CLOSE → `RawFlowCounters`
    pub const FLOW_COUNTERS: u8 = 7;
    /// The `iter/task_file` walk at start: which process holds each TCP socket that
    /// exists already → `RawSocketOwner` (owners in `sockets` and the event tables)
    pub const SOCKET_OWNER: u8 = 8;
    /// The `iter/tcp` walk: a listening socket → `RawListener`
    pub const LISTENER: u8 = 9;
    /// `skb:kfree_skb` of a TCP packet: counted in the `DROPS` map, not a ring record
    /// (the kind numbers its loss counter: drops of a flow the full map had no room for).
    pub const DROP: u8 = 10;
    /// `sock:inet_sock_set_state` to CLOSE, with the `flows` stream → `RawFlowLimits`
    pub const FLOW_LIMITS: u8 = 11;
    /// Number of kinds + 1; sizes per-kind counter arrays.
    pub const COUNT: usize = 12;
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
    assert!(core::mem::size_of::<BtfOffsets>() % 8 == 0);
    assert!(core::mem::size_of::<KernelConfig>() % 8 == 0);
    assert!(core::mem::size_of::<RawHeader>() == 24);
    assert!(core::mem::size_of::<RawTuple>() == 40);
    assert!(core::mem::size_of::<RawTask>() == 32);
};

/// "Not found in BTF" for [`BtfOffsets`].
pub const NO_OFFSET: u32 = u32::MAX;

/// Largest block of a socket the programs copy with one probe read into per-CPU
/// scratch space (the `sock_common` head; the `tcp_sock` fields of an RTT sample).
pub const SCRATCH_BYTES: usize = 512;

/// Offsets inside kernel structs, from `/sys/kernel/btf/vmlinux` at start-up.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfOffsets {
    /// `sk_buff.cb` + `tcp_skb_cb.tcp_gso_segs` (u16): segments in a retransmitted skb.
    pub skb_gso_segs: u32,
    /// `sk_buff.head` (pointer), `.network_header`, `.transport_header` (u16 offsets
    /// from head): addresses of a reset sent without a socket come from its packet.
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    /// `sock_common` fields (also the head of `request_sock` and timewait sockets):
    /// `skc_family` (u16), `skc_state` (u8), `skc_num` (u16, local port, host order),
    /// `skc_dport` (be16), `skc_rcv_saddr`/`skc_daddr` (be32), `skc_v6_rcv_saddr` /
    /// `skc_v6_daddr` (16 bytes; [`NO_OFFSET`] without IPv6).
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_num: u32,
    pub sk_dport: u32,
    pub sk_rcv_saddr: u32,
    pub sk_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
    /// Bytes to copy from the start of a socket to cover the fields above.
    pub sk_head_len: u32,
    /// `sock.sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `sock.__sk_common.skc_net` (pointer to `struct net`).
    pub sk_net: u32,
    /// `net.ns.inum` (u32): the namespace inode.
    pub net_inum: u32,
    /// `sock.sk_err` (int).
    pub sk_err: u32,
    /// `tcp_sock.mdev_us` (u32, RTT deviation × 4).
    pub tcp_mdev_us: u32,
    /// `tcp_sock.total_retrans` (u32).
    pub tcp_total_retrans: u32,
    /// `sk_buff.dev` (pointer) and `net_device.nd_net.net` (pointer to `struct net`):
    /// the namespace of a reset sent without a socket.
    pub skb_dev: u32,
    pub dev_net: u32,
    /// `tcp_sock` fields the socket walk (`iter/tcp`) and `tcp_probe` read:
    /// `srtt_us` (u32, smoothed RTT × 8), `snd_cwnd`, `snd_ssthresh`, `snd_wnd`,
    /// `rcv_wnd`, `snd_nxt`, `snd_una` (u32), and the progress counters
    /// `bytes_acked`, `bytes_received` (u64) that tell a walk whether anything happened
    /// on the socket since the last one.
    pub tcp_srtt_us: u32,
    pub tcp_snd_cwnd: u32,
    pub tcp_snd_ssthresh: u32,
    pub tcp_snd_wnd: u32,
    pub tcp_rcv_wnd: u32,
    pub tcp_snd_nxt: u32,
    pub tcp_snd_una: u32,
    pub tcp_bytes_acked: u32,
    pub tcp_bytes_received: u32,
    /// What the owner walk (`iter/task_file`) reads: `task_struct.tgid` (int),
    /// `file.f_inode` (pointer) and `inode.i_mode` (u16, to tell a socket's file),
    /// `file.private_data` (a socket file's `struct socket`), `socket.sk` (pointer).
    pub task_tgid: u32,
    pub file_f_inode: u32,
    pub inode_i_mode: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    /// `inet_connection_sock` fields read at a retransmit to tell its cause:
    /// `icsk_ca_state` (the low 5 bits of its byte: Open, Disorder, CWR, Recovery,
    /// Loss), `icsk_pending` (u8, the timer that is armed or firing) and
    /// `icsk_backoff` (u8, the exponent of the retransmission timer's backoff) and
    /// `icsk_retransmit_timer.expires` (unsigned long, jiffies: whether the armed
    /// timer is due), `sock.sk_tsq_flags` (unsigned long) and the bit in it that says
    /// the timer fired while a process owned the socket and waits to run when it lets
    /// go (`TCP_WRITE_TIMER_DEFERRED`, from BTF): ACKs queued meanwhile are processed
    /// first, with the due timer still pending.
    pub icsk_ca_state: u32,
    pub icsk_pending: u32,
    pub icsk_backoff: u32,
    pub icsk_timer_expires: u32,
    pub sk_tsq_flags: u32,
    pub write_timer_deferred_bit: u32,
    /// `sock` fields a listener is read with: `sk_ack_backlog` and
    /// `sk_max_ack_backlog` (u32, its accept queue and limit) and `sk_drops`
    /// (atomic_t: TCP counts a listener's drops there).
    pub sk_ack_backlog: u32,
    pub sk_max_ack_backlog: u32,
    pub sk_drops: u32,
    /// `sk_buff.protocol` (__be16) and `sk_buff.skb_iif` (0 for packets this host
    /// sent): which dropped packets are TCP, and which way they went.
    pub skb_protocol: u32,
    pub skb_iif: u32,
    /// `sk_buff.sk`: the socket of a packet being sent (for its namespace: the packet
    /// may have no device yet).
    pub skb_sk: u32,
    /// What `flows` says limited a connection, read as it closes (`RawFlowLimits`):
    /// `tcp_sock.chrono_type` (u8), `chrono_start` (u32), `chrono_stat` (u32[3]),
    /// `delivered_ce`, `dsack_dups`, `reord_seen`, `rate_delivered`,
    /// `rate_interval_us`, `mss_cache` (u32), `inet_connection_sock.icsk_ca_ops`
    /// (pointer) and `tcp_congestion_ops.name` (char[16]).
    pub tcp_chrono_type: u32,
    pub tcp_chrono_start: u32,
    pub tcp_chrono_stat: u32,
    pub tcp_delivered_ce: u32,
    pub tcp_dsack_dups: u32,
    pub tcp_reord_seen: u32,
    pub tcp_rate_delivered: u32,
    pub tcp_rate_interval_us: u32,
    pub tcp_mss_cache: u32,
    pub icsk_ca_ops: u32,
    pub ca_ops_name: u32,
    /// `sk_buff.cb` + `tcp_skb_cb.seq` (u32): a retransmit's first sequence number.
    pub skb_tcp_seq: u32,
    /// Where the RTT sample's `tcp_sock` fields (srtt_us … snd_una, mdev_us) lie:
    /// from `tcp_sample_at`, `tcp_sample_len` bytes, copied with one probe read
    /// instead of eight (0: they span more than [`SCRATCH_BYTES`], read one by one).
    pub tcp_sample_at: u32,
    pub tcp_sample_len: u32,
    pub _pad: u32,
}

/// Everything the eBPF programs need to know about the running kernel and the user's
/// choices. A single global (`CONFIG`) set by the recorder at load time.
///
/// Events that must not be missed (retransmits, state changes, resets) come from raw
/// tracepoints, whose arguments are kernel pointers read with [`BtfOffsets`]: the
/// kernel guards raw tracepoint programs one program at a time, whereas classic
/// tracepoint programs share one guard per CPU, so a retransmit in softirq that
/// interrupts any other tracing program on that CPU would be skipped. RTT samples come
/// from a walk over the TCP sockets (`iter/tcp`, [`BtfOffsets`]) or, with
/// `--rtt-per-ack`, from the BTF tracepoint `tcp_probe`, which reads the same fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// Must equal [`RAW_ABI_VERSION`].
    pub abi_version: u32,
    /// Bit set of [`stream`]s to record.
    pub streams: u32,
    /// With `--rtt-per-ack`: minimum time between two `tcp_probe` samples of one
    /// socket (0 = every ACK). The socket walk does not use it (userspace runs it
    /// every interval).
    pub rtt_interval_ns: u64,
    /// Bit set of [`kernel_flag`]s.
    pub flags: u32,
    /// Programs wake the reader only once this many bytes wait in the ring; below
    /// that the recorder polls on a timer. A wakeup costs the traced CPU an
    /// interrupt (a VM exit on virtual machines), more than the event itself.
    pub wakeup_bytes: u32,
    pub btf: BtfOffsets,
}

/// Bits of [`KernelConfig::flags`]: optional raw tracepoint arguments of this kernel.
pub mod kernel_flag {
    /// `tcp_retransmit_skb(sk, skb, err)` (since 6.13) rather than `(sk, skb)`.
    pub const RETRANSMIT_HAS_ERR: u32 = 1;
    /// `tcp_send_reset(sk, skb, reason)` (since 6.10) rather than `(sk, skb)`.
    pub const SEND_RESET_HAS_REASON: u32 = 2;
    /// `kfree_skb(skb, location, reason[, rx_sk])` as the drops program reads it.
    pub const KFREE_SKB_OK: u32 = 4;
    /// `kfree_skb` has `rx_sk` (since 6.12): the socket a received packet was for, when
    /// the kernel had found it before dropping the packet.
    pub const KFREE_SKB_RX_SK: u32 = 8;
}

/// Bits of [`KernelConfig::streams`].
pub mod stream {
    use crate::TableId;
    pub const RETRANSMITS: u32 = TableId::Retransmits.stream_bit();
    pub const STATE_CHANGES: u32 = TableId::StateChanges.stream_bit();
    pub const RESETS: u32 = TableId::Resets.stream_bit();
    pub const RTT_SAMPLES: u32 = TableId::RttSamples.stream_bit();
    pub const FLOWS: u32 = TableId::Flows.stream_bit();
    pub const LISTENERS: u32 = TableId::Listeners.stream_bit();
    pub const DROPS: u32 = TableId::Drops.stream_bit();
    /// Not a table: with the socket walk, also sample a connection when it leaves
    /// ESTABLISHED (if it moved since the last walk).
    pub const RTT_AT_CLOSE: u32 = 1 << 31;
    /// Not a table: the socket walk samples RTT (it also runs for `listeners` alone,
    /// e.g. with `--rtt-per-ack`, where `tcp_probe` samples RTT instead).
    pub const RTT_BY_WALK: u32 = 1 << 30;
}

impl BtfOffsets {
    pub const EMPTY: BtfOffsets = BtfOffsets {
        skb_gso_segs: NO_OFFSET,
        skb_head: NO_OFFSET,
        skb_network_header: NO_OFFSET,
        skb_transport_header: NO_OFFSET,
        sk_family: NO_OFFSET,
        sk_state: NO_OFFSET,
        sk_num: NO_OFFSET,
        sk_dport: NO_OFFSET,
        sk_rcv_saddr: NO_OFFSET,
        sk_daddr: NO_OFFSET,
        sk_v6_rcv_saddr: NO_OFFSET,
        sk_v6_daddr: NO_OFFSET,
        sk_head_len: 0,
        sk_protocol: NO_OFFSET,
        sk_net: NO_OFFSET,
        net_inum: NO_OFFSET,
        sk_err: NO_OFFSET,
        tcp_mdev_us: NO_OFFSET,
        tcp_total_retrans: NO_OFFSET,
        skb_dev: NO_OFFSET,
        dev_net: NO_OFFSET,
        tcp_srtt_us: NO_OFFSET,
        tcp_snd_cwnd: NO_OFFSET,
        tcp_snd_ssthresh: NO_OFFSET,
        tcp_snd_wnd: NO_OFFSET,
        tcp_rcv_wnd: NO_OFFSET,
        tcp_snd_nxt: NO_OFFSET,
        tcp_snd_una: NO_OFFSET,
        tcp_bytes_acked: NO_OFFSET,
        tcp_bytes_received: NO_OFFSET,
        task_tgid: NO_OFFSET,
        file_f_inode: NO_OFFSET,
        inode_i_mode: NO_OFFSET,
        file_private_data: NO_OFFSET,
        socket_sk: NO_OFFSET,
        icsk_ca_state: NO_OFFSET,
        icsk_pending: NO_OFFSET,
        icsk_backoff: NO_OFFSET,
        icsk_timer_expires: NO_OFFSET,
        sk_tsq_flags: NO_OFFSET,
        write_timer_deferred_bit: 0,
        sk_ack_backlog: NO_OFFSET,
        sk_max_ack_backlog: NO_OFFSET,
        sk_drops: NO_OFFSET,
        skb_protocol: NO_OFFSET,
        skb_iif: NO_OFFSET,
        skb_sk: NO_OFFSET,
        tcp_chrono_type: NO_OFFSET,
        tcp_chrono_start: NO_OFFSET,
        tcp_chrono_stat: NO_OFFSET,
        tcp_delivered_ce: NO_OFFSET,
        tcp_dsack_dups: NO_OFFSET,
        tcp_reord_seen: NO_OFFSET,
        tcp_rate_delivered: NO_OFFSET,
        tcp_rate_interval_us: NO_OFFSET,
        tcp_mss_cache: NO_OFFSET,
        icsk_ca_ops: NO_OFFSET,
        ca_ops_name: NO_OFFSET,
        skb_tcp_seq: NO_OFFSET,
        tcp_sample_at: 0,
        tcp_sample_len: 0,
        _pad: 0,
    };
}

impl KernelConfig {
    /// Placeholder compiled into the object; the recorder always overrides it.
    pub const EMPTY: KernelConfig = KernelConfig {
        abi_version: 0,
        streams: 0,
        rtt_interval_ns: 0,
        flags: 0,
        wakeup_bytes: 0,
        btf: BtfOffsets::EMPTY,
    };
}

/// Per-CPU scratch slots, one per program: a raw tracepoint program can interrupt a
/// classic one on the same CPU, so they must not share scratch space.
pub mod scratch_slot {
    pub const RETRANSMIT: u32 = 0;
    pub const SYNACK: u32 = 1;
    pub const STATE: u32 = 2;
    pub const SEND_RESET: u32 = 3;
    pub const RECEIVE_RESET: u32 = 4;
    pub const PROBE: u32 = 5;
    pub const RTT_WALK: u32 = 6;
    pub const COUNT: u32 = 7;
}

/// Indexes of the per-CPU counter array `COUNTERS` (besides per-kind losses).
pub mod counter {
    /// RTT samples skipped by the per-socket rate limit.
    pub const RTT_RATE_LIMITED: u32 = 0;
    /// Events dropped because the ring buffer was full: `LOST_BASE + kind`.
    pub const LOST_BASE: u32 = 1;
    /// Samples the socket walk put off to a later walk because the ring was crowded.
    pub const WALK_DEFERRED: u32 = LOST_BASE + super::kind::COUNT as u32;
    pub const COUNT: u32 = WALK_DEFERRED + 1;
}
