//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset` → `resets`.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use tcpfr_schema::raw::{kind, stream, tp_field as f};
use tcpfr_schema::resets::RawReset;

use crate::{config, kernel, maps::reserve, record::Record};

#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    let cfg = config();
    if cfg.streams & stream::RESETS == 0 {
        return 0;
    }
    let tp = &cfg.send_reset;
    let Some(rec) = Record::load(&ctx, tp) else { return 0 };
    let Some(mut entry) = reserve::<RawReset>(kind::RESET_SENT) else { return 0 };
    // SAFETY: a zeroed, reserved RawReset.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    // No socket (e.g. a SYN to a closed port) gives skaddr 0 and state 0.
    let sk = rec.u64(tp.fields[f::SKADDR]);
    ev.hdr.kind = kind::RESET_SENT;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    rec.tuple(&tp.addr, &mut ev.tuple);
    ev.state = rec.i32(tp.fields[f::STATE]) as u8;
    ev.reason = if Record::has(tp.fields[f::REASON]) { rec.u32(tp.fields[f::REASON]) } else { u32::MAX };
    entry.submit(0);
    0
}

#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    let cfg = config();
    if cfg.streams & stream::RESETS == 0 {
        return 0;
    }
    let tp = &cfg.receive_reset;
    let Some(rec) = Record::load(&ctx, tp) else { return 0 };
    let Some(mut entry) = reserve::<RawReset>(kind::RESET_RECEIVED) else { return 0 };
    // SAFETY: a zeroed, reserved RawReset.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    let sk = rec.u64(tp.fields[f::SKADDR]);
    ev.hdr.kind = kind::RESET_RECEIVED;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    rec.tuple(&tp.addr, &mut ev.tuple);
    // The tracepoint has no state field; the socket still has it (tcp_reset runs
    // before the socket is moved to CLOSE).
    ev.state = kernel::sk_state(sk);
    ev.reason = u32::MAX;
    entry.submit(0);
    0
}
