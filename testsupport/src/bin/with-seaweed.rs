//! `with-seaweed BUCKET -- COMMAND [ARGS…]`: runs COMMAND next to a SeaweedFS S3 server
//! on loopback (as the tests start it: ports chosen now, data in a temp dir, `BUCKET`
//! created), with the `AWS_*` environment that reaches it; stops the server when
//! COMMAND ends, and exits with COMMAND's status. For demos and scripts that need a
//! real object store for a moment (scripts/fleet-demo.sh).

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bucket, cmd) = match args.iter().position(|a| a == "--") {
        Some(1) if args.len() > 2 => (&args[0], &args[2..]),
        _ => {
            eprintln!("usage: with-seaweed BUCKET -- COMMAND [ARGS…]");
            return ExitCode::from(2);
        }
    };
    let sw = tcpfr_testsupport::Seaweed::start(bucket);
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
