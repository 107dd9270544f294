//! sock_ops counters at close, plus each socket's life from the socket table →
//! `flows` rows.

use tcpfr_schema::TableId;
use tcpfr_schema::flows::{counters, handshake, Flow, RawFlowCounters, RawFlowLimits};
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

/// What limited the socket arrives just before its CLOSE state change too.
pub fn handle_limits(e: &mut Enricher, ev: &RawFlowLimits) {
    e.counts.seen[TableId::Flows.index()] += 1;
    let time_ns = e.clock.utc(ev.hdr.ts_ns);
    let netns = (ev.hdr.netns != 0).then_some(ev.hdr.netns);
    let s = e.sockets.get_or_adopt(ev.hdr.sk, netns, &ev.tuple, &mut e.addrs, time_ns);
    s.limits = Some(Box::new(*ev));
}

/// The limit columns of a row, as `ss -ti` computes them (tcp_get_info).
#[derive(Default)]
struct Limits {
    busy_ns: Option<i64>,
    rwnd_limited_ns: Option<i64>,
    sndbuf_limited_ns: Option<i64>,
    delivery_rate_bps: Option<i64>,
    congestion_control: Option<tcpfr_schema::Str>,
    mss: Option<u32>,
    dsack_dups: Option<i64>,
    reord_seen: Option<i64>,
    delivered_ce: Option<i64>,
}

/// Busy, receive-window-limited and send-buffer-limited time in ns: each chrono counter
/// plus the period still running if it is of that kind, in the kernel's own steps
/// (`USEC_PER_SEC / HZ`, truncated), so the values equal what `ss -ti` shows.
fn chrono_ns(l: &RawFlowLimits, hz: u32) -> [i64; 3] {
    let step_ns = (1_000_000 / hz.max(1)) as i64 * 1000;
    let mut out = [0i64; 3];
    for (i, v) in out.iter_mut().enumerate() {
        let mut j = l.chrono_stat[i] as i64;
        if l.chrono_type as usize == i + 1 {
            j += l.jiffies.wrapping_sub(l.chrono_start) as i64;
        }
        *v = j * step_ns;
    }
    out
}

fn limits(l: Option<&RawFlowLimits>, hz: Option<u32>) -> Limits {
    let Some(l) = l else { return Limits::default() };
    let chrono = hz.map(|hz| chrono_ns(l, hz));
    let rate = (l.rate_delivered != 0 && l.rate_interval_us != 0)
        .then(|| l.rate_delivered as i64 * l.mss_cache as i64 * 1_000_000 / l.rate_interval_us as i64 * 8);
    let cc = l.congestion_control.split(|&b| b == 0).next().filter(|n| !n.is_empty());
    Limits {
        busy_ns: chrono.map(|c| c.iter().sum()),
        rwnd_limited_ns: chrono.map(|c| c[1]),
        sndbuf_limited_ns: chrono.map(|c| c[2]),
        delivery_rate_bps: rate,
        congestion_control: cc.map(|n| tcpfr_schema::Str::from(String::from_utf8_lossy(n).as_ref())),
        mss: (l.mss_cache != 0).then_some(l.mss_cache),
        dsack_dups: Some(l.dsack_dups as i64),
        reord_seen: Some(l.reord_seen as i64),
        delivered_ce: Some(l.delivered_ce as i64),
    }
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
    let lim = limits(s.limits.as_deref().filter(|_| close_ns.is_some()), e.hz);
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
        busy_ns: lim.busy_ns,
        rwnd_limited_ns: lim.rwnd_limited_ns,
        sndbuf_limited_ns: lim.sndbuf_limited_ns,
        delivery_rate_bps: lim.delivery_rate_bps,
        congestion_control: lim.congestion_control,
        mss: lim.mss,
        dsack_dups: lim.dsack_dups,
        reord_seen: lim.reord_seen,
        delivered_ce: lim.delivered_ce,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_period_counts_toward_its_own_kind_only() {
        let l = RawFlowLimits { chrono_stat: [100, 50, 0], chrono_type: 2, chrono_start: u32::MAX - 9, jiffies: 15, ..Default::default() };
        // 25 jiffies still running as receive-window limited (across the u32 wrap), 4 ms each at 250 Hz.
        assert_eq!(chrono_ns(&l, 250), [400_000_000, 300_000_000, 0]);
        // 300 Hz: the kernel's step is USEC_PER_SEC / HZ = 3333 µs, truncated.
        assert_eq!(chrono_ns(&l, 300)[0], 100 * 3_333_000);
        let lim = limits(Some(&l), Some(250));
        assert_eq!((lim.busy_ns, lim.rwnd_limited_ns, lim.sndbuf_limited_ns), (Some(700_000_000), Some(300_000_000), Some(0)));
        assert_eq!(limits(Some(&l), None).busy_ns, None);
    }

    #[test]
    fn delivery_rate_is_in_bits_per_second_as_ss_shows_it() {
        let mut cc = [0u8; 16];
        cc[..5].copy_from_slice(b"cubic");
        let l = RawFlowLimits { rate_delivered: 10, rate_interval_us: 1000, mss_cache: 1448, congestion_control: cc, ..Default::default() };
        let lim = limits(Some(&l), Some(250));
        assert_eq!(lim.delivery_rate_bps, Some(10 * 1448 * 1000 * 8));
        assert_eq!(lim.congestion_control.as_deref(), Some("cubic"));
        assert_eq!(limits(Some(&RawFlowLimits::default()), None).delivery_rate_bps, None);
    }
}
