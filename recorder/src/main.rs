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

unsafe extern "C" {
    // mimalloc's own, in the library libmimalloc-sys links in (its Rust side declares
    // them only with a feature that needs one more crate). Options are numbered by
    // `mi_option_e` of mimalloc v3, which libmimalloc-sys builds unless told `v2` (the
    // numbers differ between the two); the tests read each back by its number.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// `mi_option_purge_delay`: milliseconds before freed memory goes back to the kernel.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Freed memory goes back to the kernel at once. mimalloc's default keeps it a second
/// for reuse; the recorder frees start-up memory once and per-flush buffers that the
/// next flush would fault in again cheaply, and the memory it holds is what a host
/// with the recorder left on pays for.
fn return_freed_memory_at_once() {
    // SAFETY: sets an allocator option; no pointers involved.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// `mi_option_allow_thp`: whether mimalloc asks for transparent huge pages.
const MI_OPTION_ALLOW_THP: std::ffi::c_int = 43;

/// No transparent huge pages. mimalloc asks for them on its arena (`MADV_HUGEPAGE`),
/// and a huge page stays resident as a whole while any 4 KiB of it is in use, so
/// memory freed inside it never goes back: with 10,000 idle connections the heap held
/// 30–40 MB with them and 16 MB without. mimalloc reads its option when it starts,
/// before `main`, so the process also tells the kernel (`PR_SET_THP_DISABLE`), which
/// covers the arena already mapped.
fn no_huge_pages() {
    // SAFETY: sets an allocator option, then a flag of this process; no pointers.
    unsafe {
        mi_option_set(MI_OPTION_ALLOW_THP, 0);
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

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
    return_freed_memory_at_once();
    no_huge_pages();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's purge delay: read by that number, mimalloc's
    /// default for it (1000 ms) comes back, then what we set.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        // SAFETY: reads an allocator option.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000, "mimalloc's default purge delay");
        return_freed_memory_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
    }

    #[test]
    fn huge_pages_are_off_for_the_allocator_and_the_process() {
        // SAFETY: reads an allocator option and a process flag.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_ALLOW_THP) }, 1, "mimalloc's default: allowed");
        no_huge_pages();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_ALLOW_THP) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }
}
