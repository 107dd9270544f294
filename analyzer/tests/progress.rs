//! Progress bars: on a terminal for long work, never in pipes, machine formats or CI.
//! The bars' start delay is set to 0 so the samples' small captures are "long" enough.

mod common;

use std::process::Command;

use common::*;

fn tcpfr_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tcpfr"));
    c.args(args).env("TCPFR_PROGRESS_DELAY_MS", "0").env("TERM", "xterm").env_remove("CI");
    c
}

/// Everything the program wrote to the terminal, until it exits.
fn on_terminal(c: Command) -> String {
    let mut p = rexpect::session::spawn_command(c, Some(60_000)).unwrap();
    p.exp_eof().unwrap()
}

#[test]
fn capture_and_bundle_show_a_bar_on_a_terminal() {
    let pcap = sample("bulk-loss").join("capture.pcap");
    let out = on_terminal(tcpfr_cmd(&["pcap", pcap.to_str().unwrap()]));
    assert!(out.contains("reading ") && out.contains("capture.pcap ["), "no bar for the capture:\n{out}");
    // The summary itself is there, after the cleared bar.
    assert!(out.contains("retransmissions"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tcpfr");
    let rec = sample("bulk-loss").join("recording");
    let out = on_terminal(tcpfr_cmd(&["bundle", rec.to_str().unwrap(), "-o", bundle.to_str().unwrap()]));
    assert!(out.contains("bundling ") && out.contains("b.tcpfr ["), "no bar for the bundle:\n{out}");
    assert!(bundle.exists());
}

#[test]
fn no_bar_in_pipes_machine_formats_or_ci() {
    let pcap = sample("bulk-loss").join("capture.pcap");
    let rec = sample("bulk-loss").join("recording");
    // Pipes: stdout and stderr captured.
    let out = tcpfr_cmd(&["pcap", pcap.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("reading ") && !err.contains('\x1b'), "bar in a pipe: {err:?}");

    // A terminal, but CSV output: the capture is read by the query, silently.
    let sql = "SELECT count(*) AS n FROM pcap_retransmits";
    let args = ["query", rec.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "--format", "csv", "-c", sql];
    let out = on_terminal(tcpfr_cmd(&args));
    assert!(out.contains('n') && !out.contains("reading "), "bar with --format csv:\n{out}");
    // The same as a table on a terminal does show it: the test above can fail.
    let args = ["query", rec.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "-c", sql];
    let out = on_terminal(tcpfr_cmd(&args));
    assert!(out.contains("reading "), "no bar for a table on a terminal:\n{out}");

    // CI logs: a terminal, but CI is set.
    let mut c = tcpfr_cmd(&["pcap", pcap.to_str().unwrap()]);
    c.env("CI", "true");
    let out = on_terminal(c);
    assert!(!out.contains("reading ") && out.contains("retransmissions"), "bar under CI:\n{out}");
}
