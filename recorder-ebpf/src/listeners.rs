//! Listening sockets met by the socket walk (`iter/tcp`) → `listeners`: the accept queue
//! and the listener's drop count. A SYN dropped because the accept queue is full never
//! reaches `skb:kfree_skb`; the listener's `sk_drops` counts it.
//!
//! A listener is reported when it is first seen, when its drop count or queue changed
//! since the walk before, and while its queue is not empty; userspace turns the drop
//! counts into per-walk deltas. `RTT_LAST` (keyed by socket, which a listener never
//! shares with a connection) holds what the last report said.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tcpfr_schema::listeners::RawListener;
use tcpfr_schema::raw::{kind, scratch_slot};

use crate::{
    config, kernel,
    maps::{reserve, RTT_LAST},
    sock,
};

/// Reports listening socket `sk` if something changed or its queue is not empty.
#[inline(always)]
pub fn walked(sk: u64) {
    let b = &config().btf;
    let queue: u32 = kernel::read(sk, b.sk_ack_backlog);
    let drops: u32 = kernel::read(sk, b.sk_drops);
    // The top bit tells a listener's value from a connection's progress value.
    let now = (1 << 63) | ((queue as u64) << 32) | drops as u64;
    let last = RTT_LAST.get_ptr_mut(sk);
    // SAFETY: this socket's map value; walks do not run concurrently.
    if queue == 0 && last.is_some_and(|l| unsafe { *l } == now) {
        return;
    }
    match last {
        // SAFETY: as above.
        Some(l) => unsafe { *l = now },
        None => {
            let _ = RTT_LAST.insert(sk, now, 0);
        }
    }
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
