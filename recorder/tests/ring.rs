//! The flight-recorder ring under a high event rate: disk use stays within --max-disk
//! plus one segment, the oldest segments go first with all their tables, the manifest
//! never lists a file that is not there, and --max-age drops old segments.

mod testbed;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use tcpfr_schema::manifest::{parse_rfc3339, Manifest};
use tcpfr_schema::read::Verify;
use testbed::*;

const KIB: u64 = 1024;

/// Checks that every file a recording's manifest lists exists. A file may vanish
/// between reading the manifest and looking: then a newer manifest must not list it.
fn manifest_matches_disk(rec: &Path) -> Option<Manifest> {
    let m = Manifest::load(&rec.join("manifest.json")).ok()?;
    for f in &m.files {
        let p = Manifest::file_path(rec, f);
        if !p.exists() {
            let newer = Manifest::load(&rec.join("manifest.json")).unwrap();
            assert!(!newer.files.iter().any(|g| g.path == f.path), "{} is listed but not on disk", f.path);
        }
    }
    Some(m)
}

#[test]
fn disk_use_stays_within_max_disk_under_load() {
    let _serial = serial();
    let bed = Bed::new("ring", 13, false);
    let _traffic = bed.lossy_bulk(5602, 0.01);

    let (max_disk, rotate) = (768 * KIB, 128 * KIB);
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
    ]);
    let out = rec.out.path().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut peak = 0;
    let mut peak_open = 0;
    let mut seen_segments = BTreeSet::new();
    let mut largest_segment = 0u64;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(du(&out));
        for e in std::fs::read_dir(&out).unwrap().flatten() {
            peak_open = peak_open.max(hidden(&e.path()));
            if let Some(m) = manifest_matches_disk(&e.path()) {
                for f in &m.files {
                    seen_segments.insert(f.segment);
                }
                for s in m.files.iter().map(|f| f.segment).collect::<BTreeSet<_>>() {
                    largest_segment = largest_segment.max(m.files.iter().filter(|f| f.segment == s).map(|f| f.bytes).sum());
                }
            }
        }
    }
    let (recording, _out) = rec.stop();
    let m = &recording.manifest;
    let first_kept = m.files.iter().map(|f| f.segment).min().unwrap();
    let last = m.files.iter().map(|f| f.segment).max().unwrap();
    eprintln!(
        "segments 1..={last} written, {first_kept}..={last} kept; peak {} KiB on disk for --max-disk {} KiB; \
         largest segment {} KiB, files being written up to {} KiB",
        peak / KIB,
        max_disk / KIB,
        largest_segment / KIB,
        peak_open / KIB
    );
    // More was written than kept, so eviction did the work.
    assert!(first_kept > last / 2, "segments {first_kept}..={last} kept: not enough load to test the ring");
    // Oldest first, tables together: the kept segments are consecutive, each complete
    // (but the last, which the stop cut short: it may have missed a table's rows).
    for s in first_kept..last {
        let tables: BTreeSet<&str> = m.files.iter().filter(|f| f.segment == s).map(|f| f.table.as_str()).collect();
        assert!(tables.contains("rtt_samples") && tables.contains("recorder_stats"), "segment {s}: {tables:?}");
    }
    assert!(recording.verify(Verify::Full).is_empty());
    // Disk use: the budget (which counts the files being written, write-ahead logs
    // included, at each rotation) plus one rotation's worth: what the segment being
    // written adds until the next rotation, or, for the moment between a rotation and
    // the deletions that follow it, the segment just closed.
    assert!(largest_segment > 0);
    let slack = largest_segment.max(peak_open) + 64 * KIB;
    assert!(peak <= max_disk + slack, "peak {peak} bytes on disk, budget {max_disk} + {slack}");
}

#[test]
fn max_age_drops_old_segments() {
    let _serial = serial();
    let rec = Recorder::start(&["--max-age", "3s", "--rotate-interval", "1s", "--counters-interval", "200ms"]);
    std::thread::sleep(Duration::from_secs(8));
    let stop_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let (recording, _out) = rec.stop();
    let m = &recording.manifest;
    let segments: BTreeSet<u64> = m.files.iter().map(|f| f.segment).collect();
    assert!(*segments.first().unwrap() > 2, "early segments kept: {segments:?}");
    // Whatever is kept ended within --max-age (+ one rotation, + the final segment).
    for f in &m.files {
        if let Some(t) = f.time_max.as_deref().and_then(parse_rfc3339) {
            assert!(stop_ns - t < 5_000_000_000, "{} ends {} ms before the stop", f.path, (stop_ns - t) / 1_000_000);
        }
    }
    assert!(recording.verify(Verify::Full).is_empty());
}

/// A recording whose manifest cannot be read (a power cut under an older recorder left
/// it empty) is not ignored forever: the recorder's start rebuilds its manifest from its
/// files, and the ring then counts it and deletes it like any other.
#[test]
fn a_recording_with_a_damaged_manifest_is_repaired_then_aged_out() {
    use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
    use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
    let _serial = serial();
    let out = tempfile::tempdir().unwrap();
    let old = out.path().join("20260101T000000Z-old");
    let hour_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64 - 3_600_000_000_000;
    let info = RecordingInfo {
        recording_id: "0196a000-0000-7000-8000-0000000000aa".into(),
        host: "old".into(),
        kernel: None,
        boot_id: None,
        clock: ClockInfo { mono_to_utc_offset_ns: 0, max_drift_ns: 0 },
        recorder: RecorderInfo { version: "test".into(), config: serde_json::Value::Null },
        start_ns: hour_ago,
    };
    RecordingWriter::create(&old, info, WriterOptions::default()).unwrap().finish(hour_ago + 1_000_000_000).unwrap();
    std::fs::write(old.join("manifest.json"), b"").unwrap();

    let mut child = spawn_recorder(out.path(), &["--max-age", "10m", "--rotate-interval", "1s"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    assert!(!old.exists(), "the hour-old recording with the damaged manifest is still there");
    let recs = tcpfr_schema::read::discover(&[out.path().to_path_buf()]).unwrap();
    assert_eq!(recs.len(), 1, "only the new recording is left");
    let tcpfr_schema::read::Source::Recording(rec) = &recs[0] else { panic!("a recording") };
    let stats = rec.read_table::<tcpfr_schema::recorder_stats::RecorderStats>().unwrap();
    let note = stats.iter().filter_map(|s| s.note.as_deref()).find(|n| n.starts_with("crash recovery:")).expect("the repair is noted");
    assert!(note.contains("manifest.json") && note.contains("a new manifest was made from the files"), "{note}");
}
