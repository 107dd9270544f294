//! Crash safety under load: the recorder is killed with SIGKILL at random moments 50
//! times while a lossy bulk transfer runs (RTT sampled on every ACK, retransmits), and
//! restarted each time. Afterwards every recording is complete and verifies (every file
//! is read back, row counts agree with the manifests), each crashed run lost at most
//! about one flush interval before its kill, and the next run recorded the gap.

mod testbed;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tcpfr_schema::manifest::parse_rfc3339;
use tcpfr_schema::read::{discover, Verify};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::rtt_samples::RttSample;
use testbed::*;

const KILLS: usize = 50;
/// The recorder flushes once per `--counters-interval` (default 1 s), rows up to 20 ms
/// before the flush; under this load draining the ring and encoding a flush take up
/// to half a second more (1,512 ms was seen once), so allow one more second.
const MAX_LOSS_NS: i64 = 2_000_000_000;

fn realtime_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Starts the recorder on `out` and waits until it records.
fn start(out: &Path) -> Child {
    spawn_recorder(out, &["--rtt-per-ack", "--rtt-interval", "0", "--log", "warn,tcpfr_recorder=info"])
}

#[test]
fn fifty_sigkills_under_load_lose_at_most_a_flush_interval_each() {
    let _serial = serial();
    let bed = Bed::new("kill", 12, false);
    let _traffic = bed.lossy_bulk(5601, 0.01);
    let out = tempfile::tempdir().unwrap();

    // Deterministic "random" kill delays between 0.2 and 3 s.
    let mut seed = 0x5eed_u64;
    let mut kills = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    for _ in 0..KILLS {
        assert!(Instant::now() < deadline, "the kill loop took over 10 minutes");
        let mut child = start(out.path());
        let started = realtime_ns();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(200 + (seed >> 33) % 2800);
        std::thread::sleep(delay);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let killed = realtime_ns();
        child.wait().unwrap();
        kills.push((started, killed));
    }
    // A last, clean run completes the 50th crashed recording too.
    let mut child = start(out.path());
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());

    let recs = recordings_in(discover(&[out.path().to_path_buf()]).unwrap());
    assert_eq!(recs.len(), KILLS + 1);

    let mut worst = 0i64;
    let mut wal_rows = 0u64;
    for (i, rec) in recs.iter().enumerate() {
        let problems = rec.verify(Verify::Full);
        assert!(problems.is_empty(), "{}: {problems:?}", rec.dir.display());
        assert!(rec.unlisted_files().is_empty(), "{}: {:?}", rec.dir.display(), rec.unlisted_files());
        assert!(!rec.dir.join("quarantine").exists(), "{}: something was quarantined", rec.dir.display());
        // Readable row by row, and sorted.
        let rtt = rec.read_table::<RttSample>().unwrap();
        assert!(rtt.windows(2).all(|w| w[0].time.0 <= w[1].time.0));
        let end = parse_rfc3339(rec.manifest.end.as_deref().expect("every recording is closed")).unwrap();
        let stats = rec.read_table::<RecorderStats>().unwrap();
        if i < KILLS {
            let info = rec.manifest.recovery.as_ref().unwrap_or_else(|| panic!("{} was recovered", rec.dir.display()));
            assert!(info.quarantined.is_empty());
            wal_rows += info.wal_rows;
            let (started, killed) = kills[i];
            let start = parse_rfc3339(&rec.manifest.start).unwrap();
            assert!((start - started).abs() < 5_000_000_000, "run {i}: recording start vs process start");
            assert!(end <= killed, "run {i}: rows after the kill");
            let lost = killed - end.max(start);
            worst = worst.max(lost);
            assert!(lost <= MAX_LOSS_NS, "run {i}: the last {} ms before the kill are missing", lost / 1_000_000);
        } else {
            assert!(rec.manifest.recovery.is_none());
        }
        if i > 0 {
            // The gap since the crashed run's last row, recorded by this run.
            let prev_end = parse_rfc3339(recs[i - 1].manifest.end.as_deref().unwrap()).unwrap();
            let gap = stats
                .iter()
                .find(|s| s.note.as_deref().is_some_and(|n| n.starts_with("crash recovery:")))
                .unwrap_or_else(|| panic!("{}: no crash-recovery row", rec.dir.display()));
            assert_eq!(gap.gap_start.map(|t| t.0), Some(prev_end), "run {i}");
            assert_eq!(gap.gap_end.map(|t| t.0), Some(parse_rfc3339(&rec.manifest.start).unwrap()), "run {i}");
            assert!(gap.note.as_deref().unwrap().contains(recs[i - 1].dir.file_name().unwrap().to_str().unwrap()));
        }
    }
    eprintln!(
        "{KILLS} kills: worst loss {} ms before a kill; {wal_rows} rows came back from write-ahead logs",
        worst / 1_000_000
    );
    assert!(wal_rows > 0, "the logs were never needed: the test did not kill mid-row-group");
}
