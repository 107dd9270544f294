//! Checks of the options that make a run impossible, each an error before the step
//! that would fail: privileges, the kernel and sizes before anything is set up; the
//! RTT mode once the kernel's BTF has been read.

use std::time::Duration;

use anyhow::{bail, Result};
use tcpfr_schema::TableId;

use crate::{loader, Options};

/// The shortest `--rtt-interval` of the socket walk: each walk visits every TCP socket
/// of the namespaces followed, and `0` (every ACK in the per-ACK mode) must not turn
/// it into a busy loop.
const MIN_WALK_INTERVAL: Duration = Duration::from_millis(10);

/// Before anything is set up: our privileges, the kernel, and the sizes of the ring
/// buffer and of what is kept on disk.
pub(super) fn options(opts: &Options) -> Result<()> {
    crate::privileges::check(opts)?;
    loader::check_kernel()?;
    if !opts.ring_size.is_power_of_two() || opts.ring_size < 4096 || opts.ring_size > (1 << 30) {
        bail!("--ring-size must be a power of two between 4KiB and 1GiB (got {})", opts.ring_size);
    }
    disk_limits(opts)
}

/// `--max-disk` holds two segments of the ring, snapshots included.
fn disk_limits(opts: &Options) -> Result<()> {
    if let Some(m) = opts.max_disk {
        if m < 2 * opts.rotate_size {
            bail!(
                "--max-disk ({m} bytes) must hold at least two segments of --rotate-size ({} bytes): raise --max-disk or lower --rotate-size",
                opts.rotate_size
            );
        }
    }
    if let (Some(m), Some(s)) = (opts.max_disk, opts.max_snapshot_disk) {
        if s.saturating_add(2 * opts.rotate_size) > m {
            bail!(
                "--max-snapshot-disk ({s} bytes) leaves less than two segments of --rotate-size for the ring within \
                 --max-disk ({m} bytes): snapshots count against --max-disk; lower --max-snapshot-disk or raise --max-disk"
            );
        }
    }
    Ok(())
}

/// Where `rtt_samples` come from: nowhere if the table is not recorded, every ACK with
/// `--rtt-per-ack`, else the socket walk — if its interval and this kernel allow it.
pub(super) fn rtt_mode(
    opts: &Options,
    enabled: &[bool; TableId::COUNT],
    kernel_btf: &crate::btf::Kernel,
) -> Result<loader::RttMode> {
    if !enabled[TableId::RttSamples.index()] {
        return Ok(loader::RttMode::Off);
    }
    if opts.rtt_per_ack {
        return Ok(loader::RttMode::PerAck);
    }
    if opts.rtt_interval < MIN_WALK_INTERVAL {
        bail!(
            "--rtt-interval {} is shorter than the socket walk allows ({}); sampling every ACK needs --rtt-per-ack",
            humantime::format_duration(opts.rtt_interval),
            humantime::format_duration(MIN_WALK_INTERVAL)
        );
    }
    if !kernel_btf.can_walk() {
        bail!("this kernel's BTF lacks tcp_sock fields the socket walk reads (see the warnings above): record RTT with --rtt-per-ack, or leave rtt_samples out with --streams");
    }
    Ok(loader::RttMode::Walk)
}
