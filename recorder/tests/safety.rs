//! A root daemon that nothing local can turn against its host: a planted output
//! directory, lock file or manifest, unbounded snapshot requests, control-socket
//! floods and absurd durations are refused or bounded, and what the recorder says it
//! wrote is exactly what it wrote.

mod testbed;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tcpfr_schema::manifest::{parse_rfc3339, Manifest};
use testbed::*;

const KIB: u64 = 1024;

/// Runs the recorder expecting it to refuse to start (within 10 s); returns its stderr.
fn refused(out: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(recorder_bin())
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the recorder started on {} with {extra:?}", out.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "the recorder ran on {}: {err}", out.display());
    err
}

/// A private directory (root's, 0700) for a test's files.
fn private_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    t
}

#[test]
fn an_output_directory_others_can_change_is_refused() {
    let t = private_dir();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "root's secret\n").unwrap();

    // `--out /tmp/rec` that a local user made first, with the lock pointing elsewhere.
    let theirs = t.path().join("rec");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::symlink(&victim, theirs.join(".tcpfr-recorder.lock")).unwrap();
    std::os::unix::fs::lchown(theirs.join(".tcpfr-recorder.lock"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let err = refused(&theirs, &[]);
    assert!(err.contains("belongs to uid 65534") && err.contains("/var/lib/tcpfr"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's secret\n");

    // Root's, but writable by everyone.
    let open = t.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = refused(&open, &[]);
    assert!(err.contains("writable by everyone"), "{err}");

    // Inside a directory another user owns: they could swap it for a link.
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let inside = home.join("rec");
    std::fs::create_dir(&inside).unwrap();
    let err = refused(&inside, &[]);
    assert!(err.contains("belongs to another user"), "{err}");

    // Root's own directory with a link where the lock goes.
    let ours = t.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    std::os::unix::fs::symlink(&victim, ours.join(".tcpfr-recorder.lock")).unwrap();
    let err = refused(&ours, &[]);
    assert!(err.contains(".tcpfr-recorder.lock"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's secret\n");
}

#[test]
fn durations_out_of_range_are_refused_before_anything_runs() {
    let t = private_dir();
    for (flag, value) in [("--max-age", "1000y"), ("--duration", "600000000y"), ("--counters-interval", "0s"), ("--rotate-interval", "0s")] {
        let err = refused(t.path(), &[flag, value]);
        assert!(err.contains(flag) && err.contains("out of range"), "{flag} {value}: {err}");
    }
    assert!(std::fs::read_dir(t.path()).unwrap().next().is_none(), "nothing was written");
}

/// A closed recording planted in the output directory (a restored backup, a copied
/// bundle) whose manifest lists `../../victim`.
fn plant_recording(out: &Path, path: &str, bytes: u64) {
    let dir = out.join("20200101T000000Z-planted");
    std::fs::create_dir_all(dir.join("retransmits")).unwrap();
    let m = serde_json::json!({
        "format": "tcpfr-recording", "format_version": "1.1", "recording_id": "0170", "host": "h",
        "kernel": null, "boot_id": null, "clock": {"mono_to_utc_offset_ns": 0},
        "recorder": {"version": "x", "config": {}},
        "start": "2020-01-01T00:00:00Z", "end": "2020-01-01T00:01:00Z",
        "files": [{"table": "retransmits", "path": path, "segment": 1, "rows": 1, "bytes": bytes,
                   "sha256": "", "time_min": "2020-01-01T00:00:00Z", "time_max": "2020-01-01T00:00:30Z"}]
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn a_planted_manifest_cannot_make_the_ring_delete_outside_the_output() {
    let _serial = serial();
    let t = private_dir();
    let out = t.path().join("a").join("out");
    std::fs::create_dir_all(&out).unwrap();
    // out/<recording>/../../victim
    let victim = t.path().join("a").join("victim");
    std::fs::write(&victim, vec![7u8; 3 << 20]).unwrap();
    plant_recording(&out, "../../victim", 3 << 20);

    let mut child = spawn_recorder(&out, &["--max-disk", "1M", "--rotate-size", "256K", "--rotate-interval", "1s"]);
    std::thread::sleep(Duration::from_secs(4));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::metadata(&victim).map(|m| m.len()).ok(), Some(3 << 20), "the ring deleted a file outside --out");
}

/// One control request, raw: the reply line.
fn control(out: &Path, request: &str) -> String {
    let mut s = UnixStream::connect(out.join(".tcpfr-recorder.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    line
}

#[test]
fn snapshot_requests_are_bounded() {
    let _serial = serial();
    let rec = Recorder::start(&["--rotate-interval", "1s", "--counters-interval", "250ms", "--snapshot-max-window", "4s"]);
    let out = rec.out.path().to_path_buf();
    std::thread::sleep(Duration::from_secs(2));

    // A window of a thousand years, a reason of 10 KB with control characters, and
    // triggers that keep extending it: the window stays within 4 s and completes.
    let long = format!("{}\x1b[31m{}", "a".repeat(5000), "b".repeat(5000));
    let reply = control(&out, &serde_json::json!({"before": "1000y", "after": "1000y", "reason": long}).to_string());
    let dir: PathBuf = serde_json::from_str::<serde_json::Value>(&reply).unwrap()["snapshot"].as_str().expect(&reply).into();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        control(&out, r#"{"after": "10m", "reason": "again"}"#);
    }
    let m = wait_snapshot_complete(&dir, Duration::from_secs(15));
    let s = m.snapshot.unwrap();
    let window = parse_rfc3339(&s.window_end).unwrap() - parse_rfc3339(&s.window_start).unwrap();
    assert!(window <= 4_000_000_000, "a window of {} s", window / 1_000_000_000);
    assert!(s.reason.len() <= 300 && !s.reason.contains('\x1b'), "{} bytes of reason", s.reason.len());

    // A second snapshot within --snapshot-min-gap (1 min) is refused, not made.
    let reply = control(&out, r#"{"reason": "too soon"}"#);
    assert!(reply.contains("snapshot-min-gap"), "{reply}");
    assert_eq!(snapshots(&out), vec![dir]);

    // Idle connections hold every slot: one more is told so at once.
    let idle: Vec<UnixStream> = (0..4).map(|_| UnixStream::connect(out.join(".tcpfr-recorder.sock")).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let reply = control(&out, r#"{"reason": "while busy"}"#);
    assert!(reply.contains("busy") && t0.elapsed() < Duration::from_secs(2), "{reply}");
    drop(idle);
    rec.stop();
}

#[test]
fn snapshots_count_against_max_disk() {
    let _serial = serial();
    let bed = Bed::new("snapdisk", 30, false);
    let _traffic = (bed.lossy_bulk(5630, 0.01), bed.lossy_bulk(5632, 0.01));
    let (max_disk, rotate) = (384 * KIB, 48 * KIB);
    let rec = Recorder::start(&[
        "--max-disk",
        &max_disk.to_string(),
        "--rotate-size",
        &rotate.to_string(),
        "--rtt-per-ack",
        "--rtt-interval",
        "0",
        "--zstd-level",
        "1",
        "--snapshot-before",
        "0s",
        "--snapshot-after",
        "30s",
    ]);
    let out = rec.out.path().to_path_buf();
    std::thread::sleep(Duration::from_secs(1));
    let reply = control(&out, r#"{"reason": "hold everything"}"#);
    assert!(reply.contains("\"ok\":true"), "{reply}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut peak, mut peak_open, mut largest_segment) = (0, 0, 0);
    // Every closed file seen in the ring (path → bytes): what the recorder wrote.
    let mut seen = std::collections::HashMap::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(du(&out));
        for dir in std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()) {
            peak_open = peak_open.max(hidden(&dir));
            if let Ok(m) = Manifest::load(&dir.join("manifest.json")) {
                seen.extend(m.files.iter().map(|f| (f.path.clone(), f.bytes)));
                for seg in m.files.iter().map(|f| f.segment) {
                    largest_segment = largest_segment.max(m.files.iter().filter(|f| f.segment == seg).map(|f| f.bytes).sum());
                }
            }
        }
    }
    let (_recording, _kept) = rec.stop();
    let written: u64 = seen.values().sum();
    // Enough was written in the snapshot's window that it alone could have taken the
    // whole budget several times.
    assert!(written > 3 * max_disk, "only {} KiB written: not enough load", written / KIB);
    // The budget plus what the ring allows itself (tests/ring.rs): the files being
    // written (write-ahead logs included) or the segment just closed.
    let slack = largest_segment.max(peak_open) + 64 * KIB;
    assert!(peak <= max_disk + slack, "peak {} KiB on disk for --max-disk {} KiB + {} KiB", peak / KIB, max_disk / KIB, slack / KIB);
    let snap = Manifest::load(&snapshots(&out)[0].join("manifest.json")).unwrap();
    assert!(snap.end.is_some(), "the full snapshot completed");
}

#[test]
fn snapshot_segments_are_unique_across_a_restart() {
    let _serial = serial();
    let t = private_dir();
    let out = t.path().join("out");
    let args = ["--rotate-interval", "1s", "--counters-interval", "250ms"];
    let mut first = spawn_recorder(&out, &args);
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    assert!(first.wait().unwrap().success());
    let mut second = spawn_recorder(&out, &args);
    std::thread::sleep(Duration::from_secs(3));
    let reply = control(&out, r#"{"before": "20s", "after": "0s", "reason": "across a restart"}"#);
    let dir: PathBuf = serde_json::from_str::<serde_json::Value>(&reply).unwrap()["snapshot"].as_str().expect(&reply).into();
    let m = wait_snapshot_complete(&dir, Duration::from_secs(10));
    unsafe { libc::kill(second.id() as i32, libc::SIGINT) };
    assert!(second.wait().unwrap().success());
    let starts: std::collections::BTreeSet<&str> = m.files.iter().filter_map(|f| f.time_min.as_deref()).collect();
    assert!(m.files.len() >= 16, "files from both recordings: {starts:?}");
    let mut keys: Vec<(&str, u64)> = m.files.iter().map(|f| (f.table.as_str(), f.segment)).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a (table, segment) appears twice in {}", dir.display());
}

#[test]
fn rows_written_count_what_the_last_flush_wrote() {
    let _serial = serial();
    let bed = Bed::new("count", 31, false);
    let _server = bed.serve(5631, &[]);
    let rec = Recorder::start(&["--counters-interval", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    // Connections right before the stop: their rows are still buffered when the last
    // interval's statistics are made.
    bed.send(5631, 1000, 40, &[], Duration::from_secs(20));
    let (recording, _out) = rec.stop();
    let rows = |table: &str| recording.manifest.files_of(table).map(|f| f.rows).sum::<u64>();
    let stats = recording.read_table::<tcpfr_schema::recorder_stats::RecorderStats>().unwrap();
    for table in ["retransmits", "state_changes", "resets", "rtt_samples", "flows", "sockets", "listeners", "drops"] {
        let said: i64 = stats.iter().filter(|r| &*r.stream == table).map(|r| r.rows_written).sum();
        assert_eq!(said as u64, rows(table), "{table}: recorder_stats says {said} rows were written");
    }
    assert!(rows("state_changes") >= 40 * 3, "{} state changes", rows("state_changes"));
}

#[test]
fn a_max_disk_the_file_system_cannot_hold_is_said_at_start() {
    let _serial = serial();
    let rec = Recorder::start(&["--max-disk", "100000T", "--duration", "2s"]);
    std::thread::sleep(Duration::from_millis(500));
    let (recording, _out) = rec.stop();
    let stats = recording.read_table::<tcpfr_schema::recorder_stats::RecorderStats>().unwrap();
    let notes: Vec<&str> = stats.iter().filter_map(|s| s.note.as_deref()).collect();
    assert!(notes.iter().any(|n| n.contains("--max-disk") && n.contains("more than the whole file system")), "{notes:?}");
}
