//! Samples of the socket walk (or, with `--rtt-per-ack`, of `tcp_probe`, already
//! rate-limited in the kernel) → `rtt_samples` rows.

use tcpfr_schema::TableId;
use tcpfr_schema::rtt_samples::{RawRttSample, RttSample, TCP_INFINITE_SSTHRESH};
use tcpfr_schema::UtcNanos;

use crate::enrich::Enricher;

pub fn handle(e: &mut Enricher, ev: &RawRttSample) {
    e.counts.seen[TableId::RttSamples.index()] += 1;
    let time_ns = e.clock.utc(ev.hdr.ts_ns);
    let time = UtcNanos(time_ns);
    // tcp_probe runs per ACK; its program skips the namespace read (0) to stay cheap.
    let netns = (ev.hdr.netns != 0).then_some(ev.hdr.netns);
    let s = e.sockets.get_or_adopt(ev.hdr.sk, netns, &ev.tuple, &mut e.addrs, time_ns);
    let id = s.id;
    let due = crate::sockets::due(s);
    // Filters decide on the socket's addresses and owner; the sample carries neither.
    let keep = e.filter.is_empty() || e.filter.keeps(&s.ends, s.owner.as_deref());
    if due {
        crate::sockets::announce(e, ev.hdr.sk, time_ns, false);
    }
    if !e.enabled[TableId::RttSamples.index()] {
        return;
    }
    if !keep {
        e.counts.filtered[TableId::RttSamples.index()] += 1;
        return;
    }
    e.rows.rtt_samples.push(&RttSample {
        host: e.host.clone(),
        time,
        socket_id: id,
        srtt_us: ev.srtt_us,
        rttvar_us: (ev.rttvar_us != u32::MAX).then_some(ev.rttvar_us),
        cwnd: ev.snd_cwnd,
        ssthresh: (ev.ssthresh < TCP_INFINITE_SSTHRESH).then_some(ev.ssthresh),
        snd_wnd: ev.snd_wnd,
        rcv_wnd: ev.rcv_wnd,
        bytes_in_flight: ev.bytes_in_flight,
    });
}
