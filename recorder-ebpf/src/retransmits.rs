//! `tcp:tcp_retransmit_skb` and `tcp:tcp_retransmit_synack` → `retransmits`.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use tcpfr_schema::raw::{kind, stream, tcp_state, tp_field as f};
use tcpfr_schema::retransmits::{retransmit_kind, RawRetransmit};

use crate::{config, kernel, maps::reserve, record::Record};

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    let cfg = config();
    if cfg.streams & stream::RETRANSMITS == 0 {
        return 0;
    }
    let tp = &cfg.retransmit_skb;
    let Some(rec) = Record::load(&ctx, tp) else { return 0 };
    let Some(mut entry) = reserve::<RawRetransmit>(kind::RETRANSMIT) else { return 0 };
    // SAFETY: a zeroed, reserved RawRetransmit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    let sk = rec.u64(tp.fields[f::SKADDR]);
    ev.hdr.kind = kind::RETRANSMIT;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    rec.tuple(&tp.addr, &mut ev.tuple);
    let state = rec.i32(tp.fields[f::STATE]) as u8;
    ev.state = state;
    ev.kind = if state == tcp_state::SYN_SENT { retransmit_kind::SYN } else { retransmit_kind::DATA };
    if Record::has(tp.fields[f::ERR]) {
        ev.has_err = 1;
        ev.err = rec.i32(tp.fields[f::ERR]);
    }
    ev.segs = kernel::gso_segs(rec.u64(tp.fields[f::SKBADDR]));
    entry.submit(0);
    0
}

/// SYN-ACK retransmits happen on request sockets; `skaddr` is the listener.
#[tracepoint]
pub fn tcp_retransmit_synack(ctx: TracePointContext) -> u32 {
    let cfg = config();
    if cfg.streams & stream::RETRANSMITS == 0 {
        return 0;
    }
    let tp = &cfg.retransmit_synack;
    let Some(rec) = Record::load(&ctx, tp) else { return 0 };
    let Some(mut entry) = reserve::<RawRetransmit>(kind::RETRANSMIT_SYNACK) else { return 0 };
    // SAFETY: a zeroed, reserved RawRetransmit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    let sk = rec.u64(tp.fields[f::SKADDR]);
    ev.hdr.kind = kind::RETRANSMIT_SYNACK;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    rec.tuple(&tp.addr, &mut ev.tuple);
    ev.state = tcp_state::SYN_RECV;
    ev.kind = retransmit_kind::SYNACK;
    // The kernel only traces SYN-ACKs that were sent.
    ev.has_err = 1;
    ev.segs = 1;
    entry.submit(0);
    0
}
