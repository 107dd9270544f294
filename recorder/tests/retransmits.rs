//! Retransmits on a real lossy link, counted in segments, checked against the kernel's
//! own RetransSegs counter of the same namespace and against the packets on the wire.

mod testbed;

use std::time::Duration;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::retransmits::Retransmit;
use testbed::*;

/// Bulk transfer through a link that drops 2% of data segments (not handshakes or
/// ACKs) at the receiver. Offloads stay on: retransmits of TSO packets carry many
/// segments each, which is exactly what must be counted right.
fn bulk_with_loss(tag: &str, index: u8, v6: bool) {
    let _serial = serial();
    let bed = Bed::new(tag, index, v6);
    let port = 5001;
    bed.iptables(
        &bed.server,
        &format!("-A INPUT -p tcp --dport {port} -m length --length 300:65535 -m statistic --mode random --probability 0.02 -j DROP"),
    );
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &[]);
    let before = bed.client.counters();
    let (client_pid, results) = bed.send(port, 30_000_000, 3, &[], Duration::from_secs(120));
    let after = bed.client.counters();
    assert_eq!(results, vec!["ok 30000000"; 3]);
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    let (recording, _dir) = rec.stop();

    let ns = bed.client.inode();
    let retrans_segs = delta(&before, &after, "Tcp.RetransSegs");
    assert!(retrans_segs > 50, "the link must actually lose data: RetransSegs +{retrans_segs}");
    assert_eq!(delta(&before, &after, "TcpExt.TCPSynRetrans"), 0, "no handshake losses in this scenario");

    let rows: Vec<Retransmit> = recording.read_table::<Retransmit>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    let sent: Vec<&Retransmit> = rows.iter().filter(|r| r.counted).collect();
    // Attempts the device took, and the ones it did not (counted or not by the kernel).
    assert!(rows.iter().all(|r| r.counted == (r.err == Some(0)) || r.err != Some(0)));
    let failed = rows.len() - sent.len();
    let segments: i64 = sent.iter().map(|r| r.segments as i64).sum();
    eprintln!(
        "{tag}: RetransSegs +{retrans_segs}; recorded {} retransmit events = {segments} segments, {failed} failed attempts",
        sent.len()
    );
    for r in rows.iter().filter(|r| r.err.unwrap_or(0) != 0) {
        eprintln!("{tag}: failed attempt err={:?} segments={} state={}", r.err, r.segments, r.state);
    }
    eprintln!("{tag}: TCPRetransFail +{}", delta(&before, &after, "TcpExt.TCPRetransFail"));
    // The heart of it: segments, not events, and not failed attempts.
    assert_eq!(segments, retrans_segs, "recorded segments vs the kernel's RetransSegs");
    assert!(sent.iter().all(|r| &*r.kind == "data"));

    // Owned by the sending process, although retransmit timers fire in softirq.
    assert!(rows.iter().all(|r| r.pid == Some(client_pid as i32)), "pid of every row is the client's {client_pid}");
    assert!(rows.iter().all(|r| r.comm.as_deref() == Some("tcpfr-traffic")));

    // Flows: the three connections, with exact counters that agree with the events.
    let flows: Vec<Flow> = recording.read_table::<Flow>().unwrap().into_iter().filter(|f| f.netns == Some(ns)).collect();
    let clients: Vec<&Flow> = flows.iter().filter(|f| f.role.as_deref() == Some("client")).collect();
    assert_eq!(clients.len(), 3, "{flows:#?}");
    for f in &clients {
        assert_eq!(f.handshake.as_deref(), Some("completed"));
        assert_eq!(&*f.counters, "complete");
        assert_eq!(f.pid, Some(client_pid as i32));
        assert_eq!(f.retrans_segs, Some(f.retrans_segs_seen), "sock_ops total_retrans vs tracepoint segments, socket {}", f.socket_id);
        assert!(f.bytes_acked.unwrap() >= 30_000_000, "{f:?}");
        assert!(f.close_time.is_some() && f.duration_ns.unwrap() > 0);
        let per_flow: i64 = sent.iter().filter(|r| r.socket_id == Some(f.socket_id)).map(|r| r.segments as i64).sum();
        assert_eq!(per_flow, f.retrans_segs_seen);
    }
    assert_eq!(clients.iter().map(|f| f.retrans_segs.unwrap()).sum::<i64>(), retrans_segs);

    // The recorder's own host counters of that namespace say the same.
    let hc: i64 = recording
        .read_table::<HostCounters>()
        .unwrap()
        .iter()
        .filter(|h| h.netns == ns)
        .map(|h| h.retrans_segs)
        .sum();
    assert_eq!(hc, retrans_segs, "host_counters.retrans_segs over the recording");

    // Nothing was lost between kernel and disk (ring full, or skipped by the kernel).
    let stats = recording.read_table::<RecorderStats>().unwrap();
    assert_eq!(stats.iter().map(|s| s.events_lost).sum::<i64>(), 0, "{:?}", stats.iter().filter_map(|s| s.note.clone()).collect::<Vec<_>>());
}

#[test]
fn bulk_transfer_with_loss_ipv4() {
    bulk_with_loss("rtx4", 1, false);
}

#[test]
fn bulk_transfer_with_loss_ipv6() {
    bulk_with_loss("rtx6", 2, true);
}
