//! The alerting rules in `prometheus/` are valid (`promtool check rules`) and do what
//! their unit tests say (`promtool test rules`: input series → expected alerts,
//! including cases that must not fire). promtool is the judge, not us.

use std::path::PathBuf;
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../prometheus")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .unwrap_or_else(|e| panic!("promtool {args:?}: {e} (install prometheus: scripts/bootstrap.sh)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("promtool {}:\n{text}", args.join(" "));
    assert!(out.status.success(), "promtool {args:?} failed ({}):\n{text}", out.status);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn rules_are_valid() {
    promtool(&["check", "rules", "tcpfr-alerts.yml"]);
}

#[test]
fn rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "tcpfr-alerts.test.yml"]);
}
