//! Raw tracepoints `tcp_retransmit_skb(sk, skb[, err])` and
//! `tcp_retransmit_synack(sk, req)` → `retransmits`.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tcpfr_schema::raw::{kernel_flag, kind, scratch_slot, stream, tcp_state};
use tcpfr_schema::retransmits::{retransmit_kind, RawRetransmit};

use crate::{config, kernel, maps::reserve, sock};

#[raw_tracepoint(tracepoint = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.streams & stream::RETRANSMITS == 0 {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let Some(mut entry) = reserve::<RawRetransmit>(kind::RETRANSMIT) else { return 0 };
    // SAFETY: a zeroed, reserved RawRetransmit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RETRANSMIT;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    let state = sock::tuple(sk, scratch_slot::RETRANSMIT, &mut ev.tuple);
    ev.state = state;
    ev.kind = if state == tcp_state::SYN_SENT { retransmit_kind::SYN } else { retransmit_kind::DATA };
    if cfg.flags & kernel_flag::RETRANSMIT_HAS_ERR != 0 {
        ev.has_err = 1;
        ev.err = ctx.arg::<u64>(2) as i32;
    }
    ev.segs = kernel::gso_segs(skb);
    let seq_off = cfg.btf.skb_tcp_seq;
    if seq_off != tcpfr_schema::raw::NO_OFFSET {
        ev.seq = kernel::read(skb, seq_off);
        ev.has_seq = 1;
    }
    ev.total_retrans = kernel::total_retrans(sk);
    (ev.ca_state, ev.pending, ev.backoff, ev.timer_firing) = kernel::congestion(sk);
    crate::maps::submit(entry);
    0
}

/// SYN-ACK retransmits happen on request sockets (`req`); `sk` is the listener.
#[raw_tracepoint(tracepoint = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.streams & stream::RETRANSMITS == 0 {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    let req: u64 = ctx.arg(1);
    let Some(mut entry) = reserve::<RawRetransmit>(kind::RETRANSMIT_SYNACK) else { return 0 };
    // SAFETY: a zeroed, reserved RawRetransmit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RETRANSMIT_SYNACK;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    sock::tuple(req, scratch_slot::SYNACK, &mut ev.tuple);
    ev.state = tcp_state::SYN_RECV;
    ev.kind = retransmit_kind::SYNACK;
    // The kernel only traces SYN-ACKs that were sent.
    ev.has_err = 1;
    ev.segs = 1;
    // The listener's congestion state says nothing about a request socket's SYN-ACK.
    ev.ca_state = tcpfr_schema::retransmits::UNKNOWN;
    ev.pending = tcpfr_schema::retransmits::UNKNOWN;
    ev.backoff = tcpfr_schema::retransmits::UNKNOWN;
    ev.timer_firing = tcpfr_schema::retransmits::UNKNOWN;
    crate::maps::submit(entry);
    0
}
