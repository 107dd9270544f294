//! sock_ops counters at close, plus each socket's life from the socket table →
//! `flows` rows.

use tcpfr_schema::TableId;
use tcpfr_schema::flows::{counters, handshake, Flow, RawFlowCounters};
use tcpfr_schema::raw::tcp_state::{SYN_RECV, SYN_SENT};
use tcpfr_schema::UtcNanos;

use crate::enrich::{owner_cols, Enricher};
use crate::socket_table::{errno_name, state_name, Socket};

/// Counters arrive just before the CLOSE state change of the same socket.
pub fn handle_counters(e: &mut Enricher, ev: &RawFlowCounters) {
    e.counts.seen[TableId::Flows.index()] += 1;
    let time_ns = e.clock.utc(ev.hdr.ts_ns);
    let s = e.sockets.get_or_adopt(ev.hdr.sk, None, &ev.tuple, &mut e.addrs, time_ns);
    s.counters = Some(Box::new(*ev));
}

/// How a connection's handshake went, from what we saw of it.
fn handshake_of(s: &Socket, closed_from: Option<(u8, i32)>) -> Option<&'static str> {
    if s.established_ns.is_some() {
        return Some(handshake::COMPLETED);
    }
    let (old, err) = closed_from?;
    let err = err.abs();
    match (s.role, old) {
        // A refusal or an ICMP error came from the network: the firewall let a SYN out.
        (Some("client"), SYN_SENT) if s.syn_filtered && ![libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ENETUNREACH].contains(&err) => {
            Some(handshake::FILTERED)
        }
        (Some("client"), SYN_SENT) => Some(match err {
            libc::ETIMEDOUT => handshake::TIMEOUT,
            libc::ECONNREFUSED => handshake::REFUSED,
            libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN => handshake::UNREACHABLE,
            0 => handshake::ABANDONED,
            _ => handshake::FAILED,
        }),
        (Some("server"), SYN_RECV) => Some(if s.reset_received {
            handshake::RESET
        } else if err == libc::ETIMEDOUT {
            handshake::TIMEOUT
        } else {
            handshake::FAILED
        }),
        _ => None,
    }
}

/// Client side: connect() → ESTABLISHED, or → CLOSE if it never got there.
fn handshake_wait(s: &Socket, close_ns: Option<i64>) -> Option<i64> {
    if s.role != Some("client") {
        return None;
    }
    let open = s.open_ns?;
    match s.established_ns {
        Some(t) => Some(t - open),
        None => close_ns.map(|c| c - open),
    }
}

/// Writes the `flows` row of a socket that closed at `close_ns` (None: we do not know
/// when — still open at the end, or its close was missed). `closed_from` is the state
/// it left and `sk_err` when we saw it reach CLOSE.
pub fn write(e: &mut Enricher, s: Socket, close_ns: Option<i64>, row_time: i64, closed_from: Option<(u8, i32)>) {
    let c = s.counters.as_deref().copied().filter(|_| close_ns.is_some());
    if let (Some(c), Some(last)) = (c.filter(|_| e.total_retrans_known), s.total_retrans) {
        crate::retransmits::note_unseen(e, c.total_retrans.wrapping_sub(last));
    }
    if !e.keep(TableId::Flows, &s.ends, s.owner.as_deref()) {
        return;
    }
    let counters_note = if s.pre_existing {
        counters::OPENED_BEFORE_RECORDING
    } else if close_ns.is_none() {
        counters::OPEN_AT_END
    } else if c.is_some() {
        counters::COMPLETE
    } else {
        counters::NOT_TRACKED
    };
    let last_state = match closed_from {
        Some((old, _)) => old,
        None => s.state,
    };
    let error = closed_from.and_then(|(_, err)| (err != 0).then(|| errno_name(err)));
    let o = owner_cols(s.owner.as_ref());
    let row = Flow {
        host: e.host.clone(),
        time: UtcNanos(row_time),
        socket_id: s.id,
        netns: s.netns,
        family: s.ends.family.clone(),
        laddr: s.ends.laddr.clone(),
        lport: s.ends.lport,
        raddr: s.ends.raddr.clone(),
        rport: s.ends.rport,
        role: s.role.map(|r| e.name(r)),
        open_time: s.open_ns.map(UtcNanos),
        close_time: close_ns.map(UtcNanos),
        duration_ns: s.open_ns.zip(close_ns).map(|(o, c)| c - o),
        handshake: handshake_of(&s, closed_from).map(|h| e.name(h)),
        handshake_ns: handshake_wait(&s, close_ns),
        syn_retransmits: s.syn_retransmits,
        last_state: e.name(state_name(last_state)),
        error: error.map(tcpfr_schema::Str::from),
        counters: e.name(counters_note),
        segs_out: c.map(|c| c.segs_out as i64),
        segs_in: c.map(|c| c.segs_in as i64),
        data_segs_out: c.map(|c| c.data_segs_out as i64),
        data_segs_in: c.map(|c| c.data_segs_in as i64),
        retrans_segs: c.map(|c| c.total_retrans as i64),
        retrans_segs_seen: s.retrans_segs_seen,
        bytes_acked: c.map(|c| c.bytes_acked as i64),
        bytes_received: c.map(|c| c.bytes_received as i64),
        // No RTT sample yet: the kernel has srtt 0 and min_rtt ~0.
        srtt_us: c.and_then(|c| (c.srtt_us != 0).then_some(c.srtt_us)),
        min_rtt_us: c.and_then(|c| (c.rtt_min_us != u32::MAX).then_some(c.rtt_min_us)),
        pid: o.pid,
        comm: o.comm,
        cgroup_id: o.cgroup_id,
        cgroup: o.cgroup,
        container_id: o.container_id,
    };
    e.rows.flows.push(&row);
}

/// At the end of a recording: a row for every connection still open.
pub fn write_open_at_end(e: &mut Enricher, end_ns: i64) {
    let open: Vec<Socket> = e.sockets.drain().filter(|s| !s.listener).collect();
    for s in open {
        write(e, s, None, end_ns, None);
    }
}
