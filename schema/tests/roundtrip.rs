//! Rows → Parquet (through the real writer) → rows, and what the files look like on disk.

mod common;

use std::path::Path;

use common::*;
use tcpfr_schema::flows::Flow;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::read::{inspect_parquet, Recording, Verify};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::resets::Reset;
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::rtt_samples::RttSample;
use tcpfr_schema::state_changes::StateChange;
use tcpfr_schema::write::{RecordingWriter, WriterOptions};
use tcpfr_schema::{layout, Table};

fn sorted<T: Table>(mut v: Vec<T>) -> Vec<T> {
    v.sort_by_key(|r| r.sort_time());
    v
}

#[test]
fn every_table_round_trips_through_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let data = Dataset::generate(2_000, 42);
    let mut w = RecordingWriter::create(&rec_dir, info(T0), WriterOptions::default()).unwrap();
    data.push_all(&mut w);
    let manifest = w.finish(T0 + 100 * SEC).unwrap();

    let rec = Recording::open(&rec_dir).unwrap();
    assert_eq!(rec.manifest, manifest);
    assert!(rec.verify(Verify::Full).is_empty(), "{:?}", rec.verify(Verify::Full));
    assert_eq!(rec.read_table::<Retransmit>().unwrap(), sorted(data.retransmits.clone()));
    assert_eq!(rec.read_table::<StateChange>().unwrap(), sorted(data.state_changes.clone()));
    assert_eq!(rec.read_table::<Reset>().unwrap(), sorted(data.resets.clone()));
    assert_eq!(rec.read_table::<RttSample>().unwrap(), sorted(data.rtt_samples.clone()));
    assert_eq!(rec.read_table::<Flow>().unwrap(), sorted(data.flows.clone()));
    assert_eq!(rec.read_table::<tcpfr_schema::sockets::Socket>().unwrap(), sorted(data.sockets.clone()));
    assert_eq!(rec.read_table::<HostCounters>().unwrap(), sorted(data.host_counters.clone()));
    assert_eq!(rec.read_table::<RecorderStats>().unwrap(), sorted(data.recorder_stats.clone()));

    // The manifest's numbers describe the files (counted independently of the writer).
    for f in &manifest.files {
        let path = rec_dir.join(&f.path);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes, "{}", f.path);
        assert_eq!(sha256sum(&path), f.sha256, "{}", f.path);
        assert_eq!(inspect_parquet(&path).unwrap().rows, f.rows, "{}", f.path);
    }
    let total: u64 = manifest.files_of("retransmits").map(|f| f.rows).sum();
    assert_eq!(total, data.retransmits.len() as u64);
}

#[test]
fn watermark_holds_back_later_rows_and_files_stay_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let mut w = RecordingWriter::create(&rec_dir, info(T0), WriterOptions::default()).unwrap();
    // Arrive out of order: 3 s, 1 s, 2 s, 5 s.
    for s in [3, 1, 2, 5] {
        w.retransmits.push(retransmit(T0 + s * SEC, s as i64));
    }
    let r = w.flush(T0 + 2 * SEC, T0 + 6 * SEC).unwrap();
    assert_eq!(r.rows_written[0], 2, "only rows at or before the watermark are written");
    assert_eq!(w.retransmits.pending(), 2);
    // Late but still after everything written: fine.
    w.retransmits.push(retransmit(T0 + 4 * SEC, 4));
    w.flush(T0 + 10 * SEC, T0 + 11 * SEC).unwrap();
    w.finish(T0 + 12 * SEC).unwrap();
    let rec = Recording::open(&rec_dir).unwrap();
    let times: Vec<i64> = rec.read_table::<Retransmit>().unwrap().iter().map(|r| (r.time.0 - T0) / SEC).collect();
    assert_eq!(times, vec![1, 2, 3, 4, 5]);
    let path = &rec.paths("retransmits")[0];
    let md = tcpfr_schema::read::read_footer(path).unwrap();
    let kv = md.file_metadata().key_value_metadata().unwrap();
    assert!(kv.iter().any(|e| e.key == layout::kv::SORTED_BY && e.value.as_deref() == Some("time")));
}

#[test]
fn a_row_too_late_is_kept_and_the_file_not_declared_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let mut w = RecordingWriter::create(&rec_dir, info(T0), WriterOptions::default()).unwrap();
    w.retransmits.push(retransmit(T0 + 5 * SEC, 5));
    w.flush(T0 + 5 * SEC, T0 + 6 * SEC).unwrap();
    w.retransmits.push(retransmit(T0 + SEC, 1));
    w.flush(T0 + 6 * SEC, T0 + 7 * SEC).unwrap();
    assert_eq!(w.retransmits.late_rows, 1);
    w.finish(T0 + 8 * SEC).unwrap();
    let rec = Recording::open(&rec_dir).unwrap();
    assert_eq!(rec.read_table::<Retransmit>().unwrap().len(), 2, "no row is lost");
    let md = tcpfr_schema::read::read_footer(&rec.paths("retransmits")[0]).unwrap();
    let kv = md.file_metadata().key_value_metadata().unwrap();
    assert!(!kv.iter().any(|e| e.key == layout::kv::SORTED_BY));
}

#[test]
fn segments_rotate_together_by_time_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let opts = WriterOptions {
        rotate_interval_ns: 10 * SEC,
        rotate_size: 200_000,
        min_row_group_rows: 1000,
        ..WriterOptions::default()
    };
    let mut w = RecordingWriter::create(&rec_dir, info(T0), opts).unwrap();
    let mut expect_rtt = 0;
    // 35 s of traffic, flushed every second; the rtt table grows fast enough to hit the
    // size limit inside some segments, the other tables follow along.
    for s in 0..35 {
        let t = T0 + s * SEC;
        w.retransmits.push(retransmit(t + 1, s));
        for i in 0..3000 {
            w.rtt_samples.push(rtt(t + i * 100_000, i % 50, (i * 7919 % 100_000) as u32));
            expect_rtt += 1;
        }
        w.flush(t + SEC - 1, t + SEC).unwrap();
    }
    let m = w.finish(T0 + 36 * SEC).unwrap();
    let rtt_files: Vec<_> = m.files_of("rtt_samples").collect();
    let retr_files: Vec<_> = m.files_of("retransmits").collect();
    assert!(rtt_files.len() >= 4, "35 s at a 10 s interval makes at least 4 segments, got {}", rtt_files.len());
    // Every segment that has a retransmit file has the same name as its rtt file.
    for f in &retr_files {
        let twin = rtt_files.iter().find(|r| r.segment == f.segment).expect("rtt file of same segment");
        assert_eq!(Path::new(&f.path).file_name(), Path::new(&twin.path).file_name());
    }
    // Names sort in time order, and time ranges do not overlap.
    let names: Vec<&str> = rtt_files.iter().map(|f| f.path.as_str()).collect();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    assert_eq!(names, sorted_names);
    for pair in rtt_files.windows(2) {
        assert!(pair[0].time_max.as_ref().unwrap() <= pair[1].time_min.as_ref().unwrap());
    }
    assert_eq!(m.files_of("rtt_samples").map(|f| f.rows).sum::<u64>(), expect_rtt);
    // Row groups stay big: at most one per flush of ≥ 1000 rows, never one per row.
    let md = tcpfr_schema::read::read_footer(&rec_dir.join(&rtt_files[0].path)).unwrap();
    assert!(md.num_row_groups() <= 12, "{} row groups", md.num_row_groups());
    // Tables that never had rows still get one (empty) file each.
    for t in tcpfr_schema::TABLES {
        assert!(m.files_of(t).next().is_some(), "table {t} has no file");
    }
}

#[test]
fn unfinished_files_are_hidden_from_globs_and_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let opts = WriterOptions { min_row_group_rows: 100, ..WriterOptions::default() };
    let mut w = RecordingWriter::create(&rec_dir, info(T0), opts).unwrap();
    for i in 0..10 {
        w.retransmits.push(retransmit(T0 + i, i));
    }
    w.flush(T0 + SEC, T0 + SEC).unwrap(); // 10 rows < 100: they go to the write-ahead log
    for i in 0..200 {
        w.rtt_samples.push(rtt(T0 + i, i % 5, 100));
    }
    w.flush(T0 + SEC, T0 + SEC).unwrap(); // 200 rows: a row group and a partial footer
    let rec = Recording::open(&rec_dir).unwrap();
    assert!(rec.manifest.files.is_empty(), "nothing is complete yet");
    let unlisted: Vec<String> = rec
        .unlisted_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(unlisted.iter().all(|n| n.starts_with('.') && !n.ends_with(".parquet")), "{unlisted:?}");
    assert!(unlisted.iter().any(|n| n.ends_with(".parquet.wal")), "{unlisted:?}");
    assert!(unlisted.iter().any(|n| n.ends_with(".parquet.footer")), "{unlisted:?}");
    assert!(unlisted.iter().filter(|n| n.ends_with(".parquet.inprogress")).count() == 2, "{unlisted:?}");
    w.finish(T0 + 2 * SEC).unwrap();
    let rec = Recording::open(&rec_dir).unwrap();
    assert!(rec.unlisted_files().is_empty(), "{:?}", rec.unlisted_files());
    assert_eq!(rec.read_table::<Retransmit>().unwrap().len(), 10);
}

/// Rows of a row group in progress wait as Arrow batches (and in the write-ahead log),
/// not in Parquet's column writers: a quiet table must not hold an encoder, dictionary
/// and zstd contexts per column between flushes.
#[test]
fn a_row_group_in_progress_holds_no_parquet_writer_memory() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let opts = WriterOptions { min_row_group_rows: 1000, ..WriterOptions::default() };
    let mut w = RecordingWriter::create(&rec_dir, info(T0), opts).unwrap();
    for i in 0..500 {
        w.rtt_samples.push(rtt(T0 + i, i % 5, 100));
    }
    w.flush(T0 + SEC, T0 + SEC).unwrap();
    assert_eq!(w.rtt_samples.parquet_memory(), 0, "500 rows staged, below the row group size");
    for i in 500..1000 {
        w.rtt_samples.push(rtt(T0 + i, i % 5, 100));
    }
    w.flush(T0 + SEC, T0 + SEC).unwrap();
    assert_eq!(w.rtt_samples.parquet_memory(), 0, "the row group was written and closed");
    let m = w.finish(T0 + 2 * SEC).unwrap();
    let rtt_file = m.files.iter().find(|f| f.table == "rtt_samples").unwrap();
    assert_eq!(rtt_file.rows, 1000);
    let md = tcpfr_schema::read::read_footer(&rec_dir.join(&rtt_file.path)).unwrap();
    assert_eq!(md.num_row_groups(), 1, "one row group of the 1000 rows");
}

#[test]
fn files_and_directories_are_not_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let mut w = RecordingWriter::create(&rec_dir, info(T0), WriterOptions::default()).unwrap();
    w.retransmits.push(retransmit(T0, 1));
    let m = w.finish(T0 + SEC).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&rec_dir), 0o750);
    assert_eq!(mode(&rec_dir.join("retransmits")), 0o750);
    assert_eq!(mode(&rec_dir.join(&m.files[0].path)), 0o640);
    assert_eq!(mode(&rec_dir.join("manifest.json")), 0o640);
}

#[test]
fn refuses_to_write_over_an_existing_recording() {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    RecordingWriter::create(&rec_dir, info(T0), WriterOptions::default()).unwrap().finish(T0).unwrap();
    let err = RecordingWriter::create(&rec_dir, info(T0), WriterOptions::default()).err().unwrap();
    assert!(err.to_string().contains("already holds a recording"), "{err}");
}
