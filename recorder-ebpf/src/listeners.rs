//! Listening sockets met by the socket walk (`iter/tcp`) → `listeners`: the accept queue
//! and the listener's drop count. A SYN dropped because the accept queue is full never
//! reaches `skb:kfree_skb`; the listener's `sk_drops` counts it.
//!
//! A listener is reported when it is first seen, when its drop count or queue changed
//! since the walk before, and while its queue is not empty; userspace turns the drop
//! counts into per-walk deltas. The listener's `RTT_LAST` storage holds what the last
//! report said.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tcpfr_schema::listeners::RawListener;
use tcpfr_schema::raw::{kind, scratch_slot};

use crate::{
    config, kernel,
    maps::reserve,
    sock,
};

/// Reports listening socket `sk` if something changed or its queue is not empty;
/// `last`: its storage.
#[inline(always)]
pub fn walked(sk: u64, last: &mut u64) {
    let b = &config().btf;
    let queue: u32 = kernel::read(sk, b.sk_ack_backlog);
    let drops: u32 = kernel::read(sk, b.sk_drops);
    // The top bit: never 0, the value of new storage, so a listener is reported once.
    let now = (1 << 63) | ((queue as u64) << 32) | drops as u64;
    if queue == 0 && *last == now {
        return;
    }
    *last = now;
    let Some(mut entry) = reserve::<RawListener>(kind::LISTENER) else { return };
    // SAFETY: a zeroed, reserved RawListener.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::LISTENER;
    // SAFETY: a helper without arguments.
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    sock::tuple(sk, scratch_slot::RTT_WALK, &mut ev.tuple);
    ev.accept_queue = queue;
    ev.accept_queue_max = kernel::read(sk, b.sk_max_ack_backlog);
    ev.drops = drops;
    crate::maps::submit(entry);
}
