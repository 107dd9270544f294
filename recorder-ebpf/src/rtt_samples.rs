//! With `--rtt-per-ack` only (the default is the socket walk, `rtt_walk`): classic
//! tracepoint `tcp:tcp_probe` (every incoming segment of an established
//! connection) → `rtt_samples`, at most one per socket per `rtt_interval_ns`, decided
//! here so that skipped samples cost no ring-buffer space. The kernel has already put
//! srtt, cwnd, windows and sequence numbers in its record. Raw tracepoint
//! `tcp_destroy_sock(sk)` forgets a socket's last-sample time (or the walk's last
//! progress value).

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
    EbpfContext,
};
use tcpfr_schema::raw::{counter, kind, scratch_slot, stream, tp_field as f};
use tcpfr_schema::rtt_samples::RawRttSample;

use crate::{
    config, kernel,
    maps::{count, reserve, RTT_LAST},
    record::Record,
};

#[tracepoint]
pub fn tcp_probe(ctx: TracePointContext) -> u32 {
    let cfg = config();
    if cfg.streams & stream::RTT_SAMPLES == 0 {
        return 0;
    }
    let tp = &cfg.probe;
    // Most calls are rate-limited away: decide on the socket address alone (8 bytes)
    // before copying the whole record.
    let sk: u64 = kernel::read(ctx.as_ptr() as u64, tp.fields[f::SKADDR] as u32);
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let interval = cfg.rtt_interval_ns;
    if interval != 0 {
        if let Some(last) = RTT_LAST.get_ptr_mut(sk) {
            // SAFETY: map value of this socket; a racing update only shifts one sample.
            unsafe {
                if now.wrapping_sub(*last) < interval {
                    count(counter::RTT_RATE_LIMITED);
                    return 0;
                }
                *last = now;
            }
        } else {
            let _ = RTT_LAST.insert(sk, now, 0);
        }
    }
    let Some(rec) = Record::load(ctx.as_ptr().cast_const(), tp, scratch_slot::PROBE) else { return 0 };
    let Some(mut entry) = reserve::<RawRttSample>(kind::RTT_SAMPLE) else { return 0 };
    // SAFETY: a zeroed, reserved RawRttSample.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RTT_SAMPLE;
    ev.hdr.ts_ns = now;
    ev.hdr.sk = sk;
    rec.tuple(&tp.addr, &mut ev.tuple);
    ev.srtt_us = rec.u32(tp.fields[f::SRTT]);
    ev.rttvar_us = kernel::rtt_var_us(sk);
    ev.snd_cwnd = rec.u32(tp.fields[f::SND_CWND]);
    ev.ssthresh = rec.u32(tp.fields[f::SSTHRESH]);
    ev.snd_wnd = rec.u32(tp.fields[f::SND_WND]);
    ev.rcv_wnd = rec.u32(tp.fields[f::RCV_WND]);
    ev.bytes_in_flight = rec.u32(tp.fields[f::SND_NXT]).wrapping_sub(rec.u32(tp.fields[f::SND_UNA]));
    crate::maps::submit(entry);
    0
}

#[raw_tracepoint(tracepoint = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: RawTracePointContext) -> i32 {
    let _ = RTT_LAST.remove(ctx.arg::<u64>(0));
    0
}
