//! A full disk and a read-only output directory under load, on a tiny tmpfs of the
//! test's own: the recorder keeps running (counting only), records the gap, resumes by
//! itself when it can write again, and stops cleanly with a recording that verifies.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tcpfr_schema::read::{discover, Source, Verify};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::rtt_samples::RttSample;
use testbed::*;

/// A small tmpfs mounted for the test; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(&["mount", "-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tcpfr-test", dir.path().to_str().unwrap()]);
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `dir` made read-only by a read-only bind mount over itself (a remount of the whole
/// tmpfs is refused while files are open for writing); undone on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        let d = dir.to_str().unwrap();
        run(&["mount", "--bind", d, d]);
        run(&["mount", "-o", "remount,bind,ro", d]);
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The recorder process, killed on drop (also when an assertion fails).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Waits until a file of `table` under recording directory `out` has a complete row
/// group: a footer sidecar (written with each row group) or a completed file.
fn wait_for_row_group(out: &Path, table: &str, limit: Duration) -> bool {
    let has = || -> bool {
        let Ok(recs) = std::fs::read_dir(out) else { return false };
        recs.flatten().any(|r| {
            let Ok(files) = std::fs::read_dir(r.path().join(table)) else { return false };
            files.flatten().any(|f| {
                let name = f.file_name().to_string_lossy().into_owned();
                name.ends_with(tcpfr_schema::layout::FOOTER_SUFFIX) || (!name.starts_with('.') && name.ends_with(".parquet"))
            })
        })
    };
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if has() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Fills the file system with one file until it is full.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    p
}

#[test]
fn full_disk_and_read_only_output_are_survived() {
    let _serial = serial();
    let fs = Tmpfs::new("24m");
    let bed = Bed::new("full", 14, false);
    let _traffic = bed.lossy_bulk(5603, 0.01);

    let out = fs.path().join("rec");
    let mut child = Child(
        Command::new(recorder_bin())
            .args(["--out", out.to_str().unwrap(), "--rtt-per-ack", "--rtt-interval", "0", "--rotate-size", "1MiB", "--log", "warn"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let alive = |c: &mut Child| c.0.try_wait().unwrap().is_none();

    // Rows are durable once in a row group (rows only in the write-ahead log are given
    // up with it on a full disk, and counted): the fault comes after the first one.
    assert!(wait_for_row_group(&out, "rtt_samples", Duration::from_secs(20)), "no rtt_samples row group within 20 s");
    let full_from = now_ns();
    let filler = fill(fs.path());
    std::thread::sleep(Duration::from_secs(4));
    assert!(alive(&mut child), "the recorder died on a full disk");
    std::fs::remove_file(&filler).unwrap();
    let full_until = now_ns();
    std::thread::sleep(Duration::from_secs(4));

    let ro_from = now_ns();
    let ro = ReadOnly::new(&out);
    std::thread::sleep(Duration::from_secs(3));
    assert!(alive(&mut child), "the recorder died on a read-only file system");
    drop(ro);
    let ro_until = now_ns();
    std::thread::sleep(Duration::from_secs(4));

    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    let status = child.0.wait().unwrap();
    assert!(status.success(), "recorder exited with {status}");

    let sources = discover(&[out.clone()]).unwrap();
    assert_eq!(sources.len(), 1);
    let Source::Recording(rec) = sources.into_iter().next().unwrap() else { panic!("a recording") };
    assert!(rec.verify(Verify::Full).is_empty(), "{:?}", rec.verify(Verify::Full));
    assert!(rec.manifest.end.is_some());
    // What was given up while the output was read-only was sealed once it was writable.
    assert!(rec.unlisted_files().is_empty(), "{:?}", rec.unlisted_files());
    let stats = rec.read_table::<RecorderStats>().unwrap();
    let gaps: Vec<&RecorderStats> = stats.iter().filter(|s| s.gap_start.is_some()).collect();
    for g in &gaps {
        eprintln!("gap {} ms: {}", (g.gap_end.unwrap().0 - g.gap_start.unwrap().0) / 1_000_000, g.note.as_deref().unwrap_or(""));
    }
    let covers = |from: i64, until: i64, what: &str| {
        let g = gaps
            .iter()
            .find(|g| g.note.as_deref().is_some_and(|n| n.starts_with(what)))
            .unwrap_or_else(|| panic!("no gap row for {what}: {gaps:?}"));
        let (s, e) = (g.gap_start.unwrap().0, g.gap_end.unwrap().0);
        // The gap starts at the last flush before the failure and ends when writing
        // resumed (within a second or two of the space coming back).
        assert!(s >= from - 2_000_000_000 && s <= until, "{what}: gap starts {} ms from the fault", (s - from) / 1_000_000);
        assert!(e >= until - 1_000_000_000 && e <= until + 3_000_000_000, "{what}: gap ends {} ms after the fix", (e - until) / 1_000_000);
        assert!(g.note.as_deref().unwrap().contains("rows dropped"));
        (s, e)
    };
    let full = covers(full_from, full_until, "disk full");
    let ro = covers(ro_from, ro_until, "read-only file system");
    // Data before, between and after the faults, none inside the gaps.
    let rtt = rec.read_table::<RttSample>().unwrap();
    for s in stats.iter().filter(|s| &*s.stream == "rtt_samples") {
        eprintln!("rtt_samples interval at {} ms: {} written, {} dropped", (s.time.0 - full.0) / 1_000_000, s.rows_written, s.rows_dropped);
    }
    let in_gap = |t: i64, (s, e): (i64, i64)| t > s + 100_000_000 && t < e - 100_000_000;
    assert!(rtt.iter().any(|r| r.time.0 < full.0));
    assert!(rtt.iter().any(|r| r.time.0 > full.1 && r.time.0 < ro.0));
    assert!(rtt.iter().any(|r| r.time.0 > ro.1));
    assert!(!rtt.iter().any(|r| in_gap(r.time.0, full) || in_gap(r.time.0, ro)), "rows inside a gap");
    let dropped: i64 = stats.iter().map(|s| s.rows_dropped).sum();
    assert!(dropped > 0, "no dropped rows were counted");
}

/// A closed recording in `out` of one 6 MiB file whose last row is at `last_ns`.
fn plant_old_recording(out: &Path, last_ns: i64) -> PathBuf {
    plant_recording(out, "20200101T000000Z-earlier", &[(last_ns, 6 << 20)]).remove(0)
}

/// A closed recording `name` in `out` with one `retransmits` file per segment, of the
/// given last row time and size; the files' paths, in segment order.
fn plant_recording(out: &Path, name: &str, segments: &[(i64, usize)]) -> Vec<PathBuf> {
    let dir = out.join(name);
    std::fs::create_dir_all(dir.join("retransmits")).unwrap();
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (i, (last_ns, size)) in segments.iter().enumerate() {
        let rel = format!("retransmits/20200101T000000.000Z-{:06}.parquet", i + 1);
        std::fs::write(dir.join(&rel), vec![1u8; *size]).unwrap();
        let t = tcpfr_schema::manifest::rfc3339(*last_ns);
        entries.push(serde_json::json!({"table": "retransmits", "path": rel, "segment": i + 1, "rows": 1,
            "bytes": size, "sha256": "", "time_min": t, "time_max": t}));
        files.push(dir.join(rel));
    }
    let t = tcpfr_schema::manifest::rfc3339(segments[0].0);
    let m = serde_json::json!({
        "format": "tcpfr-recording", "format_version": "1.1", "recording_id": "0170", "host": "h",
        "kernel": null, "boot_id": null, "clock": {"mono_to_utc_offset_ns": 0},
        "recorder": {"version": "x", "config": {}}, "start": t, "end": t, "files": entries
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    files
}

/// The ring alone on a disk with not one byte free: an earlier recording whose last
/// segment is due goes (its manifest is unlinked, which needs no space), and a segment
/// of one that keeps others goes too (its files first, then the manifest is stored in
/// the space they freed).
#[test]
fn the_ring_frees_space_on_a_disk_with_no_byte_free() {
    use tcpfr_schema::manifest::{ClockInfo, Manifest, RecorderInfo};
    use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
    let _serial = serial();
    let fs = Tmpfs::new("8m");
    let out = fs.path().join("rec");
    std::fs::create_dir(&out).unwrap();
    let hour_ago = now_ns() - 3_600_000_000_000;
    let single = plant_recording(&out, "20200101T000000Z-single", &[(hour_ago, 1 << 20)]);
    let two = plant_recording(&out, "20200101T000000Z-two", &[(hour_ago, 1 << 20), (now_ns(), 1 << 20)]);
    let info = RecordingInfo {
        recording_id: "0196a000-0000-7000-8000-0000000000bb".into(),
        host: "now".into(),
        kernel: None,
        boot_id: None,
        clock: ClockInfo { mono_to_utc_offset_ns: 0, max_drift_ns: 0 },
        recorder: RecorderInfo { version: "test".into(), config: serde_json::Value::Null },
        start_ns: now_ns(),
    };
    let mut current = RecordingWriter::create(&out.join("now"), info, WriterOptions::default()).unwrap();
    let _filler = fill(fs.path());
    assert!(std::fs::write(fs.path().join("probe"), [0u8; 1]).is_err(), "the disk is not full");

    let retention = tcpfr_recorder::ring::Retention { max_bytes: None, max_age: Some(Duration::from_secs(60)) };
    let done = tcpfr_recorder::ring::enforce(&out, &mut current, &retention, now_ns()).unwrap();
    assert_eq!((done.segments, done.bytes), (2, 2 << 20));
    assert!(!single[0].parent().unwrap().parent().unwrap().exists(), "the single-segment recording is still there");
    assert!(!two[0].exists() && two[1].exists());
    let m = Manifest::load(&out.join("20200101T000000Z-two/manifest.json")).unwrap();
    assert_eq!(m.files.iter().map(|f| f.segment).collect::<Vec<_>>(), [2], "the manifest lists what is left");
}

#[test]
fn a_full_disk_heals_when_max_age_frees_space() {
    let _serial = serial();
    let fs = Tmpfs::new("16m");
    let bed = Bed::new("heal", 32, false);
    let _traffic = bed.lossy_bulk(5633, 0.01);
    let out = fs.path().join("rec");
    std::fs::create_dir(&out).unwrap();
    // Old enough for --max-age 3s two seconds after the start: kept at start, due while
    // the disk is full.
    let planted = plant_old_recording(&out, now_ns() + 2_000_000_000);
    let mut child = Child(
        Command::new(recorder_bin())
            .args(["--out", out.to_str().unwrap(), "--max-age", "3s", "--rotate-interval", "1s", "--log", "warn"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let full_from = now_ns();
    let _filler = fill(fs.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while planted.exists() {
        assert!(std::time::Instant::now() < deadline, "--max-age did not delete the old recording while the disk was full");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stopped soon after, so that --max-age 3s has not deleted the gap's row yet.
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    assert!(child.0.wait().unwrap().success());

    let sources = discover(&[out.clone()]).unwrap();
    let Some(Source::Recording(rec)) = sources.into_iter().next() else { panic!("a recording") };
    let stats = rec.read_table::<RecorderStats>().unwrap();
    let notes: Vec<&str> = stats.iter().filter_map(|s| s.note.as_deref()).collect();
    // The disk-full gap ended: writing resumed once the ring had freed space.
    let resumed = stats
        .iter()
        .find(|s| s.note.as_deref().is_some_and(|n| n.starts_with("disk full") && n.contains("writing resumed")))
        .unwrap_or_else(|| panic!("writing never resumed: {notes:?}"));
    assert!(resumed.gap_start.unwrap().0 >= full_from - 2_000_000_000);
    let rtt = rec.read_table::<RttSample>().unwrap();
    assert!(rtt.iter().any(|r| r.time.0 > resumed.gap_end.unwrap().0), "no rows after the gap");
}
