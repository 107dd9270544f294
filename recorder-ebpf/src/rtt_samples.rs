//! `rtt_samples`: one row of a socket's RTT, congestion window and windows, read from
//! the socket itself. Taken by the socket walk (`rtt_walk`, the default), as a
//! connection leaves ESTABLISHED (`state_changes`), or with `--rtt-per-ack` by the BTF
//! tracepoint `tcp_probe` here (every incoming segment of an established connection),
//! at most one per socket per `rtt_interval_ns`, decided before anything is copied so
//! that the skipped calls cost a storage lookup and no ring space.
//!
//! `tcp_probe` is a `tp_btf` program rather than a classic tracepoint: the kernel hands
//! it `(sk, skb)` without formatting a record first, and the BTF pointer to the socket
//! reaches the socket's own storage (`RTT_LAST`), which replaces a hash map keyed by
//! socket address (no size limit, nothing to clean up when the socket goes).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
    EbpfContext,
};
use tcpfr_schema::raw::{counter, kind, scratch_slot, stream, NO_OFFSET};
use tcpfr_schema::rtt_samples::RawRttSample;

use crate::{
    config, kernel,
    maps::{count, reserve, rtt_last},
    record::{off16, Record},
    sock,
};

#[btf_tracepoint(function = "tcp_probe")]
pub fn tcp_probe(ctx: BtfTracePointContext) -> i32 {
    let cfg = config();
    if cfg.streams & stream::RTT_SAMPLES == 0 {
        return 0;
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let interval = cfg.rtt_interval_ns;
    if interval != 0 {
        let sk_btf: *mut c_void = ctx.arg(0);
        let Some(last) = rtt_last(sk_btf) else { return 0 };
        if now.wrapping_sub(*last) < interval {
            count(counter::RTT_RATE_LIMITED);
            return 0;
        }
        *last = now;
    }
    // The same argument as a plain number, for the probe reads below.
    let sk = kernel::ctx_word(ctx.as_ptr(), 0);
    // Per ACK, the namespace read is left out (0): the recorder knows it from the
    // socket's other events.
    write(sk, now, 0, scratch_slot::PROBE);
    0
}

/// Writes one sample of full socket `sk` at `ts_ns` (`netns` 0 if not read).
/// `slot`: the caller's scratch slot.
#[inline(always)]
pub fn write(sk: u64, ts_ns: u64, netns: u32, slot: u32) {
    let b = &config().btf;
    let Some(mut entry) = reserve::<RawRttSample>(kind::RTT_SAMPLE) else { return };
    // SAFETY: a zeroed, reserved RawRttSample.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RTT_SAMPLE;
    ev.hdr.ts_ns = ts_ns;
    ev.hdr.sk = sk;
    ev.hdr.netns = netns;
    sock::tuple(sk, slot, &mut ev.tuple);
    // The eight fields with one probe read where they fit in the scratch space (a
    // probe read costs about as much as the copy of a few hundred bytes); the tuple's
    // copy in the same slot has been used up above.
    let block = match b.tcp_sample_len {
        0 => None,
        len => Record::copy((sk + b.tcp_sample_at as u64) as *const c_void, len, slot),
    };
    let field = |off: u32| match &block {
        Some(r) => r.u32(off16(off.wrapping_sub(b.tcp_sample_at))),
        None => kernel::read::<u32>(sk, off),
    };
    // As tcp:tcp_probe's record has it: srtt_us holds the smoothed RTT × 8; `ss`
    // shows mdev_us / 4 as rttvar.
    ev.srtt_us = field(b.tcp_srtt_us) >> 3;
    ev.rttvar_us = if b.tcp_mdev_us == NO_OFFSET { u32::MAX } else { field(b.tcp_mdev_us) >> 2 };
    ev.snd_cwnd = field(b.tcp_snd_cwnd);
    ev.ssthresh = field(b.tcp_snd_ssthresh);
    ev.snd_wnd = field(b.tcp_snd_wnd);
    ev.rcv_wnd = field(b.tcp_rcv_wnd);
    ev.bytes_in_flight = field(b.tcp_snd_nxt).wrapping_sub(field(b.tcp_snd_una));
    crate::maps::submit(entry);
}
