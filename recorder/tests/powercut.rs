//! Power cuts under load, for real: the recorder writes its recordings to the forgetful
//! file system of `tcpfr-testsupport` (`powercut`: it keeps only what was fsynced) while
//! a lossy bulk transfer runs. 20 times, at a random moment, the power goes off — the
//! file system forgets everything that was not durable and refuses every request — and
//! the recorder is killed at that instant; then the power comes back and the recorder is
//! started again, and completes what the cut left. Half the cuts keep only what was
//! fsynced; the other half also every name and size, with unsynced contents zeroed (a
//! journal that committed metadata only: the "empty manifest" of issue 20).
//!
//! Afterwards: every recording opens and verifies, in tcpfr (`tcpfr verify`, `tcpfr
//! report`) and in DuckDB (row counts agree with the manifests); each cut recording was
//! recovered, and the next run recorded the gap; and each cut lost at most one flush
//! interval: its last row is at most `MAX_LOSS_NS` before the cut (its last
//! host-counters row one interval more: they reach a flush up to an interval after they
//! are read), and before that there is no hole (each host-counters row of the recorder's
//! namespace begins where the one before ended).
//!
//! Needs the `tcpfr` binary next to the recorder's (`cargo build --workspace` builds it).

mod testbed;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::manifest::parse_rfc3339;
use tcpfr_schema::read::{discover_all, Verify};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_testsupport::powercut::{Cut, Mount};
use testbed::*;

const CUTS: usize = 20;
/// As in crash.rs: the recorder flushes once per `--counters-interval` (1 s), rows up
/// to 20 ms before the flush, and under this load draining and encoding a flush takes up
/// to half a second more; a flush is only done once it is fsynced.
const MAX_LOSS_NS: i64 = 2_000_000_000;
/// Host counters are read on a thread of their own, on a timer not in phase with the
/// flushes: a row waits up to one interval (1 s) before a flush takes it.
const MAX_COUNTERS_LOSS_NS: i64 = MAX_LOSS_NS + 1_000_000_000;

fn realtime_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Starts the recorder on `out` and waits until it records. Segments of 2 s: cuts also
/// fall while files are closed and manifests stored.
fn start(out: &Path) -> Child {
    spawn_recorder(out, &["--rtt-per-ack", "--rtt-interval", "0", "--rotate-interval", "2s", "--log", "warn,tcpfr_recorder=info"])
}

fn tcpfr_bin() -> PathBuf {
    let p = Path::new(recorder_bin()).with_file_name("tcpfr");
    assert!(p.exists(), "{} is missing: build it (cargo build -p tcpfr)", p.display());
    p
}

fn duckdb(sql: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys, duckdb; print('\\n'.join('|'.join(map(str, r)) for r in duckdb.sql(sys.argv[1]).fetchall()))", sql])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "DuckDB failed (missing? run scripts/bootstrap.sh): {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn twenty_power_cuts_under_load_lose_at_most_a_flush_interval_each() {
    let _serial = serial();
    let bed = Bed::new("pcut", 19, false);
    let _traffic = bed.lossy_bulk(5611, 0.01);
    let mount = Mount::new().expect("mounting the power-cut file system needs root and /dev/fuse");
    let out = mount.path();

    let mut seed = 0xc0ffee_u64;
    let mut cuts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    for i in 0..CUTS {
        assert!(Instant::now() < deadline, "the cut loop took over 5 minutes");
        let mut child = start(out);
        let started = realtime_ns();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (seed >> 33) % 3700));
        let how = if i % 2 == 0 { Cut::Strict } else { Cut::MetadataKept };
        let cut = realtime_ns();
        mount.cut(how);
        // SAFETY: signalling our own child. Nothing it does after the cut reaches the disk.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        mount.power_on();
        cuts.push((started, cut));
    }
    // A last, clean run completes the last cut recording too.
    let mut child = start(out);
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    let c = mount.counters();
    eprintln!("{} cuts; the file system saw {} writes, {} file and {} directory fsyncs", c.cuts, c.writes, c.file_syncs, c.dir_syncs);

    let found = discover_all(&[out.to_path_buf()]).unwrap();
    assert!(found.skipped.is_empty(), "unreadable recordings: {:?}", found.skipped);
    let recs = recordings_in(found.sources);
    assert_eq!(recs.len(), CUTS + 1, "one recording per run, none lost to a cut");

    let (mut worst, mut worst_tick) = (0i64, 0i64);
    for (i, rec) in recs.iter().enumerate() {
        let ctx = format!("run {i} ({})", rec.dir.display());
        let problems = rec.verify(Verify::Full);
        assert!(problems.is_empty(), "{ctx}: {problems:?}");
        assert!(rec.unlisted_files().is_empty(), "{ctx}: {:?}", rec.unlisted_files());
        assert!(!rec.dir.join("quarantine").exists(), "{ctx}: something was quarantined");
        let start = parse_rfc3339(&rec.manifest.start).unwrap();
        let end = parse_rfc3339(rec.manifest.end.as_deref().expect("every recording is closed")).unwrap();
        // No hole: every host-counters row of our namespace covers the time since the
        // one before (`interval_ns`), so a row lost in the middle shows.
        let hc: Vec<HostCounters> =
            rec.read_table::<HostCounters>().unwrap().into_iter().filter(|r| r.netns_name.as_deref() == Some("host")).collect();
        for w in hc.windows(2) {
            assert_eq!(w[1].time.0 - w[1].interval_ns, w[0].time.0, "{ctx}: host counters missing after {}", w[0].time.0);
        }
        if i < CUTS {
            assert!(rec.manifest.recovery.is_some(), "{ctx}: not recovered");
            let (started, cut) = cuts[i];
            assert!((start - started).abs() < 5_000_000_000, "{ctx}: recording start vs process start");
            assert!(end <= cut, "{ctx}: rows after the cut");
            let lost = cut - end.max(start);
            worst = worst.max(lost);
            assert!(lost <= MAX_LOSS_NS, "{ctx}: the last {} ms before the cut are missing", lost / 1_000_000);
            // The per-interval rows too (their last flush may be the one the cut stopped).
            let last_tick = hc.last().map_or(start, |r| r.time.0);
            worst_tick = worst_tick.max(cut - last_tick);
            assert!(
                cut - last_tick <= MAX_COUNTERS_LOSS_NS,
                "{ctx}: the last host counters are {} ms before the cut",
                (cut - last_tick) / 1_000_000
            );
        } else {
            assert!(rec.manifest.recovery.is_none(), "{ctx}");
        }
        if i > 0 {
            // The gap since the cut run's last row, recorded by this run.
            let prev_end = parse_rfc3339(recs[i - 1].manifest.end.as_deref().unwrap()).unwrap();
            let stats = rec.read_table::<RecorderStats>().unwrap();
            let gap = stats
                .iter()
                .find(|s| s.note.as_deref().is_some_and(|n| n.starts_with("crash recovery:")))
                .unwrap_or_else(|| panic!("{ctx}: no crash-recovery row"));
            assert_eq!(gap.gap_start.map(|t| t.0), Some(prev_end), "{ctx}");
            assert_eq!(gap.gap_end.map(|t| t.0), Some(start), "{ctx}");
        }
    }

    // tcpfr reads them all…
    let run = |args: &[&str]| Command::new(tcpfr_bin()).args(args).output().unwrap();
    let v = run(&["verify", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "tcpfr verify: {text}{}", String::from_utf8_lossy(&v.stderr));
    assert_eq!(text.lines().filter(|l| l.starts_with("ok ")).count(), CUTS + 1, "{text}");
    let r = run(&["report", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success() && !err.contains("skipped"), "tcpfr report: {err}");
    // …and so does DuckDB, row for row.
    for table in ["rtt_samples", "host_counters", "recorder_stats", "sockets"] {
        let listed: u64 = recs.iter().flat_map(|r| r.manifest.files_of(table)).map(|f| f.rows).sum();
        let got = duckdb(&format!("SELECT count(*) FROM read_parquet('{}/*/{table}/*.parquet')", out.display()));
        assert_eq!(got, listed.to_string(), "{table}");
        assert!(listed > 0, "{table}: no rows at all");
    }
    eprintln!(
        "{CUTS} power cuts: worst loss {} ms before a cut (last row), {} ms (last host-counters row)",
        worst / 1_000_000,
        worst_tick / 1_000_000
    );
}
