//! `tcp_send_reset` / `tcp_receive_reset` events → `resets` rows.

use tcpfr_schema::TableId;
use std::sync::Arc;

use tcpfr_schema::raw::kind;
use tcpfr_schema::resets::{RawReset, Reset};
use tcpfr_schema::UtcNanos;

use crate::enrich::{nonzero, owner_cols, Enricher};
use crate::socket_table::state_name;

pub fn handle(e: &mut Enricher, ev: &RawReset) {
    e.counts.seen[TableId::Resets.index()] += 1;
    let time_ns = e.clock.utc(ev.hdr.ts_ns);
    let time = UtcNanos(time_ns);
    let netns = nonzero(ev.hdr.netns);
    let sent = ev.hdr.kind == kind::RESET_SENT;
    let (socket_id, ends, owner) = if ev.hdr.sk == 0 {
        // Sent without a socket (e.g. to a SYN for a closed port).
        (None, e.addrs.endpoints(&ev.tuple), None)
    } else {
        let s = e.sockets.get_or_adopt(ev.hdr.sk, netns, &ev.tuple, &mut e.addrs, time_ns);
        if !sent {
            s.reset_received = true;
        }
        let due = crate::sockets::due(s);
        let r = (Some(s.id), s.ends.clone(), s.owner.clone());
        if due {
            crate::sockets::announce(e, ev.hdr.sk, time_ns, false);
        }
        r
    };
    if !e.keep(TableId::Resets, &ends, owner.as_deref()) {
        return;
    }
    let reason = if sent && ev.reason != u32::MAX {
        let name = e.reset_reasons.get(&ev.reason).cloned();
        Some(name.unwrap_or_else(|| Arc::from(format!("reason {}", ev.reason))))
    } else {
        None
    };
    let o = owner_cols(owner.as_ref());
    let row = Reset {
        host: e.host.clone(),
        time,
        socket_id,
        netns,
        family: ends.family,
        laddr: ends.laddr,
        lport: ends.lport,
        raddr: ends.raddr,
        rport: ends.rport,
        direction: e.name(if sent { "sent" } else { "received" }),
        state: (ev.state != 0).then(|| e.name(state_name(ev.state))),
        reason,
        pid: o.pid,
        comm: o.comm,
        cgroup_id: o.cgroup_id,
        cgroup: o.cgroup,
        container_id: o.container_id,
    };
    e.rows.resets.push(&row);
}
