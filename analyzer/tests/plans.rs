//! Plan shapes the questions rely on for their memory, checked in DataFusion's own
//! `EXPLAIN` output.

mod common;

use std::process::Command;

use common::*;

/// Lines of the first input of the first `HashJoinExec` in an indented plan: its build
/// side (the input it holds in memory).
fn build_side(plan: &str) -> Vec<&str> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = plan.lines().collect();
    let at = lines.iter().position(|l| l.contains("HashJoinExec")).unwrap_or_else(|| panic!("no hash join in:\n{plan}"));
    let child = indent(lines[at]) + 2;
    let mut side = Vec::new();
    for l in &lines[at + 1..] {
        if indent(l) < child || (indent(l) == child && !side.is_empty()) {
            break;
        }
        side.push(*l);
    }
    side
}

/// The `rtt_samples` view joins each sample to its socket with `sockets` as the hash
/// table, also where no statistics say which side is small (a cluster's shuffled
/// inputs have none): memory follows the sockets, not the samples. Without statistics
/// DataFusion keeps the written order, so this fails if the view names the samples first.
#[test]
fn rtt_samples_build_their_hash_table_from_sockets() {
    let rec = sample("bulk-loss");
    let out = Command::new(env!("CARGO_BIN_EXE_tcpfr"))
        .args(["query", rec.to_str().unwrap(), "--format", "csv"])
        .arg("EXPLAIN SELECT comm, avg(srtt_us) FROM rtt_samples GROUP BY comm")
        .env("DATAFUSION_EXECUTION_COLLECT_STATISTICS", "false")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let physical = &text[text.find("physical_plan").expect("a physical plan")..];
    let side = build_side(physical).join("\n");
    assert!(side.contains("sockets/") && !side.contains("rtt_samples/"), "the build side is not sockets:\n{physical}");
}
