//! BPF iterator `iter/tcp` → `rtt_samples` and `listeners` (`listeners.rs`): the
//! recorder runs this walk over every TCP socket once per `--rtt-interval` (by reading
//! an iterator instance), so RTT sampling costs per socket per walk instead of per
//! received segment. A socket gets a sample
//! only if something happened on it since the previous walk (bytes acknowledged or
//! received, a retransmission, a state change), so an idle host writes nothing. A
//! connection also gets a last sample when it leaves ESTABLISHED (from
//! `inet_sock_set_state`), so one shorter than the interval is not missed.
//!
//! A walk does not crowd the ring buffer out (it is shared with the events that must not
//! be lost): past half of it, a sample is put off to a later walk. The kernel visits
//! sockets in the same order every walk, so a cut-off alone would put off the same
//! sockets every time; instead, after a crowded walk the next one samples a rotating
//! share of the busy sockets (a half, a quarter, … down to 1/64; the share grows back
//! after each walk with room), so each is sampled every few walks. Put-off samples are
//! counted in `recorder_stats`.
//!
//! The last walk's progress value of each socket is kept in `RTT_LAST` (the per-ACK
//! mode's rate-limit map; only one of the two modes is loaded), which the close and
//! destroy programs already clear.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel};
use tcpfr_schema::raw::{counter, kind, scratch_slot, stream, tcp_state};
use tcpfr_schema::rtt_samples::RawRttSample;

use crate::{
    config, kernel,
    maps::{count, reserve, ring_half_full, RTT_LAST, WALK_STATE},
    sock,
};

/// Called once per socket of the walk (and once more with no socket at its end).
/// The context is `struct bpf_iter__tcp { struct bpf_iter_meta *meta; struct
/// sock_common *sk_common; uid_t uid; }`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/tcp")]
pub fn tcpfr_rtt_walk(ctx: *mut c_void) -> i32 {
    let cfg = config();
    if cfg.streams & (stream::RTT_BY_WALK | stream::LISTENERS) == 0 {
        return 0;
    }
    // Read with a probe read, so the verifier sees a plain number rather than a
    // BTF pointer: all reads below are probe reads at offsets known only at load time.
    // SAFETY: the context holds at least two pointers.
    let sk: u64 = unsafe { bpf_probe_read_kernel((ctx as *const u64).wrapping_add(1)).unwrap_or_default() };
    if sk == 0 {
        walk_ended();
        return 0;
    }
    let b = &cfg.btf;
    let state: u8 = kernel::read(sk, b.sk_state);
    if state == tcp_state::LISTEN {
        if cfg.streams & stream::LISTENERS != 0 {
            crate::listeners::walked(sk);
        }
        return 0;
    }
    if cfg.streams & stream::RTT_BY_WALK == 0 {
        return 0;
    }
    // Only full sockets with a connection: request and timewait sockets share the
    // iteration but are not `tcp_sock`s; listeners have no RTT.
    if !matches!(
        state,
        tcp_state::ESTABLISHED
            | tcp_state::FIN_WAIT1
            | tcp_state::FIN_WAIT2
            | tcp_state::CLOSE_WAIT
            | tcp_state::LAST_ACK
            | tcp_state::CLOSING
    ) {
        return 0;
    }
    sample(sk, state, scratch_slot::RTT_WALK);
    0
}

/// Indices of `WALK_STATE`.
mod walk_state {
    /// log2 of the number of walks that share the busy sockets between them.
    pub const SHIFT: u32 = 0;
    /// Which share this walk samples: a step of 2^32/φ per walk, so that any regular
    /// subsequence of walks (one namespace's, when several are walked each interval)
    /// still visits every share in turn.
    pub const TURN: u32 = 1;
    /// Samples the ring had no room for in the walk under way.
    pub const CROWDED: u32 = 2;
}

/// At most 64 walks to sample every busy socket once.
const MAX_SHIFT: u32 = 6;

#[inline(always)]
fn get(i: u32) -> u32 {
    WALK_STATE.get(i).copied().unwrap_or(0)
}

#[inline(always)]
fn set(i: u32, v: u32) {
    if let Some(p) = WALK_STATE.get_ptr_mut(i) {
        // SAFETY: this map's value; walks do not run concurrently.
        unsafe { *p = v };
    }
}

/// Whether this walk samples socket `sk` (which made progress): it is in this walk's
/// share, and the ring has room.
#[inline(always)]
fn walk_takes(sk: u64) -> bool {
    let shift = get(walk_state::SHIFT) & 31;
    // A socket's place on the circle (multiplicative hashing puts the address's
    // entropy into the high bits); the share is the arc [TURN, TURN + 2^32 >> shift).
    let place = (((sk >> 6) ^ (sk >> 20)) as u32).wrapping_mul(0x9E37_79B1);
    if shift > 0 && place.wrapping_sub(get(walk_state::TURN)) >> (32 - shift) != 0 {
        return false;
    }
    if ring_half_full() {
        set(walk_state::CROWDED, get(walk_state::CROWDED) + 1);
        return false;
    }
    true
}

/// The end of a walk: a smaller share for the next one if this one was crowded, a
/// larger one otherwise.
#[inline(always)]
fn walk_ended() {
    let shift = get(walk_state::SHIFT);
    let next = if get(walk_state::CROWDED) > 0 { (shift + 1).min(MAX_SHIFT) } else { shift.saturating_sub(1) };
    set(walk_state::SHIFT, next);
    set(walk_state::TURN, get(walk_state::TURN).wrapping_add(0x9E37_79B9));
    set(walk_state::CROWDED, 0);
}

/// Writes a sample of full socket `sk` in `state` if it made progress since its last
/// sample (walk or close). `slot`: the caller's scratch slot.
#[inline(always)]
pub fn sample(sk: u64, state: u8, slot: u32) {
    let b = &config().btf;
    let acked: u64 = kernel::read(sk, b.tcp_bytes_acked);
    let received: u64 = kernel::read(sk, b.tcp_bytes_received);
    let retrans = kernel::total_retrans(sk) as u64;
    // Equal values mean no progress; a wrap-around collision only skips one sample.
    let progress = acked.wrapping_add(received).wrapping_add(retrans << 40) ^ ((state as u64) << 56);
    let last = RTT_LAST.get_ptr_mut(sk);
    // SAFETY: this socket's map value; a walk racing the close of the same socket can
    // only add or skip one sample.
    if last.is_some_and(|l| unsafe { *l } == progress) {
        return;
    }
    // A socket the walk puts off keeps its progress unnoted, so a later walk samples it.
    if slot == scratch_slot::RTT_WALK && !walk_takes(sk) {
        count(counter::WALK_DEFERRED);
        return;
    }
    match last {
        // SAFETY: as above.
        Some(l) => unsafe { *l = progress },
        None => {
            let _ = RTT_LAST.insert(sk, progress, 0);
        }
    }
    let Some(mut entry) = reserve::<RawRttSample>(kind::RTT_SAMPLE) else { return };
    // SAFETY: a zeroed, reserved RawRttSample.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::RTT_SAMPLE;
    // SAFETY: a helper without arguments.
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    sock::tuple(sk, slot, &mut ev.tuple);
    // As tcp:tcp_probe reports it: srtt_us holds the smoothed RTT × 8.
    ev.srtt_us = kernel::read::<u32>(sk, b.tcp_srtt_us) >> 3;
    ev.rttvar_us = kernel::rtt_var_us(sk);
    ev.snd_cwnd = kernel::read(sk, b.tcp_snd_cwnd);
    ev.ssthresh = kernel::read(sk, b.tcp_snd_ssthresh);
    ev.snd_wnd = kernel::read(sk, b.tcp_snd_wnd);
    ev.rcv_wnd = kernel::read(sk, b.tcp_rcv_wnd);
    let nxt: u32 = kernel::read(sk, b.tcp_snd_nxt);
    let una: u32 = kernel::read(sk, b.tcp_snd_una);
    ev.bytes_in_flight = nxt.wrapping_sub(una);
    crate::maps::submit(entry);
}
