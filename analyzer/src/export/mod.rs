//! `tcpfr export openmetrics`: a recording as Prometheus time series, to backfill with
//! `promtool tsdb create-blocks-from openmetrics FILE DIR` and look at in Grafana next
//! to the rest of the fleet's metrics.
//!
//! The families, labels and buckets are the ones `tcpfr-recorder --metrics-listen`
//! serves live (a contract shared with the recorder), so dashboards and alerts work on
//! both. What an export adds or decides:
//!
//! * **Counters count from 0 at the start of the exported window**, sampled at every
//!   step (`--step`, default 10 s) on a grid aligned to multiples of the step since the
//!   epoch. An event at time t is counted in the first sample after it (t < sample
//!   time); the last sample is at or after the window's end, so a query at the end of
//!   the recording sees every event. A series appears one step before its first event,
//!   at 0, so `rate()`/`increase()` see its first increase.
//! * **Host counters** (`tcpfr_host_tcp_*`) are the recording's per-interval deltas
//!   (`host_counters`, which holds no absolute values since boot) summed over the
//!   network namespaces recorded and cumulated from 0 at the window start; these series
//!   start at the window start whatever their first value, so the retransmit ratio
//!   `rate(retrans[R]) / rate(out[R])` is exact.
//! * **`peer`** is one of the `--max-peers` remote addresses with the most events in
//!   the window (retransmits, retransmit failures, resets, failed handshakes; then RTT
//!   samples; then address order), over all recordings given; any other address, or
//!   none, is `other`.
//! * **`host`**: the contract has no host label, as one recorder is one host. When the
//!   data holds more than one host, every series gets a `host` label (first), or the
//!   series of different hosts would collide.
//!
//! Everything is computed in SQL (per step × labels) over the analyzer's views, then
//! cumulated while the sorted result streams into the file: memory is bounded by the
//! aggregated result, not the recording. The file is written beside the output and
//! renamed into place when complete.

mod openmetrics;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::dataset::Dataset;
use crate::env::Env;
use crate::outfile::OutFile;
use crate::services::ServiceMap;
use crate::window::Window;

/// Most samples per series: beyond it the file would be unwieldy, and a larger step is
/// what was meant.
const MAX_STEPS: i64 = 5_000_000;

pub struct Request<'a> {
    pub recs: &'a [PathBuf],
    pub output: &'a Path,
    pub step: Duration,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub last: Option<Duration>,
    pub services: Option<&'a Path>,
    pub max_peers: usize,
    pub force: bool,
}

/// `--step`: a duration of whole milliseconds (Prometheus' resolution), at least 1 ms.
pub fn parse_step(s: &str) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e}: use a duration such as 1s, 10s, 1m"))?;
    if d.is_zero() {
        return Err("the step must be longer than 0: use a duration such as 1s, 10s, 1m".into());
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err("Prometheus stores milliseconds: use a step of whole milliseconds (e.g. 500ms, 1s, 10s)".into());
    }
    Ok(d)
}

/// The exported time grid: samples at `t0 + k × step` for k = 0..=steps.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub t0: i64,
    pub step: i64,
    pub steps: i64,
}

impl Grid {
    pub fn time(&self, k: i64) -> i64 {
        self.t0 + k * self.step
    }

    /// SQL for the step in which a row at `time` is counted: the first sample after it.
    pub fn k_sql(&self) -> String {
        format!("((CAST(time AS BIGINT) - {}) / {} + 1)", self.t0, self.step)
    }
}

pub async fn openmetrics(env: &Env, req: Request<'_>) -> Result<()> {
    let output = req.output;
    if output.is_dir() {
        bail!("{} is a directory: -o names the file to write (e.g. -o tcpfr.om)", output.display());
    }
    if output.exists() && !req.force {
        bail!("{} already exists: choose another -o FILE, or pass --force to replace it", output.display());
    }
    let ds = Dataset::open(env, req.recs).await?;
    let Some((lo, hi)) = ds.time_range else {
        bail!("the recordings hold no data: nothing to export");
    };
    let w = Window::parse(req.from, req.to, req.last, ds.time_range)?;
    let services = ServiceMap::load(req.services)?;
    // Clip the window to the data, so series do not start long before anything happened.
    let from = w.from.unwrap_or(lo).max(lo);
    let to = w.to.unwrap_or(hi + 1).min(hi + 1);
    if from >= to {
        bail!(
            "the window holds no data: the recordings span {} to {}",
            crate::export::openmetrics::rfc3339(lo),
            crate::export::openmetrics::rfc3339(hi)
        );
    }
    let step = i64::try_from(req.step.as_nanos()).map_err(|_| anyhow!("--step is too long"))?;
    let t0 = from.div_euclid(step) * step;
    let steps = (to - t0 + step - 1) / step;
    if steps > MAX_STEPS {
        bail!(
            "--step {} over {:.0} s of data makes {steps} samples per series (at most {MAX_STEPS}): choose a larger --step",
            humantime::format_duration(req.step),
            (to - from) as f64 / 1e9
        );
    }
    let grid = Grid { t0, step, steps };
    let window = Window { from: Some(from), to: Some(to) };
    let ctx = crate::session::context(env, &ds, &window, &services).await?;

    let out = OutFile::create(output, req.force)?;
    let stats = {
        let mut w = BufWriter::with_capacity(1 << 20, out.file());
        let stats = openmetrics::write(&ctx, &grid, req.max_peers, &mut w).await?;
        w.flush().with_context(|| format!("cannot write {}", output.display()))?;
        stats
    };
    let size = out.commit()?;
    eprintln!(
        "wrote {} ({} series, {} samples, {size} bytes; {} to {}, step {}{})",
        output.display(),
        stats.series,
        stats.samples,
        openmetrics::rfc3339(grid.t0),
        openmetrics::rfc3339(grid.time(grid.steps)),
        humantime::format_duration(req.step),
        if stats.host_label { ", a host label on every series: several hosts" } else { "" }
    );
    if stats.series == 0 {
        eprintln!("note: no events in the window; the file holds only the families' descriptions");
    }
    eprintln!("load it: promtool tsdb create-blocks-from openmetrics {} DATA_DIR", output.display());
    Ok(())
}
