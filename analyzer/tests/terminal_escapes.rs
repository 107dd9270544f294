//! Strings that users of a recorded host chose (process names, the host name, notes)
//! must not drive the terminal of whoever reads tcpfr's output: in the formats for
//! people they show as escapes, in CSV/JSON they stay exact.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::write::{RecordingInfo, RecordingWriter};
use tcpfr_schema::UtcNanos;

const SEC: i64 = 1_000_000_000;
/// 2026-11-23T10:00:00Z
const T0: i64 = 1_795_428_000 * SEC;

/// A process name that sets the window title, clears the screen, forges a line, and
/// starts a CSI (8-bit) and a right-to-left override.
const COMM: &str = "evil\u{1b}]0;owned\u{7}\u{1b}[2J\r\nFAKE row\u{9b}31m\u{202e}x";
/// How [`COMM`] is shown to people.
const COMM_SHOWN: &str = "evil\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r\\nFAKE row\\u{9b}31m\\u{202e}x";
const HOST: &str = "web\u{1b}[31m1";
const HOST_SHOWN: &str = "web\\u{1b}[31m1";
const NOTE: &str = "upload failed: \u{1b}[1A\u{1b}[2K\nFAKE all good\u{7}";
const NOTE_SHOWN: &str = "upload failed: \\u{1b}[1A\\u{1b}[2K\\nFAKE all good\\u{7}";

fn write_recording(dir: &Path) {
    let info = RecordingInfo {
        recording_id: "0196a000-0000-7000-8000-0000000000e5".into(),
        host: HOST.into(),
        kernel: Some("6.18.44".into()),
        boot_id: None,
        clock: ClockInfo { mono_to_utc_offset_ns: 0, max_drift_ns: 0 },
        recorder: RecorderInfo { version: "test".into(), config: serde_json::json!({}) },
        start_ns: T0,
    };
    let mut w = RecordingWriter::create(dir, info, Default::default()).unwrap();
    for k in 0..3 {
        w.retransmits.push(Retransmit {
            host: Arc::from(HOST),
            time: UtcNanos(T0 + k * SEC),
            socket_id: Some(7),
            netns: Some(4026531840),
            family: Arc::from("ipv4"),
            laddr: Arc::from("10.0.0.1"),
            lport: 43210,
            raddr: Arc::from("10.0.0.34"),
            rport: 7777,
            kind: Arc::from("data"),
            state: Arc::from("ESTABLISHED"),
            segments: 1,
            seq: None,
            err: Some(0),
            counted: true,
            cause: Some(Arc::from("fast")),
            rto_backoff: None,
            pid: Some(2167),
            comm: Some(Arc::from(COMM)),
            cgroup_id: None,
            cgroup: None,
            container_id: None,
        });
    }
    w.recorder_stats.push(RecorderStats {
        host: Arc::from(HOST),
        time: UtcNanos(T0 + 2 * SEC),
        interval_ns: SEC,
        stream: Arc::from("recorder"),
        events_seen: 0,
        events_lost: 0,
        events_filtered: 0,
        rows_written: 3,
        rows_dropped: 0,
        gap_start: Some(UtcNanos(T0)),
        gap_end: Some(UtcNanos(T0 + SEC)),
        note: Some(Arc::from(NOTE)),
        shipped_files: None,
        shipped_bytes: None,
        unshipped_files: None,
        unshipped_bytes: None,
        ship_errors: None,
        ship_lost_files: None,
        ship_lost_bytes: None,
    });
    w.finish(T0 + 3 * SEC).unwrap();
}

/// Nothing a terminal acts on: no control character but the line ends, no
/// bidirectional override, and no line forged by a recorded newline.
fn assert_terminal_safe(text: &str, what: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .collect();
    assert!(bad.is_empty(), "{what}: {bad:?} reach the terminal: {text:?}");
    assert!(!text.lines().any(|l| l.trim_start().starts_with("FAKE")), "{what}: a recorded newline forged a line: {text:?}");
}

#[test]
fn recorded_strings_cannot_drive_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    write_recording(&rec);
    let rec = rec.to_str().unwrap();
    let comm_sql = "SELECT host, comm, segments FROM retransmits ORDER BY time";
    let note_sql = "SELECT stream, note FROM recorder_stats WHERE note IS NOT NULL";

    // Formats for people.
    let table = ok(&["query", rec, comm_sql]);
    assert_terminal_safe(&table, "query (table)");
    assert!(table.contains(COMM_SHOWN) && table.contains(HOST_SHOWN) && table.contains("(3 rows)"), "{table}");
    let table = ok(&["query", rec, note_sql]);
    assert_terminal_safe(&table, "query (table) of the note");
    assert!(table.contains(NOTE_SHOWN), "{table}");
    let report = ok(&["report", rec]);
    assert_terminal_safe(&report, "report");
    assert!(report.contains(HOST_SHOWN), "{report}");
    // The process, and the service named after it (no service is known on port 7777).
    assert!(report.contains(&format!("({COMM_SHOWN}) from {COMM_SHOWN}[2167]")), "{report}");
    let hotspots = ok(&["hotspots", rec]);
    assert_terminal_safe(&hotspots, "hotspots");
    assert!(hotspots.contains(COMM_SHOWN), "{hotspots}");
    let replay = ok(&["replay", rec, "--fast"]);
    assert_terminal_safe(&replay, "replay");
    assert!(replay.contains(COMM_SHOWN), "{replay}");
    let verify = ok(&["verify", rec]);
    assert_terminal_safe(&verify, "verify");
    assert!(verify.contains(HOST_SHOWN), "{verify}");
    // An error that quotes a recorded value. Error messages keep their line breaks
    // (DataFusion's have some), so only the escapes are checked.
    let failed = tcpfr(&["query", rec, "SELECT CAST(comm AS INT) FROM retransmits"]);
    assert!(!failed.ok, "{}", failed.stdout);
    assert!(!failed.stderr.contains(['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}']), "{:?}", failed.stderr);
    assert!(failed.stderr.contains("'evil\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r"), "{:?}", failed.stderr);

    // Formats for programs: the exact bytes, in the format's own quoting.
    let csv = ok(&["query", rec, comm_sql, "--format", "csv"]);
    assert!(csv.contains(&format!("{HOST},\"{COMM}\",1\n")), "{csv:?}");
    let json: serde_json::Value = serde_json::from_str(&ok(&["query", rec, comm_sql, "--format", "json"])).unwrap();
    assert_eq!(json[0]["comm"], COMM);
    assert_eq!(json[0]["host"], HOST);
    let nd = ok(&["query", rec, note_sql, "--format", "ndjson"]);
    assert!(!nd.contains('\u{1b}'), "JSON escapes control characters: {nd:?}");
    let nd: serde_json::Value = serde_json::from_str(nd.trim_end()).unwrap();
    assert_eq!(nd["note"], NOTE);
}
