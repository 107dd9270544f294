//! `tcp_retransmit_skb` / `tcp_retransmit_synack` events → `retransmits` rows.

use tcpfr_schema::TableId;
use tcpfr_schema::raw::kind;
use tcpfr_schema::retransmits::{cause, retransmit_kind, RawRetransmit, Retransmit};
use tcpfr_schema::UtcNanos;

use crate::enrich::{nonzero, owner_cols, Enricher};
use crate::socket_table::{state_name, Socket};

/// Whether the kernel counted this attempt in RetransSegs / total_retrans, and how many
/// segments it counted before it without an event. Exact when we know the socket's
/// total_retrans before it (it grows by the attempt's segments if counted; by more if
/// earlier attempts came without an event); otherwise from the error: attempts given
/// up before counting return EBUSY (original still queued), EAGAIN (no window), ENOMEM
/// or EHOSTUNREACH (no route).
fn counted(s: &mut Socket, ev: &RawRetransmit, exact: bool) -> (bool, u32) {
    let by_err = || ![-libc::EBUSY, -libc::EAGAIN, -libc::ENOMEM, -libc::EHOSTUNREACH].contains(&ev.err);
    let result = match (exact, s.total_retrans) {
        (true, Some(prev)) => {
            let grew = ev.total_retrans.wrapping_sub(prev);
            let counted = grew != 0 && grew >= ev.segs;
            (counted, if counted { grew - ev.segs } else { grew })
        }
        _ => (by_err(), 0),
    };
    if exact {
        s.total_retrans = Some(ev.total_retrans);
    }
    result
}

/// Counts `segments` the kernel retransmitted (a socket's total_retrans grew by them)
/// without a `tcp_retransmit_skb` event: now and then the kernel hits the tracepoint
/// (ftrace on it sees the hit) without running the program, and counts no recursion
/// miss. A shrinking count (a wrap-around) is not one.
pub fn note_unseen(e: &mut Enricher, segments: u32) {
    if segments > 0 && segments < 1 << 30 {
        e.counts.unseen_retrans_segs += segments as u64;
        e.counts.unseen_retrans_gaps += 1;
    }
}

pub fn handle(e: &mut Enricher, ev: &RawRetransmit) {
    e.counts.seen[TableId::Retransmits.index()] += 1;
    let time_ns = e.clock.utc(ev.hdr.ts_ns);
    let time = UtcNanos(time_ns);
    let netns = nonzero(ev.hdr.netns);
    let exact = e.total_retrans_known;
    let (socket_id, ends, owner, counted, due) = if ev.hdr.kind == kind::RETRANSMIT_SYNACK {
        // The request socket has no id yet; the connection it becomes gets the count.
        // SYN-ACKs are only traced when sent (and then counted).
        let ends = e.addrs.endpoints(&ev.tuple);
        let owner = netns.and_then(|ns| {
            e.sockets.synack_retransmit(ns, &ends);
            e.sockets.listener_owner(ns, ends.lport)
        });
        (None, ends, owner, true, false)
    } else {
        let s = e.sockets.get_or_adopt(ev.hdr.sk, netns, &ev.tuple, &mut e.addrs, time_ns);
        let (counted, unseen) = counted(s, ev, exact);
        // Netfilter's DROP on our own output returns EPERM to the sender.
        if ev.kind == retransmit_kind::SYN && ev.has_err != 0 && ev.err == -libc::EPERM {
            s.syn_filtered = true;
        }
        if counted {
            s.retrans_segs_seen += ev.segs as i64;
            if ev.kind == retransmit_kind::SYN {
                s.syn_retransmits += 1;
            }
        }
        let r = (Some(s.id), s.ends.clone(), s.owner.clone(), counted, crate::sockets::due(s));
        note_unseen(e, unseen);
        r
    };
    if due {
        crate::sockets::announce(e, ev.hdr.sk, time_ns, false);
    }
    if !e.keep(TableId::Retransmits, &ends, owner.as_deref()) {
        return;
    }
    let o = owner_cols(owner.as_ref());
    let row = Retransmit {
        host: e.host.clone(),
        time,
        socket_id,
        netns,
        family: ends.family,
        laddr: ends.laddr,
        lport: ends.lport,
        raddr: ends.raddr,
        rport: ends.rport,
        kind: e.name(retransmit_kind::name(ev.kind)),
        state: e.name(state_name(ev.state)),
        segments: ev.segs as i32,
        seq: (ev.has_seq == 1).then_some(ev.seq),
        err: (ev.has_err != 0).then_some(ev.err),
        counted,
        cause: cause::of(ev).map(|c| e.name(c)),
        rto_backoff: cause::rto_backoff(ev).map(i32::from),
        pid: o.pid,
        comm: o.comm,
        cgroup_id: o.cgroup_id,
        cgroup: o.cgroup,
        container_id: o.container_id,
    };
    e.rows.retransmits.push(&row);
}
