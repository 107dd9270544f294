//! `sockets` rows: one per socket, written once its addresses are known (for
//! connect(), when the local port has been chosen), or at its close at the latest.

use tcpfr_schema::TableId;
use tcpfr_schema::sockets::Socket as SocketRow;
use tcpfr_schema::UtcNanos;

use crate::enrich::{owner_cols, Enricher};

/// One socket of the owner walk at start (`RawSocketOwner`): remembered for when the
/// socket is first seen.
pub fn handle_owner(e: &mut Enricher, ev: &tcpfr_schema::sockets::RawSocketOwner) {
    e.sockets.owner_found(ev.hdr.sk, ev.hdr.netns, ev.lport, ev.state, ev.tgid as i32);
}

/// Whether the socket's row is still to be written and can be.
#[inline]
pub fn due(s: &crate::socket_table::Socket) -> bool {
    !s.announced && s.ends.lport != 0
}

/// Writes the `sockets` row of socket `sk` if it has not been written (`force`: even
/// before its local port is known, because it is closing).
pub fn announce(e: &mut Enricher, sk: u64, time_ns: i64, force: bool) {
    let Some(s) = e.sockets.get_mut(sk) else { return };
    if s.announced || (!force && s.ends.lport == 0) {
        return;
    }
    s.announced = true;
    let (id, origin, netns, ends, owner) = (s.id, s.origin, s.netns, s.ends.clone(), s.owner.clone());
    e.counts.seen[TableId::Sockets.index()] += 1;
    if !e.keep(TableId::Sockets, &ends, owner.as_deref()) {
        return;
    }
    let o = owner_cols(owner.as_ref());
    let row = SocketRow {
        host: e.host.clone(),
        time: UtcNanos(time_ns),
        socket_id: id,
        origin: e.name(origin),
        netns,
        family: ends.family,
        laddr: ends.laddr,
        lport: ends.lport,
        raddr: ends.raddr,
        rport: ends.rport,
        pid: o.pid,
        comm: o.comm,
        cgroup_id: o.cgroup_id,
        cgroup: o.cgroup,
        container_id: o.container_id,
    };
    e.rows.sockets.push(&row);
}
