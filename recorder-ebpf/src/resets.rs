//! Raw tracepoints `tcp_send_reset(sk, skb[, reason])` and `tcp_receive_reset(sk)` →
//! `resets`.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tcpfr_schema::raw::{kernel_flag, kind, scratch_slot, stream};
use tcpfr_schema::resets::RawReset;

use crate::{config, kernel, maps::reserve, sock};

#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.streams & stream::RESETS == 0 {
        return 0;
    }
    // No socket (e.g. a SYN to a closed port): sk is NULL, the addresses come from the
    // packet being answered.
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let Some(mut entry) = reserve::<RawReset>(kind::RESET_SENT) else { return 0 };
    // SAFETY: a zeroed, reserved RawReset.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RESET_SENT;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    if sk != 0 {
        ev.hdr.netns = kernel::netns(sk);
        ev.state = sock::tuple(sk, scratch_slot::SEND_RESET, &mut ev.tuple);
    } else {
        ev.hdr.netns = kernel::netns_of_packet(skb);
        sock::tuple_from_packet(skb, &mut ev.tuple);
    }
    ev.reason = if cfg.flags & kernel_flag::SEND_RESET_HAS_REASON != 0 { ctx.arg::<u64>(2) as u32 } else { u32::MAX };
    crate::maps::submit(entry);
    0
}

#[raw_tracepoint(tracepoint = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.streams & stream::RESETS == 0 {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    let Some(mut entry) = reserve::<RawReset>(kind::RESET_RECEIVED) else { return 0 };
    // SAFETY: a zeroed, reserved RawReset.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RESET_RECEIVED;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    // tcp_reset runs before the socket is moved to CLOSE: this is the state it was in.
    ev.state = sock::tuple(sk, scratch_slot::RECEIVE_RESET, &mut ev.tuple);
    ev.reason = u32::MAX;
    crate::maps::submit(entry);
    0
}
