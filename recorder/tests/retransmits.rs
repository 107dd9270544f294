//! Retransmits on a real lossy link, counted in segments, checked against the kernel's
//! own RetransSegs counter of the same namespace and against the packets on the wire.

mod testbed;

use std::collections::HashMap;
use std::time::Duration;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::read::Recording;
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

    check_causes(tag, &rows, &before, &after);

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

/// Retransmitted segments the kernel counted (RetransSegs) without a row, in a test
/// where no attempt failed while transmitting (so what was counted is what was sent).
/// Now and then (about one blackout run in fifteen, once in CI's paced bursts; never
/// seen with `--rtt-per-ack`, which has no socket walk) the kernel hits the
/// tracepoint (ftrace beside it sees it) but does not run the program, with no
/// recursion miss counted. The recorder finds each such gap from the socket's
/// total_retrans: the recording accounts for every unseen segment, per connection
/// (`flows`) and in `recorder_stats`. Causes are then checked only where nothing is
/// unseen.
fn unseen(tag: &str, recording: &Recording, ns: u32, before: &HashMap<String, i64>, after: &HashMap<String, i64>) -> i64 {
    assert_eq!(delta(before, after, "TcpExt.TCPRetransFail"), 0, "{tag}: no attempt failed while transmitting");
    let rows: Vec<Retransmit> = recording.read_table::<Retransmit>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    let sent: i64 = rows.iter().filter(|r| r.err == Some(0)).map(|r| r.segments as i64).sum();
    let unseen = delta(before, after, "Tcp.RetransSegs") - sent;
    let flows = recording.read_table::<Flow>().unwrap();
    let accounted: i64 = flows.iter().filter(|f| f.netns == Some(ns)).filter_map(|f| f.retrans_segs.map(|r| r - f.retrans_segs_seen)).sum();
    assert_eq!(unseen, accounted, "{tag}: the recording's flows account for every retransmitted segment without a row");
    let stats = recording.read_table::<RecorderStats>().unwrap();
    let said = stats.iter().filter(|s| &*s.stream == "retransmits" && s.note.as_deref().is_some_and(|n| n.contains("without an event")));
    assert!(unseen == 0 || said.count() > 0, "{tag}: recorder_stats says that segments came without an event");
    if unseen > 0 {
        eprintln!("{tag}: {unseen} retransmitted segments the kernel counted have no row (accounted for in flows)");
    }
    unseen
}

/// Segments sent (`err` = 0) with a given cause.
fn sent_segments(rows: &[Retransmit], cause: &str) -> i64 {
    rows.iter().filter(|r| r.cause.as_deref() == Some(cause) && r.err == Some(0)).map(|r| r.segments as i64).sum()
}

/// `retransmits.cause` against the kernel's per-cause counters of the namespace: the
/// kernel adds each fast retransmit's segments to TCPFastRetrans, the ones sent in Loss
/// after the timer's own to TCPSlowStartRetrans, and counts the timer's retransmits in
/// TCPTimeouts; a tail loss probe is one of TCPLossProbes (which also counts probes
/// that sent new data).
///
fn check_causes(tag: &str, rows: &[Retransmit], before: &HashMap<String, i64>, after: &HashMap<String, i64>) {
    let d = |k: &str| delta(before, after, &format!("TcpExt.{k}"));
    let data: Vec<&Retransmit> = rows.iter().filter(|r| &*r.kind == "data").collect();
    assert!(data.iter().all(|r| r.cause.is_some()), "every data retransmit has a cause");
    // The timer's retries: of data (in Loss) and of SYNs (IPv6 neighbour discovery can
    // hold the first SYN in the host queue past the SYN timer: a failed SYN retry).
    let timer: Vec<&Retransmit> = rows.iter().filter(|r| r.rto_backoff.is_some()).collect();
    assert!(timer.iter().all(|r| r.cause.as_deref() == Some("timeout") || &*r.kind == "syn"));
    assert!(rows.iter().filter(|r| &*r.kind == "syn").all(|r| r.rto_backoff.is_some() && r.cause.is_none()));
    let timer_segments: i64 = timer.iter().filter(|r| r.err == Some(0) && &*r.kind == "data").map(|r| r.segments as i64).sum();
    let probes = data.iter().filter(|r| r.cause.as_deref() == Some("probe")).count() as i64;
    let (fast, timeout, other) = (sent_segments(rows, "fast"), sent_segments(rows, "timeout"), sent_segments(rows, "other"));
    eprintln!(
        "{tag}: causes in segments: fast {fast} (TCPFastRetrans +{}), timeout {timeout} of which {} by the timer \
         (TCPSlowStartRetrans +{}, TCPTimeouts +{}), probe rows {probes} (TCPLossProbes +{}), other {other}",
        d("TCPFastRetrans"),
        timer.len(),
        d("TCPSlowStartRetrans"),
        d("TCPTimeouts"),
        d("TCPLossProbes"),
    );
    assert_eq!(fast, d("TCPFastRetrans"), "fast segments vs TCPFastRetrans");
    assert_eq!(timeout - timer_segments, d("TCPSlowStartRetrans"), "timeout segments after the timer's own vs TCPSlowStartRetrans");
    assert_eq!(timer.len() as i64, d("TCPTimeouts"), "the timer's retries vs TCPTimeouts");
    assert!(probes <= d("TCPLossProbes"), "probes vs TCPLossProbes");
    assert_eq!(other, 0, "nothing here is retransmitted for another reason");
}

/// A path that loses everything for two seconds in the middle of a transfer: the
/// retransmission timer fires again and again, each time after twice the wait, and each
/// of its retransmits says how far it had backed off.
#[test]
fn a_blackout_is_a_stall_of_doubling_timeouts() {
    let _serial = serial();
    let bed = Bed::new("rto", 3, false);
    let port = 5003;
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &[]);
    let before = bed.client.counters();
    // Paced at 250 MB/s: about 6 s with the stall; the pacer catches up after it.
    let client = bed.client.spawn(&[traffic_bin(), "send", "--to", &bed.server_addr(port), "--bytes", "1500000000", "--rate", "250000000"]);
    std::thread::sleep(Duration::from_millis(800));
    let blackout = format!("-I INPUT -p tcp --dport {port} -j DROP");
    bed.iptables(&bed.server, &blackout);
    std::thread::sleep(Duration::from_secs(2));
    bed.iptables(&bed.server, &blackout.replacen("-I", "-D", 1));
    // The next timer fires at most 2 × the last wait later (~1.6 s), then data flows.
    assert_eq!(client.finish(Duration::from_secs(60)).trim(), "ok 1500000000");
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    let after = bed.client.counters();
    let (recording, _dir) = rec.stop();

    let ns = bed.client.inode();
    let rows: Vec<Retransmit> = recording.read_table::<Retransmit>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    let timer: Vec<&Retransmit> = rows.iter().filter(|r| r.rto_backoff.is_some()).collect();
    let all: Vec<i32> = timer.iter().map(|r| r.rto_backoff.unwrap()).collect();
    // The blackout's stall: from the first timeout to the next one that starts over (a
    // CPU-bound veth pair drops packets of its own, so a later short stall may follow).
    assert!(!all.is_empty(), "the blackout made the retransmission timer fire");
    let stall = 1 + all.iter().skip(1).position(|&b| b == 0).unwrap_or(all.len() - 1);
    let (backoffs, timer) = (&all[..stall], &timer[..stall]);
    let gaps: Vec<i64> = timer.windows(2).map(|w| w[1].time.0 - w[0].time.0).collect();
    eprintln!("rto: timer retransmits with backoff {all:?}, the first stall's {gaps:?} ns apart; TCPTimeouts +{}", delta(&before, &after, "TcpExt.TCPTimeouts"));
    // 200 ms minimum RTO: 0.2 + 0.4 + 0.8 s pass within the blackout, the fourth (1.6 s)
    // after it, unless a slower RTO estimate pushed it past.
    let unseen = unseen("rto", &recording, ns, &before, &after);
    assert!(backoffs.len() >= 3 || unseen > 0, "{all:?}");
    assert!(backoffs.windows(2).all(|w| w[1] > w[0]), "one stall, backing off: {all:?}");
    if unseen > 0 {
        return;
    }
    assert_eq!(backoffs, (0..backoffs.len() as i32).collect::<Vec<_>>(), "one stall, backing off step by step");
    for w in gaps.windows(2) {
        let ratio = w[1] as f64 / w[0] as f64;
        assert!((1.8..2.2).contains(&ratio), "each wait doubles the one before: {gaps:?}");
    }
    check_causes("rto", &rows, &before, &after);
}

/// Paced writes (64 KiB bursts, then idle): a lost last segment of a burst has no
/// later segment to reveal it, so the kernel sends it again as a tail loss probe
/// about two round trips later. (Drops inside a burst still make fast retransmits:
/// the kernel also pushes in mid-burst.)
#[test]
fn lost_tails_of_bursts_are_probed() {
    let _serial = serial();
    let bed = Bed::new("tlp", 4, false);
    let port = 5004;
    // The last segment of a write carries PSH: drop a tenth of those (wire-sized
    // packets, so a drop takes one segment, not a coalesced train).
    bed.offloads_off();
    bed.iptables(
        &bed.server,
        &format!("-A INPUT -p tcp --dport {port} --tcp-flags PSH PSH -m length --length 300:65535 -m statistic --mode random --probability 0.3 -j DROP"),
    );
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &[]);
    let before = bed.client.counters();
    let (_, results) = bed.send(port, 12_000_000, 1, &["--rate", "4000000"], Duration::from_secs(60));
    assert_eq!(results, vec!["ok 12000000"]);
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    let after = bed.client.counters();
    let (recording, _dir) = rec.stop();

    let ns = bed.client.inode();
    let rows: Vec<Retransmit> = recording.read_table::<Retransmit>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    let probes = rows.iter().filter(|r| r.cause.as_deref() == Some("probe")).count();
    eprintln!("tlp: {probes} probe rows of {} retransmits", rows.len());
    // About 190 bursts, three in ten tails dropped: ten or more probes each run here.
    assert!(probes >= 3, "bursts lost their last segment: {probes} probes");
    if unseen("tlp", &recording, ns, &before, &after) > 0 {
        return;
    }
    check_causes("tlp", &rows, &before, &after);
    // Nothing waits unsent when a paced writer's probe fires, so every probe the
    // kernel counted is a retransmit.
    assert_eq!(probes as i64, delta(&before, &after, "TcpExt.TCPLossProbes"), "probe rows vs TCPLossProbes");
}
