//! Listening sockets from the socket walk → `listeners` rows: one per listener and walk
//! while its accept queue is not empty or when it dropped connection attempts since the
//! walk before (the kernel keeps a running count, `sk_drops`; rows carry its deltas).

use tcpfr_schema::listeners::{Listener, RawListener};
use tcpfr_schema::{TableId, UtcNanos};

use crate::enrich::{nonzero, owner_cols, Enricher};

pub fn handle(e: &mut Enricher, ev: &RawListener) {
    e.counts.seen[TableId::Listeners.index()] += 1;
    let time_ns = e.clock.utc(ev.hdr.ts_ns);
    let s = e.sockets.get_or_adopt(ev.hdr.sk, nonzero(ev.hdr.netns), &ev.tuple, &mut e.addrs, time_ns);
    // Not a connection: no `flows` row for it at the end.
    s.listener = true;
    // A listener made while we watched starts from 0; an older one from its first walk.
    let before = s.listen_drops.or((!s.pre_existing).then_some(0));
    s.listen_drops = Some(ev.drops);
    let drops = before.map_or(0, |b| ev.drops.wrapping_sub(b) as i64);
    let (id, netns, ends, owner) = (s.id, s.netns, s.ends.clone(), s.owner.clone());
    if crate::sockets::due(s) {
        crate::sockets::announce(e, ev.hdr.sk, time_ns, false);
    }
    if (drops == 0 && ev.accept_queue == 0) || !e.keep(TableId::Listeners, &ends, owner.as_deref()) {
        return;
    }
    let o = owner_cols(owner.as_ref());
    e.rows.listeners.push(&Listener {
        host: e.host.clone(),
        time: UtcNanos(time_ns),
        socket_id: id,
        netns,
        family: ends.family,
        laddr: ends.laddr,
        lport: ends.lport,
        accept_queue: ev.accept_queue,
        accept_queue_max: ev.accept_queue_max,
        drops,
        pid: o.pid,
        comm: o.comm,
    });
}
