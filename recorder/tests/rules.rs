//! Automatic snapshots: a rule on retransmits per second for a port fires on a lossy
//! transfer to that port (after holding for its `for`), rules whose conditions do not
//! hold stay quiet, and a bad rules file stops the recorder before it starts.

mod testbed;

use std::process::Command;
use std::time::Duration;

use tcpfr_schema::manifest::{parse_rfc3339, Manifest};
use tcpfr_schema::retransmits::Retransmit;
use testbed::*;

const RULES: &str = r#"
[[rule]]
name = "storm"
retransmits_per_s = 20
for = "2s"
port = "5604"
before = "2s"
after = "1s"

[[rule]]
name = "quiet-port"
retransmits_per_s = 1
port = "9"

[[rule]]
name = "link-broken"
retransmits_per_s = 1
resets_per_s = 1
"#;

#[test]
fn a_retransmit_rule_snapshots_the_storm_and_only_that() {
    let _serial = serial();
    let bed = Bed::new("rule", 15, false);
    bed.iptables(&bed.server, "-A INPUT -p tcp --dport 5604 -m statistic --mode random --probability 0.05 -j DROP");
    let _server = bed.serve(5604, &[]);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let rec = Recorder::start(&["--rules", rules.to_str().unwrap(), "--max-snapshots", "50"]);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let client = bed.client.spawn(&[traffic_bin(), "send", "--to", &bed.server_addr(5604), "--bytes", "1000000000000"]);
    std::thread::sleep(Duration::from_secs(7));
    drop(client);
    let out = rec.out.path().to_path_buf();
    let (recording, _out) = rec.stop();

    let snaps: Vec<Manifest> = std::fs::read_dir(out.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| Manifest::load(&e.path().join("manifest.json")).unwrap())
        .collect();
    assert!(!snaps.is_empty(), "the storm rule did not fire");
    for m in &snaps {
        let s = m.snapshot.as_ref().unwrap();
        assert!(s.source == "rule storm", "only the storm rule fires: {s:?}");
        assert!(s.reason.starts_with("storm: ") && s.reason.contains("retransmits/s"), "{}", s.reason);
        let at = parse_rfc3339(&s.trigger).unwrap();
        assert!(at - started >= 2_000_000_000, "fired {} ms after the start, before holding 2 s", (at - started) / 1_000_000);
        // Checked against the recording: the second before the trigger had ≥ 20
        // retransmitted segments to port 5604.
        let segs: i64 = recording
            .read_table::<Retransmit>()
            .unwrap()
            .iter()
            .filter(|r| r.counted && r.rport == 5604 && r.time.0 > at - 1_100_000_000 && r.time.0 <= at)
            .map(|r| r.segments as i64)
            .sum();
        assert!(segs >= 20, "{segs} retransmitted segments in the second before the trigger");
    }
}

#[test]
fn a_bad_rules_file_is_refused_at_start() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"nothing\"\nport = \"80\"\n").unwrap();
    let out = Command::new(recorder_bin())
        .args(["--out", dir.path().join("rec").to_str().unwrap(), "--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("rules.toml") && msg.contains("has no threshold"), "{msg}");
    std::fs::write(&rules, "[[rule]]\nname = \"typo\"\nretransmit_per_s = 5\n").unwrap();
    let out = Command::new(recorder_bin())
        .args(["--out", dir.path().join("rec").to_str().unwrap(), "--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retransmit_per_s"), "{}", String::from_utf8_lossy(&out.stderr));
}
