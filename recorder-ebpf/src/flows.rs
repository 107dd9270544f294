//! sock_ops on the cgroup v2 root → the counter columns of `flows`; and, from
//! `inet_sock_set_state` as a socket reaches CLOSE, what limited it (`send_limits`).
//!
//! When a connection starts (connect, or established on either side) we ask the kernel
//! to call us on its state changes; when it reaches CLOSE we send its counters. Each
//! `bpf_sock_ops` field is read once, with a volatile read: the verifier rejects a
//! context pointer the compiler has offset and reused ("modified ctx ptr").

use core::ptr::{addr_of, read_volatile};

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TCP_CONNECT_CB,
    },
    helpers::bpf_ktime_get_ns,
    macros::sock_ops,
    programs::SockOpsContext,
};
use tcpfr_schema::flows::{RawFlowCounters, RawFlowLimits};
use tcpfr_schema::raw::{kind, stream, tcp_state, RawTuple, AF_INET, AF_INET6};

use crate::{config, kernel, maps::reserve};

macro_rules! field {
    ($ctx:expr, $($f:tt)+) => {
        // SAFETY: a read of the sock_ops context the kernel handed us.
        unsafe { read_volatile(addr_of!((*$ctx.ops).$($f)+)) }
    };
}

/// Named so as not to collide with the `sockops` ELF section.
#[sock_ops]
pub fn tcpfr_sock_ops(ctx: SockOpsContext) -> u32 {
    if config().streams & stream::FLOWS == 0 {
        return 1;
    }
    let op = field!(ctx, op);
    if op == BPF_SOCK_OPS_TCP_CONNECT_CB
        || op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
        || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB
    {
        let flags = field!(ctx, bpf_sock_ops_cb_flags);
        let _ = ctx.set_cb_flags((flags | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
    } else if op == BPF_SOCK_OPS_STATE_CB {
        let args = field!(ctx, __bindgen_anon_1.args);
        if args[1] as u8 == tcp_state::CLOSE {
            send_counters(&ctx, args[0]);
        }
    }
    1
}

#[inline(always)]
fn send_counters(ctx: &SockOpsContext, old_state: u32) {
    let Some(mut entry) = reserve::<RawFlowCounters>(kind::FLOW_COUNTERS) else { return };
    // SAFETY: a zeroed, reserved RawFlowCounters.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::FLOW_COUNTERS;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    // The pointer is only a key for the recorder; the verifier forbids arithmetic on
    // it, so the namespace comes from the socket's state changes instead.
    ev.hdr.sk = field!(ctx, __bindgen_anon_2.sk) as u64;
    let family = field!(ctx, family) as u16;
    let t = &mut ev.tuple;
    t.family = family;
    t.lport = field!(ctx, local_port) as u16;
    // Network byte order, in the upper half on little-endian kernels.
    let p = field!(ctx, remote_port);
    t.rport = u16::from_be(if p > 0xffff { (p >> 16) as u16 } else { p as u16 });
    if family == AF_INET {
        t.laddr[..4].copy_from_slice(&field!(ctx, local_ip4).to_ne_bytes());
        t.raddr[..4].copy_from_slice(&field!(ctx, remote_ip4).to_ne_bytes());
    } else if family == AF_INET6 {
        let l = field!(ctx, local_ip6);
        let r = field!(ctx, remote_ip6);
        let mut i = 0;
        while i < 4 {
            t.laddr[i * 4..i * 4 + 4].copy_from_slice(&l[i].to_ne_bytes());
            t.raddr[i * 4..i * 4 + 4].copy_from_slice(&r[i].to_ne_bytes());
            i += 1;
        }
    }
    ev.segs_in = field!(ctx, segs_in);
    ev.segs_out = field!(ctx, segs_out);
    ev.data_segs_in = field!(ctx, data_segs_in);
    ev.data_segs_out = field!(ctx, data_segs_out);
    ev.total_retrans = field!(ctx, total_retrans);
    ev.srtt_us = field!(ctx, srtt_us) >> 3;
    ev.rtt_min_us = field!(ctx, rtt_min);
    ev.state = old_state;
    ev.bytes_acked = field!(ctx, bytes_acked);
    ev.bytes_received = field!(ctx, bytes_received);
    crate::maps::submit(entry);
}

/// `tcp_sock` fields behind `ss -ti`'s busy/rwnd_limited/sndbuf_limited, delivery_rate,
/// ECN and DSACK numbers, as the socket reaches CLOSE (it is still whole then). The
/// recorder adds the period still running and converts jiffies.
#[inline(always)]
pub fn send_limits(sk: u64, netns: u32, tuple: &RawTuple) {
    let b = &config().btf;
    let Some(mut entry) = reserve::<RawFlowLimits>(kind::FLOW_LIMITS) else { return };
    // SAFETY: a zeroed, reserved RawFlowLimits.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::FLOW_LIMITS;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = netns;
    ev.tuple = *tuple;
    ev.chrono_stat = kernel::read(sk, b.tcp_chrono_stat);
    ev.chrono_start = kernel::read(sk, b.tcp_chrono_start);
    // tcp_jiffies32 is the low half of jiffies. SAFETY: a helper without arguments.
    ev.jiffies = unsafe { aya_ebpf::helpers::bpf_jiffies64() } as u32;
    ev.chrono_type = kernel::read::<u8>(sk, b.tcp_chrono_type) & 3;
    ev.delivered_ce = kernel::read(sk, b.tcp_delivered_ce);
    ev.dsack_dups = kernel::read(sk, b.tcp_dsack_dups);
    ev.reord_seen = kernel::read(sk, b.tcp_reord_seen);
    ev.rate_delivered = kernel::read(sk, b.tcp_rate_delivered);
    ev.rate_interval_us = kernel::read(sk, b.tcp_rate_interval_us);
    ev.mss_cache = kernel::read(sk, b.tcp_mss_cache);
    let ops: u64 = kernel::read(sk, b.icsk_ca_ops);
    ev.congestion_control = kernel::read(ops, b.ca_ops_name);
    crate::maps::submit(entry);
}
