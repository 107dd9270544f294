//! `tcpfr causes`: retransmitted segments split by cause, and RTO stalls, on a recording
//! whose rows were chosen so that every number of the answer was worked out by hand.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use tcpfr_schema::drops::Drop;
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
];

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
        w.retransmits.push(Retransmit {
            host: Arc::from("web1"),
            time: UtcNanos(T0 + ms * MS),
            socket_id: Some(socket),
            netns: Some(4026531840),
            family: Arc::from("ipv4"),
            laddr: Arc::from("10.0.0.1"),
            lport: 43210 + socket as u16,
            raddr: Arc::from(if socket == 7 { "10.0.0.34" } else { "10.0.0.35" }),
            rport: if socket == 7 { 7777 } else { 5432 },
            kind: Arc::from(kind),
            state: Arc::from(if kind == "syn" { "SYN_SENT" } else { "ESTABLISHED" }),
            segments,
            err: Some(err),
            counted,
            cause: cause.map(Arc::from),
            rto_backoff,
            pid: Some(2167),
            comm: Some(Arc::from(if socket == 7 { "api" } else { "worker" })),
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
            seq_first: 1000,
            seq_last: 2000,
        });
    }
    w.finish(T0 + 30 * SEC).unwrap();
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
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let rows = csv_rows(&ok(&["causes", rec.to_str().unwrap(), "--part", "3", "--format", "csv"]));
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
         the longest RTO stall lasted 1.2 s (backoff up to 2) toward 10.0.0.34:7777.",
        "postgres: of 3 retransmitted segments, 33% other causes, 67% of unknown cause.",
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
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let rows = csv_rows(&ok(&["causes", rec.to_str().unwrap(), "--part", "4", "--format", "csv"]));
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
