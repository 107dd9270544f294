//! `tcpfr-recorder`: records TCP retransmits, state changes, resets, RTT samples,
//! per-connection summaries and host counters into a tcpfr recording (Parquet). The
//! pipeline lives in the library (`lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use tcpfr_recorder::{pipeline, Options};

/// mimalloc keeps freed memory for reuse: the pipeline allocates and frees large
/// buffers every second, which glibc's allocator hands back to the kernel each time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ask a running recorder to freeze an incident window into DIR/snapshots/.
///
/// The window is [now − before, now + after]; the snapshot completes once `after` has
/// passed. A request while a snapshot is being made extends it.
#[derive(Debug, Parser)]
#[command(name = "tcpfr-recorder snapshot", version, max_term_width = 100)]
struct SnapshotCmd {
    /// The running recorder's --out directory.
    #[arg(long, short, value_name = "DIR")]
    out: std::path::PathBuf,
    /// How much before now to keep (default: the recorder's --snapshot-before).
    #[arg(long, value_parser = humantime::parse_duration)]
    before: Option<std::time::Duration>,
    /// How much after now to keep (default: the recorder's --snapshot-after).
    #[arg(long, value_parser = humantime::parse_duration)]
    after: Option<std::time::Duration>,
    /// Why (goes into the snapshot's name and manifest).
    #[arg(long, default_value = "requested")]
    reason: String,
}

fn snapshot(cmd: SnapshotCmd) -> ExitCode {
    let fmt = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let req = tcpfr_recorder::control::SnapshotRequest {
        before: cmd.before.map(fmt),
        after: cmd.after.map(fmt),
        reason: Some(cmd.reason),
    };
    match tcpfr_recorder::control::request_snapshot(&cmd.out, &req) {
        Ok(dir) => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tcpfr-recorder snapshot: {}", tcpfr_schema::error::chain_text(e.chain()));
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "snapshot") {
        return snapshot(SnapshotCmd::parse_from(std::env::args_os().skip(1)));
    }
    let opts = Options::parse();
    // object_store logs each retry of a request at info; --ship's own warnings say
    // what failed (RUST_LOG shows them all).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{},object_store=warn", opts.log)));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tcpfr-recorder: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(pipeline::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpfr-recorder: {}", tcpfr_schema::error::chain_text(e.chain()));
            ExitCode::FAILURE
        }
    }
}
