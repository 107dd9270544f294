//! `tcp_probe` events (already rate-limited in the kernel) → `rtt_samples` rows.

use tcpfr_schema::rtt_samples::{RawRttSample, RttSample, TCP_INFINITE_SSTHRESH};
use tcpfr_schema::UtcNanos;

use crate::enrich::{owner_cols, stream, Enricher};

pub fn handle(e: &mut Enricher, ev: &RawRttSample) {
    e.counts.seen[stream::RTT_SAMPLES] += 1;
    let time = UtcNanos(e.clock.utc(ev.hdr.ts_ns));
    // tcp_probe runs per ACK; its program skips the namespace read to stay cheap.
    let s = e.sockets.get_or_adopt(ev.hdr.sk, None, &ev.tuple, &mut e.addrs);
    let (id, ends, owner) = (s.id, s.ends.clone(), s.owner.clone());
    if !e.keep(stream::RTT_SAMPLES, &ends, owner.as_deref()) {
        return;
    }
    let o = owner_cols(owner.as_ref());
    e.rows.rtt_samples.push(RttSample {
        host: e.host.clone(),
        time,
        socket_id: id,
        family: ends.family,
        laddr: ends.laddr,
        lport: ends.lport,
        raddr: ends.raddr,
        rport: ends.rport,
        srtt_us: ev.srtt_us,
        rttvar_us: (ev.rttvar_us != u32::MAX).then_some(ev.rttvar_us),
        cwnd: ev.snd_cwnd,
        ssthresh: (ev.ssthresh < TCP_INFINITE_SSTHRESH).then_some(ev.ssthresh),
        snd_wnd: ev.snd_wnd,
        rcv_wnd: ev.rcv_wnd,
        bytes_in_flight: ev.bytes_in_flight,
        pid: o.pid,
        comm: o.comm,
        cgroup_id: o.cgroup_id,
        cgroup: o.cgroup,
        container_id: o.container_id,
    });
}
