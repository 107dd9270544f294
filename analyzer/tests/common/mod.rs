//! Running the `tcpfr` binary, and independent truths from the samples' captures.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples").join(name)
}

pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` to the end and keeps what it said.
    pub fn of(cmd: &mut Command) -> Run {
        let out = cmd.output().expect("tcpfr runs");
        Run {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn tcpfr(args: &[&str]) -> Run {
    Run::of(Command::new(env!("CARGO_BIN_EXE_tcpfr")).args(args))
}

/// Runs and expects success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let r = tcpfr(args);
    assert!(r.ok, "tcpfr {args:?} failed: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r.stdout
}

/// CSV output as rows of cells (no header; `#` title lines skipped; quotes honoured).
pub fn csv_rows(out: &str) -> Vec<Vec<String>> {
    out.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).skip(1).map(csv_line).collect()
}

fn csv_line(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

/// One number from a one-row, one-column CSV result.
pub fn scalar(out: &str) -> i64 {
    let rows = csv_rows(out);
    assert_eq!(rows.len(), 1, "{out}");
    rows[0][0].parse().unwrap_or_else(|_| panic!("not a number: {out}"))
}

/// tshark's fields of TCP packets matching a display filter.
pub fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(pcap).args(["-Y", filter, "-T", "fields", "-E", "separator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs (installed by scripts/bootstrap.sh)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// Data packets that re-send bytes already sent, per (source port, destination port):
/// retransmitted segments as the wire shows them (captures are made with offloads off,
/// so one packet is one segment).
pub fn wire_retransmits(pcap: &Path, filter: &str) -> HashMap<(u16, u16), i64> {
    let mut sent: HashMap<(u16, u16), (u32, u32)> = HashMap::new();
    let mut out: HashMap<(u16, u16), i64> = HashMap::new();
    for f in tshark(pcap, &format!("({filter}) && tcp.len > 0"), &["tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.len"]) {
        let key: (u16, u16) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let (seq, len): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        let (base, end) = sent.entry(key).or_insert((seq, 0));
        let rel = seq.wrapping_sub(*base);
        if rel < *end {
            *out.entry(key).or_default() += 1;
        }
        *end = (*end).max(rel.wrapping_add(len));
    }
    out
}
