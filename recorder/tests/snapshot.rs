//! Incident snapshots: SIGUSR1 and `tcpfr-recorder snapshot` freeze the window around
//! the trigger as a recording of its own (hard links), a second trigger extends the
//! open snapshot, the snapshot survives the ring deleting the same segments, searches
//! of the output directory do not count it twice, and old snapshots go beyond the limit.

mod testbed;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tcpfr_schema::manifest::parse_rfc3339;
use tcpfr_schema::read::{discover, Recording, Verify};
use testbed::*;

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn request(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(recorder_bin()).args(["snapshot", "--out", out.to_str().unwrap()]).args(extra).output().unwrap()
}

#[test]
fn triggers_freeze_the_window_and_survive_the_ring() {
    let _serial = serial();
    let rec = Recorder::start(&[
        "--rotate-interval",
        "1s",
        "--counters-interval",
        "250ms",
        "--snapshot-before",
        "3s",
        "--snapshot-after",
        "2s",
        "--max-age",
        "6s",
    ]);
    let out = rec.out.path().to_path_buf();
    let sock = out.join(".tcpfr-recorder.sock");
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o660);
    std::thread::sleep(Duration::from_secs(5));

    let t1 = now_ns();
    unsafe { libc::kill(rec.pid() as i32, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_secs(1));
    let t2 = now_ns();
    let r = request(&out, &["--reason", "db stall", "--after", "2s"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let dir = PathBuf::from(String::from_utf8_lossy(&r.stdout).trim());
    assert_eq!(snapshots(&out), vec![dir.clone()], "the second trigger extends the first snapshot");

    let m = wait_snapshot_complete(&dir, Duration::from_secs(10));
    let done = now_ns();
    let info = m.snapshot.clone().unwrap();
    assert_eq!(info.triggers, 2);
    assert_eq!(info.source, "SIGUSR1");
    assert!(info.reason.contains("SIGUSR1") && info.reason.contains("db stall"), "{}", info.reason);
    assert!(!info.cut_short);
    let (ws, we) = (parse_rfc3339(&info.window_start).unwrap(), parse_rfc3339(&info.window_end).unwrap());
    assert!((ws - (t1 - 3_000_000_000)).abs() < 500_000_000, "window starts 3 s before the first trigger");
    assert!((we - (t2 + 2_000_000_000)).abs() < 500_000_000, "window ends 2 s after the second trigger");
    // Completed promptly: the writer rotated when the window ended.
    assert!(done - we < 3_000_000_000, "completed {} ms after the window", (done - we) / 1_000_000);
    // Rows from the whole window (host counters every 250 ms), in whole segments.
    let times: Vec<(i64, i64)> = m
        .files
        .iter()
        .filter(|f| f.table == "host_counters")
        .map(|f| (parse_rfc3339(f.time_min.as_deref().unwrap()).unwrap(), parse_rfc3339(f.time_max.as_deref().unwrap()).unwrap()))
        .collect();
    assert!(times.iter().map(|t| t.0).min().unwrap() <= ws + 300_000_000);
    assert!(times.iter().map(|t| t.1).max().unwrap() >= we - 300_000_000);
    for seg in m.files.iter().map(|f| f.segment) {
        let tables = m.files.iter().filter(|f| f.segment == seg).count();
        assert!(tables >= 2, "segment {seg}: all tables of a segment together");
    }
    // Hard links of the ring's files: same inode.
    let ring = discover(&[out.clone()]).unwrap();
    assert_eq!(ring.len(), 1, "the snapshot is not found again under the output directory");
    let snap = Recording::open(&dir).unwrap();
    assert!(snap.verify(Verify::Full).is_empty());
    let f = m.files.iter().max_by_key(|f| f.time_max.clone()).unwrap();
    let ino = std::fs::metadata(dir.join(&f.path)).unwrap().ino();
    let ring_dir = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()).find(|p| p.join("manifest.json").exists()).unwrap();
    assert_eq!(std::fs::metadata(ring_dir.join(&f.path)).unwrap().ino(), ino);

    // --max-age 6s: the ring deletes those segments; the snapshot keeps them.
    std::thread::sleep(Duration::from_secs(8));
    let (recording, _out) = rec.stop();
    assert!(!recording.manifest.files.iter().any(|g| g.path == f.path), "the ring kept {}", f.path);
    assert_eq!(std::fs::metadata(dir.join(&f.path)).unwrap().nlink(), 1);
    assert!(Recording::open(&dir).unwrap().verify(Verify::Full).is_empty());
}

#[test]
fn old_snapshots_go_beyond_the_limit_and_errors_are_clear() {
    let _serial = serial();
    let rec = Recorder::start(&[
        "--rotate-interval",
        "1s",
        "--counters-interval",
        "250ms",
        "--snapshot-before",
        "1s",
        "--snapshot-after",
        "0s",
        "--max-snapshots",
        "2",
        "--snapshot-min-gap",
        "1s",
    ]);
    let out = rec.out.path().to_path_buf();
    std::thread::sleep(Duration::from_secs(2));
    let mut made = Vec::new();
    for i in 0..3 {
        let r = request(&out, &["--reason", &format!("incident {i}")]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let dir = PathBuf::from(String::from_utf8_lossy(&r.stdout).trim());
        wait_snapshot_complete(&dir, Duration::from_secs(10));
        made.push(dir);
        std::thread::sleep(Duration::from_millis(1200));
    }
    assert_eq!(snapshots(&out), made[1..].to_vec(), "the oldest snapshot went");
    let bad = request(&out, &["--reason", "x", "--before", "forever"]);
    assert!(!bad.status.success());
    drop(rec);
    let empty = tempfile::tempdir().unwrap();
    let none = request(empty.path(), &[]);
    assert!(!none.status.success());
    let msg = String::from_utf8_lossy(&none.stderr);
    assert!(msg.contains("no tcpfr-recorder is running"), "{msg}");
}
