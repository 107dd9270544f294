//! Power cuts at every kind of moment of the writer's protocol: a recording is written
//! on the forgetful file system of `tcpfr-testsupport` (it keeps only what was fsynced),
//! the power goes off at a chosen request (while a log is appended, a row group or a
//! footer saved, a file closed, a manifest stored, or during recovery itself), and then:
//! the recording opens, recovers, verifies, and holds every row of every flush that
//! returned before the cut — in order, once, with nothing quarantined and nothing left
//! over, also after one more cut right after recovery returned. Half the cuts
//! keep only what was fsynced; the other half also keep every name and size, with
//! unsynced contents zeroed (a journal that committed metadata only).
//!
//! Needs root and /dev/fuse (mounting).

mod common;

use std::path::Path;

use common::*;
use tcpfr_schema::read::{Recording, Verify};
use tcpfr_schema::recover::{needs_recovery, recover};
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::rtt_samples::RttSample;
use tcpfr_schema::write::{RecordingWriter, WriterOptions};
use tcpfr_testsupport::powercut::{Cut, Mount};

const MS: i64 = 1_000_000;
/// Rows per table: 12.5 s at one per ms, so a rotation (every 5 s) falls in it.
const ROWS: i64 = 12_500;
/// Rows per flush: flushes alternate between the log and closing a row group.
const EVERY: i64 = 700;
const CUTS: u64 = 40;

fn opts() -> WriterOptions {
    WriterOptions { rotate_interval_ns: 5 * SEC, rotate_size: u64::MAX, min_row_group_rows: 1000, ..WriterOptions::default() }
}

/// Writes the rows, flushing every `EVERY`, and closes the recording; stops at the
/// first error (the power went off). Returns the time of the last row of the last
/// flush that returned `Ok` (those rows must survive), if any.
fn write(rec: &Path) -> Option<i64> {
    let Ok(mut w) = RecordingWriter::create(rec, info(T0), opts()) else { return None };
    let mut durable = None;
    for i in 0..ROWS {
        let t = T0 + i * MS;
        w.retransmits.push(retransmit(t, i % 7));
        w.rtt_samples.push(rtt(t, i % 7, 1000 + i as u32));
        if (i + 1) % EVERY == 0 {
            if w.flush(t, t).is_err() {
                // Dropped while the power is off: nothing of it reaches the disk.
                drop(w);
                return durable;
            }
            durable = Some(t);
        }
    }
    let end = T0 + ROWS * MS;
    match w.finish(end) {
        Ok(_) => Some(T0 + (ROWS - 1) * MS),
        Err(_) => durable,
    }
}

fn times(rec: &Recording) -> (Vec<i64>, Vec<i64>) {
    let r = rec.read_table::<Retransmit>().unwrap().iter().map(|r| r.time.0).collect();
    let s = rec.read_table::<RttSample>().unwrap().iter().map(|r| r.time.0).collect();
    (r, s)
}

#[test]
fn a_power_cut_loses_nothing_that_was_flushed() {
    // How many changing requests a whole run makes: cuts are spread over all of them.
    let total = {
        let m = Mount::new().expect("mounting the test file system needs root and /dev/fuse");
        assert_eq!(write(&m.path().join("rec")), Some(T0 + (ROWS - 1) * MS));
        let c = m.counters();
        assert!(c.file_syncs > 0 && c.dir_syncs > 0, "the writer fsyncs: {c:?}");
        c.changes
    };
    let mut rng = Rng::new(0x9c0f_fee5);
    let mut recovered_rows = 0usize;
    for i in 0..CUTS {
        let how = if i % 2 == 0 { Cut::Strict } else { Cut::MetadataKept };
        let at = 1 + rng.below(total);
        let m = Mount::new().unwrap();
        let rec = m.path().join("rec");
        m.cut_after(at, how);
        let durable = write(&rec);
        assert!(!m.powered(), "cut {i}: the cut at change {at} of {total} did not happen");
        m.power_on();
        let ctx = format!("cut {i} ({how:?}) at change {at} of {total}, rows durable up to {durable:?}");

        if !rec.join("manifest.json").exists() {
            assert_eq!(durable, None, "{ctx}: flushed, but the recording is gone");
            continue;
        }
        if needs_recovery(&rec) {
            // Every other time, the power goes off again during recovery.
            if i % 4 < 2 {
                m.cut_after(1 + rng.below(60), if rng.chance(50) { Cut::Strict } else { Cut::MetadataKept });
                let _ = recover(&rec, &opts());
                m.power_on();
            }
            if needs_recovery(&rec) {
                let r = recover(&rec, &opts()).unwrap_or_else(|e| panic!("{ctx}: recovery failed: {e}"));
                assert!(r.quarantined.is_empty(), "{ctx}: quarantined {:?}", r.quarantined);
            }
        }
        // What finish or recovery returned is durable: one more cut right now changes nothing.
        m.cut(if rng.chance(50) { Cut::Strict } else { Cut::MetadataKept });
        m.power_on();
        let opened = Recording::open(&rec).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(opened.manifest.end.is_some(), "{ctx}: not closed");
        let problems = opened.verify(Verify::Full);
        assert!(problems.is_empty(), "{ctx}: {problems:?}");
        assert!(opened.unlisted_files().is_empty(), "{ctx}: {:?}", opened.unlisted_files());
        assert!(!rec.join("quarantine").exists(), "{ctx}: something was quarantined");
        let (rt, rtt) = times(&opened);
        for (table, got) in [("retransmits", rt), ("rtt_samples", rtt)] {
            // A prefix of what was written: no hole, nothing twice, nothing made up…
            // (a flush cut short may have left more of one table than of another)
            let kept = got.len() as i64;
            assert_eq!(got, (0..kept).map(|k| T0 + k * MS).collect::<Vec<_>>(), "{ctx}: {table}");
            // …that holds every row flushed before the cut.
            if let Some(last) = durable {
                assert!(kept > (last - T0) / MS, "{ctx}: {table}: only {kept} rows kept");
            }
            recovered_rows += got.len();
        }
    }
    eprintln!("{CUTS} cuts over {total} changing requests; {recovered_rows} rows kept in all");
}
