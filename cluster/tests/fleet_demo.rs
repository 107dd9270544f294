//! The README's fleet demo: `scripts/fleet-demo.sh` (with the binaries already built) ships 20
//! simulated hosts and the samples into SeaweedFS, starts a scheduler and two executors
//! on loopback, and asks every question alone and on the cluster. Passes only if the
//! script succeeds and says every answer was identical. Bounded: the script's process
//! group is killed after 20 minutes.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_readme_fleet_demo_gives_identical_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(root.join("scripts/fleet-demo.sh"))
        .current_dir(root)
        .env_remove("FLEET_URL")
        // The binaries scripts/test.sh built (the script's own build line is the same
        // command; run from here, under cargo test's environment, it would rebuild).
        .env("TCPFR_BIN", Path::new(env!("CARGO_BIN_EXE_tcpfr-scheduler")).parent().unwrap())
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap())
        .process_group(0)
        .spawn()
        .expect("scripts/fleet-demo.sh runs");
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the script's own process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = std::fs::read_to_string(out.path()).unwrap();
    let status = status.unwrap_or_else(|| panic!("the demo took over 20 minutes:\n{log}"));
    assert!(status.success(), "the demo failed ({status}):\n{log}");
    for q in ["retransmit-rate", "hotspots", "handshakes", "resets", "rtt", "timeline", "top-flows"] {
        assert!(log.lines().any(|l| l.starts_with(&format!("{q}: identical"))), "{q} not identical:\n{log}");
    }
    assert!(!log.contains("DIFFERS"), "{log}");
    // 20 simulated hosts and the samples' hosts (one each), counted on the cluster.
    let samples = std::fs::read_dir(root.join("samples")).unwrap().filter(|e| e.as_ref().unwrap().path().join("recording").is_dir()).count();
    assert!(samples >= 5, "{samples}");
    let answer = log.lines().skip_while(|l| !l.contains("fleet-wide question")).nth(2).unwrap_or_default();
    assert!(answer.starts_with(&format!("{},", 20 + samples)), "hosts, connections, retransmitted: {answer:?}\n{log}");
}
