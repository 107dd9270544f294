//! `tcpfr causes`: retransmitted segments split by cause, and RTO stalls, on a recording
//! whose rows were chosen so that every number of the answer was worked out by hand.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use tcpfr_schema::drops::Drop;
use tcpfr_schema::flows::Flow;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::listeners::Listener;
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::write::{RecordingInfo, RecordingWriter};
use tcpfr_schema::UtcNanos;

const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// 2026-11-23T10:00:00Z
const T0: i64 = 1_795_428_000 * SEC;

/// (ms after T0, socket, kind, segments, err, counted, cause, rto_backoff)
type Row = (i64, i64, &'static str, i32, i32, bool, Option<&'static str>, Option<i32>);

const ROWS: &[Row] = &[
    // Socket 7 → 10.0.0.34:7777: fast recovery, 3 × 2 segments.
    (1_000, 7, "data", 2, 0, true, Some("fast"), None),
    (1_001, 7, "data", 2, 0, true, Some("fast"), None),
    (1_002, 7, "data", 2, 0, true, Some("fast"), None),
    (2_000, 7, "data", 1, 0, true, Some("probe"), None),
    // A stall of three timeouts (0.2, 0.4, 0.8 s apart), then the rest of the window in Loss.
    (10_000, 7, "data", 1, 0, true, Some("timeout"), Some(0)),
    (10_400, 7, "data", 1, 0, true, Some("timeout"), Some(1)),
    (11_200, 7, "data", 1, 0, true, Some("timeout"), Some(2)),
    (11_300, 7, "data", 4, 0, true, Some("timeout"), None),
    // A shorter stall later on the same connection.
    (20_000, 7, "data", 1, 0, true, Some("timeout"), Some(0)),
    (20_400, 7, "data", 1, 0, true, Some("timeout"), Some(1)),
    // Not counted by the kernel (device busy): in no sum.
    (21_000, 7, "data", 5, -16, false, Some("fast"), None),
    // Socket 8 → 10.0.0.35:5432: one of another cause, one recorded before format 1.2, a SYN.
    (3_000, 8, "data", 1, 0, true, Some("other"), None),
    (4_000, 8, "data", 2, 0, true, None, None),
    (5_000, 8, "syn", 1, 0, true, None, None),
    // Socket 9, 10.0.0.40:51000 → 10.0.0.1:6379 (a client in another namespace of the
    // host): 5 segments whose originals the server's side dropped on arrival.
    (3_600, 9, "data", 5, 0, true, Some("fast"), None),
];

/// (local, remote) of each socket's retransmits.
fn ends(socket: i64) -> ((&'static str, u16), (&'static str, u16)) {
    match socket {
        7 => (("10.0.0.1", 43217), ("10.0.0.34", 7777)),
        8 => (("10.0.0.1", 43218), ("10.0.0.35", 5432)),
        _ => (("10.0.0.40", 51000), ("10.0.0.1", 6379)),
    }
}

fn write_recording(dir: &Path) {
    let info = RecordingInfo {
        recording_id: "0196a000-0000-7000-8000-0000000000c5".into(),
        host: "web1".into(),
        kernel: Some("6.18.44".into()),
        boot_id: None,
        clock: ClockInfo { mono_to_utc_offset_ns: 0, max_drift_ns: 0 },
        recorder: RecorderInfo { version: "test".into(), config: serde_json::json!({}) },
        start_ns: T0,
    };
    let mut w = RecordingWriter::create(dir, info, Default::default()).unwrap();
    let mut rows = ROWS.to_vec();
    rows.sort_by_key(|r| r.0);
    for (ms, socket, kind, segments, err, counted, cause, rto_backoff) in rows {
        let ((laddr, lport), (raddr, rport)) = ends(socket);
        w.retransmits.push(Retransmit {
            host: Arc::from("web1"),
            time: UtcNanos(T0 + ms * MS),
            socket_id: Some(socket),
            netns: Some(4026531840),
            family: Arc::from("ipv4"),
            laddr: Arc::from(laddr),
            lport,
            raddr: Arc::from(raddr),
            rport,
            kind: Arc::from(kind),
            state: Arc::from(if kind == "syn" { "SYN_SENT" } else { "ESTABLISHED" }),
            segments,
            // The drops below cover sequence numbers 1000–2000 from 1.1 s on (the
            // NETFILTER_DROP of socket 7) and from 3.1 s on (socket 9's connection).
            seq: Some(if socket == 9 { 1_500 } else { ms as u32 % 10_000 }),
            err: Some(err),
            counted,
            cause: cause.map(Arc::from),
            rto_backoff,
            pid: Some(2167),
            comm: Some(Arc::from(match socket {
                7 => "api",
                8 => "worker",
                _ => "cache-client",
            })),
            cgroup_id: None,
            cgroup: None,
            container_id: None,
        });
    }
    // (ms after T0, socket, port, queue, drops): :6379 fills up and drops 30 + 42; :80
    // has connections waiting but drops none (not listed).
    for (ms, socket, lport, queue, drops) in
        [(1_000, 20, 6379, 129, 30), (2_000, 21, 80, 3, 0), (2_000, 20, 6379, 129, 42), (3_000, 20, 6379, 12, 0)]
    {
        w.listeners.push(Listener {
            host: Arc::from("web1"),
            time: UtcNanos(T0 + ms * MS),
            socket_id: socket,
            netns: Some(4026531840),
            family: Arc::from("ipv4"),
            laddr: Arc::from("0.0.0.0"),
            lport,
            accept_queue: queue,
            accept_queue_max: 128,
            drops,
            pid: Some(900),
            comm: Some(Arc::from(if lport == 80 { "nginx" } else { "redis-server" })),
        });
    }
    // (ms after T0, direction, reason, peer, port, packets): 130 + 20 firewall drops
    // toward 10.0.0.34:7777 on two connections, 5 received ones with a zero window.
    for (ms, dir, reason, raddr, (lport, rport), packets) in [
        (1_500, "out", "NETFILTER_DROP", "10.0.0.34", (43217, 7777), 130),
        (2_500, "out", "NETFILTER_DROP", "10.0.0.34", (43219, 7777), 20),
        (3_500, "in", "TCP_ZEROWINDOW", "10.0.0.40", (6379, 51000), 5),
    ] {
        w.drops.push(Drop {
            host: Arc::from("web1"),
            time: UtcNanos(T0 + ms * MS),
            first_time: UtcNanos(T0 + (ms - 400) * MS),
            netns: Some(4026531840),
            family: Arc::from("ipv4"),
            laddr: Arc::from("10.0.0.1"),
            lport,
            raddr: Arc::from(raddr),
            rport,
            direction: Arc::from(dir),
            reason: Arc::from(reason),
            packets,
            socket_id: None,
            pid: None,
            comm: None,
            seq_first: 1000,
            seq_last: 2000,
        });
    }
    // (socket, busy, rwnd limited, sndbuf limited, DSACKed, retransmitted): api's sender
    // waited for the receiver's window 60% of 2 s, and 4 of its 16 retransmitted segments
    // were spurious; worker's for its own send buffer half of 1 s. The third was never busy.
    for (socket, busy, rwnd, sndbuf, dsack, retrans) in
        [(7, 2_000 * MS, 1_200 * MS, 0, 4, 16), (8, 1_000 * MS, 0, 500 * MS, 0, 3), (9, 0, 0, 0, 0, 5)]
    {
        w.flows.push(flow(socket, busy, rwnd, sndbuf, dsack, retrans));
    }
    // The recorder recorded drops (so "no drop matched" means none happened here).
    w.recorder_stats.push(RecorderStats {
        host: Arc::from("web1"),
        time: UtcNanos(T0 + SEC),
        interval_ns: SEC,
        stream: Arc::from("drops"),
        events_seen: 155,
        events_lost: 0,
        events_filtered: 0,
        rows_written: 3,
        rows_dropped: 0,
        gap_start: None,
        gap_end: None,
        note: None,
        shipped_files: None,
        shipped_bytes: None,
        unshipped_files: None,
        unshipped_bytes: None,
        ship_errors: None,
        ship_lost_files: None,
        ship_lost_bytes: None,
    });
    w.finish(T0 + 30 * SEC).unwrap();
}

fn flow(socket: i64, busy: i64, rwnd: i64, sndbuf: i64, dsack: i64, retrans: i64) -> Flow {
    let ((laddr, lport), (raddr, rport)) = ends(socket);
    Flow {
        host: Arc::from("web1"),
        time: UtcNanos(T0 + 25 * SEC),
        socket_id: socket,
        netns: Some(4026531840),
        family: Arc::from("ipv4"),
        laddr: Arc::from(laddr),
        lport,
        raddr: Arc::from(raddr),
        rport,
        role: Some(Arc::from("client")),
        open_time: Some(UtcNanos(T0)),
        close_time: Some(UtcNanos(T0 + 25 * SEC)),
        duration_ns: Some(25 * SEC),
        handshake: Some(Arc::from("completed")),
        handshake_ns: Some(MS),
        syn_retransmits: 0,
        last_state: Arc::from("FIN_WAIT2"),
        error: None,
        counters: Arc::from("complete"),
        segs_out: Some(1000),
        segs_in: Some(500),
        data_segs_out: Some(999),
        data_segs_in: Some(0),
        retrans_segs: Some(retrans),
        retrans_segs_seen: retrans,
        bytes_acked: Some(1_000_000),
        bytes_received: Some(0),
        srtt_us: Some(1000),
        min_rtt_us: Some(100),
        busy_ns: Some(busy),
        rwnd_limited_ns: Some(rwnd),
        sndbuf_limited_ns: Some(sndbuf),
        delivery_rate_bps: Some(8_000_000),
        congestion_control: Some(Arc::from("cubic")),
        mss: Some(1448),
        dsack_dups: Some(dsack),
        reord_seen: Some(0),
        delivered_ce: Some(0),
        pid: Some(2167),
        comm: Some(Arc::from(if socket == 7 { "api" } else { "worker" })),
        cgroup_id: None,
        cgroup: None,
        container_id: None,
    }
}

#[test]
fn causes_split_segments_and_find_each_stall() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let rec = rec.to_str().unwrap();

    let by_cause = csv_rows(&ok(&["causes", rec, "--by", "peer", "--part", "1", "--format", "csv"]));
    // peer, retrans_segs, timeout, fast, probe, other, unknown, connections
    assert_eq!(
        by_cause,
        vec![
            vec!["10.0.0.34:7777", "16", "9", "6", "1", "0", "0", "1"],
            vec!["10.0.0.1:6379", "5", "0", "5", "0", "0", "0", "1"],
            vec!["10.0.0.35:5432", "3", "0", "0", "0", "1", "2", "1"],
        ]
    );

    let stalls = csv_rows(&ok(&["causes", rec, "--part", "2", "--format", "csv"]));
    // service, peer, process, first_timeout, timeouts, max_backoff, stalled_s
    let cells: Vec<Vec<&str>> = stalls.iter().map(|r| r.iter().skip(1).map(String::as_str).collect()).collect();
    assert_eq!(
        cells,
        vec![
            vec!["10.0.0.34:7777", "api", "2026-11-23T10:00:10Z", "3", "2", "1.2"],
            vec!["10.0.0.34:7777", "api", "2026-11-23T10:00:20Z", "2", "1", "0.4"],
        ],
        "{stalls:?}"
    );
}

#[test]
fn causes_name_the_listeners_that_dropped() {
    let rows = part("3", &[]);
    // listener, process, drops, max_waiting, queue_limit, first_drop, last_drop
    assert_eq!(
        rows,
        vec![vec!["0.0.0.0:6379", "redis-server", "72", "129", "128", "2026-11-23T10:00:01Z", "2026-11-23T10:00:02Z"]],
        "{rows:?}"
    );
}

/// The report says the same in words (numbers as in the two tests above).
#[test]
fn the_report_names_causes_and_listeners() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let text = ok(&["report", rec.to_str().unwrap()]);
    for line in [
        "api: of 16 retransmitted segments, 56% after RTO timeouts, 38% fast retransmits, 6% tail loss probes; \
         the longest RTO stall lasted 1.2 s (backoff up to 2) toward 10.0.0.34:7777; \
         6 of them resent because this host dropped the original (NETFILTER_DROP as it left).",
        "redis: of 5 retransmitted segments, 100% fast retransmits; \
         5 of them resent because this host dropped the original (TCP_ZEROWINDOW on arrival).",
        "postgres: of 3 retransmitted segments, 33% other causes, 67% of unknown cause; \
         none after a drop on this host: lost on the path toward 10.0.0.35.",
        "api: the receiver's window held the sender back 60% of its 2 s busy time (the peer reads slowly or its \
         receive buffer is small); 4 retransmitted segments (25%) were not needed: the peer already had them (DSACK).",
        "postgres: its own send buffer held the sender back 50% of its 1 s busy time (SO_SNDBUF or tcp_wmem too small \
         for the path).",
        "Listener 0.0.0.0:6379 (redis-server) dropped 72 connection attempts: accept queue full (limit 128, up to 129 waiting).",
        "This host dropped 155 TCP packets itself: 150 NETFILTER_DROP sent to 10.0.0.34 port 7777; \
         5 TCP_ZEROWINDOW received from 10.0.0.40 port 6379.",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(!text.contains(":80 "), "a listener that dropped nothing is not named");
}

#[test]
fn causes_count_what_this_host_dropped() {
    let rows = part("4", &[]);
    // reason, direction, peer, port, packets, connections, first_drop, last_drop
    assert_eq!(
        rows,
        vec![
            vec!["NETFILTER_DROP", "out", "10.0.0.34", "7777", "150", "2", "2026-11-23T10:00:01.100Z", "2026-11-23T10:00:02.500Z"],
            vec!["TCP_ZEROWINDOW", "in", "10.0.0.40", "6379", "5", "1", "2026-11-23T10:00:03.100Z", "2026-11-23T10:00:03.500Z"],
        ],
        "{rows:?}"
    );
}

#[test]
fn causes_say_what_limited_connections() {
    let rows = part("5", &["--by", "peer"]);
    // peer, connections, busy_s, receiver_window_pct, send_buffer_pct, network_pct, spurious_segs, spurious_pct
    assert_eq!(
        rows,
        vec![
            vec!["10.0.0.34:7777", "1", "2.0", "60.0", "0.0", "40.0", "4", "25.0"],
            vec!["10.0.0.35:5432", "1", "1.0", "0.0", "50.0", "50.0", "0", "0.0"],
        ],
        "{rows:?}"
    );
}

#[test]
fn causes_match_retransmits_to_this_hosts_drops() {
    let rows = part("6", &["--by", "peer"]);
    // peer, reason, direction, retrans_segs, connections, first_retransmit, last_retransmit:
    // socket 7's rows at 2.0 s (seq 2000), 11.2 s (1200) and 11.3 s (1300, 4 segments)
    // fall in the firewall drop's range 1000–2000 after it began at 1.1 s (the ones at
    // 1.000–1.002 s came before it, the others have seq 0–400 or 3000+); socket 9's
    // seq 1500 in the receiving side's zero-window drop (reversed ends).
    assert_eq!(
        rows,
        vec![
            vec!["10.0.0.34:7777", "NETFILTER_DROP", "out", "6", "1", "2026-11-23T10:00:02Z", "2026-11-23T10:00:11.300Z"],
            vec!["10.0.0.1:6379", "TCP_ZEROWINDOW", "in", "5", "1", "2026-11-23T10:00:03.600Z", "2026-11-23T10:00:03.600Z"],
        ],
        "{rows:?}"
    );
}

/// `tcpfr causes REC --part N [extra…] --format csv` on a recording written for it.
fn part(n: &str, extra: &[&str]) -> Vec<Vec<String>> {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let mut args = vec!["causes", rec.to_str().unwrap(), "--part", n, "--format", "csv"];
    args.extend_from_slice(extra);
    csv_rows(&ok(&args))
}

/// `tcpfr report REC --html` of the recording, as text.
fn html_report() -> String {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let page = tmp.path().join("r.html");
    ok(&["report", rec.to_str().unwrap(), "--html", page.to_str().unwrap()]);
    std::fs::read_to_string(&page).unwrap()
}

/// The HTML report charts what this host dropped, by reason and direction, and says so
/// when a recording has no drops.
#[test]
fn the_html_report_charts_local_drops() {
    let html = html_report();
    let section = &html[html.find("<section id=\"drops\"").expect("a drops section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("id=\"chart-drops\"") && !section.contains("drops-nodata"), "{section}");
    for series in ["NETFILTER_DROP (out)", "TCP_ZEROWINDOW (in)"] {
        assert!(section.contains(series), "{series} not in {section}");
    }
    // A recording of format 1.1: no drops, said in words.
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old.html");
    ok(&["report", sample("refused").to_str().unwrap(), "--html", old.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&old).unwrap().contains("id=\"drops-nodata\""));
}

/// The topology picture: one edge per service and peer, coloured by its share of
/// retransmitted segments, its tooltip saying the numbers and the dominant cause (the
/// flows above sent 1,000 segments and 1,000,000 bytes each).
#[test]
fn the_html_report_draws_the_topology() {
    let html = html_report();
    let svg = &html[html.find("id=\"chart-topology\"").expect("a topology chart")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    for (service, peer, retrans, color, words) in [
        ("api", "10.0.0.34", 16, "#f28e2b", "api → 10.0.0.34: 1,000,000 bytes, 16 of 1,000 segments retransmitted (1.60%), mostly timeouts (RTO)"),
        ("redis", "10.0.0.1", 5, "#edc948", "redis → 10.0.0.1: 1,000,000 bytes, 5 of 1,000 segments retransmitted (0.50%), mostly fast retransmits"),
        ("postgres", "10.0.0.35", 3, "#edc948", "postgres → 10.0.0.35: 1,000,000 bytes, 3 of 1,000 segments retransmitted (0.30%)<"),
    ] {
        let at = svg.find(&format!("data-service=\"{service}\" data-peer=\"{peer}\" data-retrans=\"{retrans}\"")).unwrap_or_else(|| panic!("{service} → {peer} in {svg}"));
        let edge = &svg[at..at + svg[at..].find("</path>").unwrap()];
        assert!(edge.contains(&format!("stroke=\"{color}\"")), "{edge}");
        assert!(edge.contains(words), "{words:?} not in {edge}");
    }
    assert_eq!(svg.matches("<path class=\"edge\"").count(), 3, "{svg}");
}
