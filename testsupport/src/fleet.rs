//! What the fleet tests share: simulated hosts' recordings, and the questions every way
//! of reading the same recordings (local disk, a shipped store, a Ballista cluster) must
//! answer identically.

use std::path::Path;
use std::process::Command;

/// Every canned question (hotspots also by host) and the report, as `tcpfr` arguments
/// after the recordings. Tests add their windows and raw queries.
pub const QUESTIONS: [&[&str]; 9] = [
    &["retransmit-rate", "--format", "csv"],
    &["hotspots", "--format", "csv"],
    &["hotspots", "--by", "host", "--format", "csv"],
    &["handshakes", "--format", "csv"],
    &["resets", "--format", "csv"],
    &["rtt", "--format", "csv"],
    &["timeline", "--format", "csv"],
    &["top-flows", "--format", "csv"],
    &["report"],
];

/// `hosts` simulated hosts' recordings under `out` (200 sockets each, two hours), from
/// the recorder's benchmark generator in `examples_dir` (`target/<profile>/examples`,
/// built by `cargo build --workspace --all-targets`, which scripts/test.sh runs first).
/// Returns the recordings' directories, sorted.
pub fn generate(examples_dir: &Path, out: &Path, hosts: u32, events: u32) -> Vec<String> {
    let exe = examples_dir.join("gen-recording");
    assert!(exe.exists(), "{} is missing: cargo build -p tcpfr-recorder --example gen-recording", exe.display());
    let out_s = out.to_str().expect("a UTF-8 temp path");
    let st = Command::new(&exe)
        .args(["--out", out_s, "--hosts", &hosts.to_string(), "--events", &events.to_string(), "--sockets", "200", "--span", "2h"])
        .output()
        .expect("run gen-recording");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let mut dirs: Vec<String> =
        std::fs::read_dir(out).expect("generated dir").flatten().map(|e| e.path().to_string_lossy().into_owned()).collect();
    dirs.sort();
    assert_eq!(dirs.len(), hosts as usize, "one recording per host in {}", out.display());
    dirs
}
