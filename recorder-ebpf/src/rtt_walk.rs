//! BPF iterator `iter/tcp` → `rtt_samples` and `listeners` (`listeners.rs`): the
//! recorder runs this walk over every TCP socket once per `--rtt-interval` (by reading
//! an iterator instance), so RTT sampling costs per socket per walk instead of per
//! received segment. A socket gets a sample
//! only if something happened on it since the previous walk (bytes acknowledged or
//! received, a retransmission, a state change), so an idle host writes nothing. A
//! connection also gets a last sample when it leaves ESTABLISHED (from
//! `inet_sock_set_state`), so one shorter than the interval is not missed (that
//! program cannot reach the socket's storage, so this one is taken even if nothing
//! moved since the last walk: one row more per connection, not per packet).
//!
//! A walk does not crowd the ring buffer out (it is shared with the events that must not
//! be lost): past half of it, a sample is put off to a later walk. The kernel visits
//! sockets in the same order every walk, so a cut-off alone would put off the same
//! sockets every time; instead, after a crowded walk the next one samples a rotating
//! share of the busy sockets (a half, a quarter, … down to 1/64; the share grows back
//! after each walk with room), so each is sampled every few walks. Put-off samples are
//! counted in `recorder_stats`.
//!
//! The last walk's progress value of each socket is kept in the socket's own storage
//! (`RTT_LAST`, shared with the per-ACK mode's rate limit; only one mode is loaded), so
//! it is gone with the socket and there is no table to outgrow: with more sockets than
//! a map holds, evicted idle sockets would be sampled again on every walk.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_ktime_get_ns, generated::bpf_skc_to_tcp_sock};
use tcpfr_schema::raw::{counter, scratch_slot, stream, tcp_state};

use crate::{
    config, kernel,
    maps::{count, ring_half_full, rtt_last, WALK_STATE},
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
    // SAFETY: the context's second field, a BTF pointer (NULL at the walk's end).
    let skc = unsafe { *(ctx as *const *mut c_void).add(1) };
    if skc.is_null() {
        walk_ended();
        return 0;
    }
    // NULL for request and timewait sockets, which share the walk but are no
    // `tcp_sock`s and have no storage; listeners and connections are.
    // SAFETY: the helper checks its argument.
    let tp = unsafe { bpf_skc_to_tcp_sock(skc) };
    if tp.is_null() {
        return 0;
    }
    // Most visits find an idle socket: they read through the BTF pointer, with no
    // helper call, until a row is due.
    let tp = tp.cast::<u8>().cast_const();
    let b = &cfg.btf;
    let state: u8 = kernel::field(tp, b.sk_state);
    if state == tcp_state::LISTEN {
        if cfg.streams & stream::LISTENERS != 0 {
            if let Some(last) = rtt_last(tp.cast_mut().cast()) {
                crate::listeners::walked(sock_number(ctx), last);
            }
        }
        return 0;
    }
    if cfg.streams & stream::RTT_BY_WALK == 0 {
        return 0;
    }
    // Only sockets with a connection: listeners have no RTT, and a socket being
    // set up or closed has none worth a row.
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
    if let Some(last) = rtt_last(tp.cast_mut().cast()) {
        sample(ctx, tp, state, last);
    }
    0
}

/// The walk's socket as a plain number, for the probe reads that fill a row.
#[inline(always)]
fn sock_number(ctx: *mut c_void) -> u64 {
    kernel::ctx_word(ctx, 1)
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

/// Writes a sample of the walk's socket (`tp`, in `state`) if it made progress since
/// the value in `last` (its storage), which it then updates.
#[inline(always)]
fn sample(ctx: *mut c_void, tp: *const u8, state: u8, last: &mut u64) {
    let b = &config().btf;
    let acked: u64 = kernel::field(tp, b.tcp_bytes_acked);
    let received: u64 = kernel::field(tp, b.tcp_bytes_received);
    let retrans = kernel::field::<u32>(tp, b.tcp_total_retrans) as u64;
    // Equal values mean no progress; a wrap-around collision only skips one sample.
    // Never 0, the value of a socket's new storage.
    let progress = acked.wrapping_add(received).wrapping_add(retrans << 40) ^ ((state as u64) << 56) | 1 << 63;
    if *last == progress {
        return;
    }
    let sk = sock_number(ctx);
    // A socket the walk puts off keeps its progress unnoted, so a later walk samples it.
    if !walk_takes(sk) {
        count(counter::WALK_DEFERRED);
        return;
    }
    *last = progress;
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    crate::rtt_samples::write(sk, now, kernel::netns(sk), scratch_slot::RTT_WALK);
}
