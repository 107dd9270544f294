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

fn main() -> ExitCode {
    let opts = Options::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&opts.log));
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
            eprintln!("tcpfr-recorder: {e:#}");
            ExitCode::FAILURE
        }
    }
}
