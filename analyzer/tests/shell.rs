//! The interactive shell, driven through a pseudo-terminal as a person would.

mod common;

use common::*;

#[test]
fn shell_lists_describes_queries_and_quits() {
    let cmd = format!("{} query {}", env!("CARGO_BIN_EXE_tcpfr"), sample("refused").display());
    let mut p = rexpect::spawn(&cmd, Some(30_000)).unwrap();
    p.exp_string("\\d lists tables").unwrap();
    p.exp_string("tcpfr> ").unwrap();
    p.send_line("\\d").unwrap();
    p.exp_string("retransmits").unwrap();
    p.exp_string("recorder_stats").unwrap();
    p.exp_string("tcpfr> ").unwrap();
    p.send_line("\\d flows").unwrap();
    p.exp_string("handshake_ns").unwrap();
    p.exp_string("tcpfr> ").unwrap();
    // A statement over two lines.
    p.send_line("SELECT handshake, count(*) AS n FROM flows").unwrap();
    p.exp_string("..> ").unwrap();
    p.send_line("WHERE role = 'client' GROUP BY 1 ORDER BY 1;").unwrap();
    p.exp_string("completed").unwrap();
    p.exp_string("refused").unwrap();
    p.exp_string("(2 rows)").unwrap();
    // Errors do not end the shell.
    p.send_line("SELECT * FROM nope;").unwrap();
    p.exp_string("Tables:").unwrap();
    p.send_line("DROP VIEW flows;").unwrap();
    p.exp_string("queries only").unwrap();
    p.send_line("SELECT count(*) AS still_here FROM flows;").unwrap();
    p.exp_string("still_here").unwrap();
    p.send_line("\\q").unwrap();
    p.exp_eof().unwrap();
}
