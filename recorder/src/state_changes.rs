//! `inet_sock_set_state` events → `state_changes` rows, and the life of each socket:
//! births (with their owners), handshakes, and closes (which write `flows` rows).

use tcpfr_schema::TableId;
use tcpfr_schema::raw::tcp_state::{CLOSE, ESTABLISHED, LISTEN, SYN_RECV, SYN_SENT};
use tcpfr_schema::state_changes::{RawStateChange, StateChange};
use tcpfr_schema::UtcNanos;

use crate::enrich::{nonzero, owner_cols, Enricher};
use crate::socket_table::{errno_name, state_name, Birth};

pub fn handle(e: &mut Enricher, ev: &RawStateChange) {
    e.counts.seen[TableId::StateChanges.index()] += 1;
    let time = e.clock.utc(ev.hdr.ts_ns);
    let netns = nonzero(ev.hdr.netns);
    let sk = ev.hdr.sk;
    let birth = match (ev.old_state, ev.new_state) {
        (CLOSE, SYN_SENT) => Some(Birth::Connect),
        (CLOSE, LISTEN) => Some(Birth::Listen),
        (LISTEN, SYN_RECV) => Some(Birth::Accept),
        _ => None,
    };
    if let Some(birth) = birth {
        let ends = e.addrs.endpoints(&ev.tuple);
        // connect() and listen() run in the owner's context; accepted sockets inherit
        // their listener's owner (looked up by the socket table).
        let owner = (birth != Birth::Accept).then(|| e.sockets.owner_from_task(&ev.task));
        if let Some(lost) = e.sockets.born(sk, netns, ends, birth, owner, time) {
            // The kernel reused the address of a socket whose close we never saw.
            crate::flows::write(e, lost, None, time, None);
        }
    }
    let s = e.sockets.get_or_adopt(sk, netns, &ev.tuple, &mut e.addrs, time);
    s.state = ev.new_state;
    if ev.new_state == ESTABLISHED && matches!(ev.old_state, SYN_SENT | SYN_RECV) {
        s.established_ns = Some(time);
    }
    let (id, ends, owner, due) = (s.id, s.ends.clone(), s.owner.clone(), crate::sockets::due(s));
    if due || ev.new_state == CLOSE {
        // Closing sockets are announced even if their local port never got known.
        crate::sockets::announce(e, sk, time, ev.new_state == CLOSE);
    }
    let error = (ev.new_state == CLOSE && ev.sk_err != 0).then(|| errno_name(ev.sk_err));
    if e.keep(TableId::StateChanges, &ends, owner.as_deref()) {
        let o = owner_cols(owner.as_ref());
        let row = StateChange {
            host: e.host.clone(),
            time: UtcNanos(time),
            socket_id: id,
            netns,
            family: ends.family,
            laddr: ends.laddr,
            lport: ends.lport,
            raddr: ends.raddr,
            rport: ends.rport,
            old_state: e.name(state_name(ev.old_state)),
            new_state: e.name(state_name(ev.new_state)),
            error: error.map(tcpfr_schema::Str::from),
            pid: o.pid,
            comm: o.comm,
            cgroup_id: o.cgroup_id,
            cgroup: o.cgroup,
            container_id: o.container_id,
        };
        e.rows.state_changes.push(&row);
    }
    if ev.new_state == CLOSE {
        if let Some(s) = e.sockets.remove(sk, time) {
            if !s.listener {
                crate::flows::write(e, s, Some(time), time, Some((ev.old_state, ev.sk_err)));
            }
        }
    }
}
