//! `with-seaweed [--keep DIR | --reuse DIR] BUCKET -- COMMAND [ARGS…]`: runs COMMAND
//! next to a SeaweedFS S3 server on loopback (as the tests start it: ports chosen now,
//! `BUCKET` created), with the `AWS_*` environment that reaches it; stops the server
//! when COMMAND ends, and exits with COMMAND's status. For demos and scripts that need a
//! real object store for a moment (scripts/fleet-demo.sh, scripts/bench_fleet.py).
//!
//! The data lives in a temporary directory, deleted at the end, unless `--keep DIR`
//! (a new directory: the store stays there) or `--reuse DIR` (a store kept so: started
//! again on its data and ports) — a benchmark's store is generated once and asked many
//! times.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use tcpfr_testsupport::Seaweed;

const USAGE: &str = "usage: with-seaweed [--keep DIR | --reuse DIR] BUCKET -- COMMAND [ARGS…]";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut home: Option<(bool, PathBuf)> = None;
    while let Some(flag) = args.first().filter(|a| *a == "--keep" || *a == "--reuse").cloned() {
        let Some(dir) = args.get(1).cloned() else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        home = Some((flag == "--reuse", PathBuf::from(dir)));
        args.drain(..2);
    }
    let (bucket, cmd) = match args.iter().position(|a| a == "--") {
        Some(1) if args.len() > 2 => (&args[0], &args[2..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sw = match home {
        None => Ok(Seaweed::start(bucket)),
        Some((false, dir)) => Seaweed::start_kept(&dir, bucket),
        Some((true, dir)) => Seaweed::reuse(&dir, bucket),
    };
    let sw = match sw {
        Ok(sw) => sw,
        Err(e) => {
            eprintln!("with-seaweed: {e}");
            return ExitCode::from(2);
        }
    };
    let mut c = Command::new(&cmd[0]);
    sw.configure(&mut c);
    let status = c.args(&cmd[1..]).status();
    drop(sw);
    match status {
        Ok(st) => ExitCode::from(st.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("with-seaweed: cannot run {}: {e}", cmd[0]);
            ExitCode::from(127)
        }
    }
}
