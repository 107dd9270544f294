//! The recorder's main loop: start-up checks, then ring buffer → enrichment → writer,
//! with host counters and recorder statistics every interval, until a signal or the
//! `--duration` ends it; then everything still open is written and the manifest closed.
//!
//! [`run`] reads as those steps: `checks::options` (`checks.rs`), `Recorder::start`
//! (`start.rs`), the event loop calling a `Recorder` method per event (here), and
//! `Recorder::finish` (`finish.rs`). The host-counters thread is in `counters.rs`.

mod checks;
mod counters;
mod finish;
mod start;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tcpfr_schema::recorder_stats::RecorderStats;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::clock::mono_ns;
use crate::enrich::Enricher;
use crate::writer::{Msg, WriterHandle};
use crate::{loader, recorder_stats, Options};
use counters::CountersThread;

/// Events with kernel timestamps this much before a drain are all in the ring by then.
const WATERMARK_LAG_NS: i64 = 20_000_000;

/// How often the ring is read when the programs have not asked for it.
const RING_POLL: Duration = Duration::from_millis(50);

type Ring = aya::maps::RingBuf<aya::maps::MapData>;

pub async fn run(opts: Options) -> Result<()> {
    checks::options(&opts)?;
    let mut rec = Recorder::start(opts)?;
    let mut wake = Wakeups::new(&rec.opts)?;
    loop {
        tokio::select! {
            guard = rec.ring.readable_mut() => {
                let mut guard = guard?;
                drain_some(guard.get_inner_mut(), &mut rec.enr);
                guard.clear_ready();
            }
            _ = wake.poll.tick() => drain_some(rec.ring.get_mut(), &mut rec.enr),
            _ = wake.tick.tick() => rec.on_tick()?,
            _ = wake.sigusr1.recv() => rec.snapshot_on_signal()?,
            conn = rec.control.accept() => rec.accept_control(conn),
            _ = wake.sigint.recv() => break,
            _ = wake.sigterm.recv() => break,
            _ = until(wake.deadline) => break,
        }
    }
    rec.finish()
}

/// One run's state, from [`Recorder::start`] to [`Recorder::finish`]. Fields drop in
/// this order (after `finish`, or on an error): the ring before the programs that fill
/// it, the control socket before the lock on `--out`.
struct Recorder {
    /// `out` is the resolved `--out`.
    opts: Options,
    /// This run's recording, in `--out`.
    rec_dir: std::path::PathBuf,
    /// The ring buffer the programs write into.
    ring: AsyncFd<Ring>,
    enr: Enricher,
    /// Keeps the programs attached; read for their recursion misses.
    programs: aya::Ebpf,
    /// The kernel's per-CPU totals (lost events, rate-limited samples).
    counters: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    /// The kernel's drop counts, taken out every interval.
    drops: Option<crate::drops::DropCounts>,
    writer: WriterHandle,
    counters_thread: CountersThread,
    uploader: Option<crate::ship::Uploader>,
    ship_stats: Option<Arc<crate::ship::ShipStats>>,
    rules: Option<crate::rules::Rules>,
    /// Totals at the previous `recorder_stats` rows.
    stats: recorder_stats::StatsState,
    /// Notes for the next `recorder_stats` rows (start-up notes and gaps at first).
    pending_stats: Vec<RecorderStats>,
    /// Namespaces already passed to the host-counters thread.
    reported_netns: ahash::AHashSet<u32>,
    /// The time of the previous `ship` row.
    ship_last_ns: i64,
    control: tokio::net::UnixListener,
    control_slots: Arc<tokio::sync::Semaphore>,
    /// Holds the lock on `--out` until the end.
    _out_dir: crate::outdir::OutDir,
}

/// What wakes the event loop besides the ring buffer and the control socket.
struct Wakeups {
    sigint: Signal,
    sigterm: Signal,
    sigusr1: Signal,
    tick: tokio::time::Interval,
    poll: tokio::time::Interval,
    deadline: Option<tokio::time::Instant>,
}

impl Wakeups {
    fn new(opts: &Options) -> Result<Wakeups> {
        let sigint = signal(SignalKind::interrupt())?;
        let sigterm = signal(SignalKind::terminate())?;
        let sigusr1 = signal(SignalKind::user_defined1())?;
        let mut tick = tokio::time::interval(opts.counters_interval.min(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The programs wake us only when the ring is filling up (see
        // `KernelConfig::wakeup_bytes`); everything else is picked up by this poll.
        let mut poll = tokio::time::interval(RING_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
        Ok(Wakeups { sigint, sigterm, sigusr1, tick, poll, deadline })
    }
}

/// `--duration`'s end; never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Recorder {
    /// Every interval: the ring read to the end, then this interval's rows, host
    /// counters and `recorder_stats` to the writer, and the snapshots rules triggered.
    fn on_tick(&mut self) -> Result<()> {
        drain(self.ring.get_mut(), &mut self.enr);
        if let Some(d) = self.drops.as_mut() {
            d.drain(&mut self.enr);
        }
        let now_mono = mono_ns();
        self.enr.clock.refresh();
        let now = self.enr.clock.utc(now_mono as u64);
        let new_ns: Vec<u32> = self.enr.netns_seen.difference(&self.reported_netns).copied().collect();
        if !new_ns.is_empty() {
            self.reported_netns.extend(new_ns.iter().copied());
            self.counters_thread.seen(new_ns);
        }
        let host_counters = self.counters_thread.rows();
        let mut rs = self.stats_rows(now);
        if let Some(err) = self.writer.stats.last_error.lock().unwrap().take() {
            rs.push(recorder_stats::note(&self.enr.host, now, format!("write error: {err}")));
        }
        rs.extend(self.counters_thread.notes().into_iter().map(|n| recorder_stats::note(&self.enr.host, now, n)));
        rs.extend(self.ship_row(now));
        let rows = self.enr.take_rows();
        let triggered = match self.rules.as_mut() {
            Some(r) => r.observe(&rows, now, self.opts.counters_interval.min(Duration::from_secs(1))),
            None => Vec::new(),
        };
        let msg = Msg::Flush {
            rows,
            host_counters,
            recorder_stats: rs,
            watermark: now - WATERMARK_LAG_NS,
            now,
        };
        self.send(msg)?;
        for req in triggered {
            self.send(Msg::Snapshot { req, reply: None })?;
        }
        Ok(())
    }

    /// The notes pending, then a row per stream for the interval up to `now` (what the
    /// enricher counted since the last call, what the kernel and the writer say).
    fn stats_rows(&mut self, now: i64) -> Vec<RecorderStats> {
        let counts = std::mem::take(&mut self.enr.counts);
        let mut rs = std::mem::take(&mut self.pending_stats);
        rs.extend(recorder_stats::rows(
            &mut self.stats,
            recorder_stats::Inputs {
                host: &self.enr.host,
                now,
                counts: &counts,
                lost: loader::lost(&self.counters),
                rate_limited: loader::counter(&self.counters, recorder_stats::RTT_RATE_LIMITED),
                walk_deferred: loader::counter(&self.counters, recorder_stats::WALK_DEFERRED),
                misses: &loader::recursion_misses(&self.programs),
                writer: &self.writer.stats,
                enabled: &self.enr.enabled,
            },
        ));
        rs
    }

    /// The `ship` row up to `now` (with `--ship` only).
    fn ship_row(&mut self, now: i64) -> Option<RecorderStats> {
        let s = self.ship_stats.as_ref()?;
        Some(recorder_stats::ship(&mut self.ship_last_ns, &self.enr.host, now, s))
    }

    fn snapshot_on_signal(&self) -> Result<()> {
        let req = crate::snapshot::Request {
            at_ns: crate::clock::realtime_ns(),
            before: self.opts.snapshot_before,
            after: self.opts.snapshot_after,
            reason: "SIGUSR1".into(),
            source: "SIGUSR1".into(),
        };
        self.send(Msg::Snapshot { req, reply: None })
    }

    /// A connection to the control socket: served on a task of its own, at most
    /// `control::MAX_CONNECTIONS` at a time (others are told to try again).
    fn accept_control(&self, conn: std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)>) {
        let Ok((stream, _)) = conn else { return };
        let Ok(permit) = self.control_slots.clone().try_acquire_owned() else {
            crate::control::refuse_busy(stream);
            return;
        };
        let tx = self.writer.tx.clone();
        let defaults = (self.opts.snapshot_before, self.opts.snapshot_after);
        tokio::spawn(async move {
            crate::control::serve(stream, move |r| async move {
                let req = r.to_request(defaults)?;
                let (rtx, rrx) = tokio::sync::oneshot::channel();
                tx.send(Msg::Snapshot { req, reply: Some(rtx) }).map_err(|_| "the recorder is stopping".to_string())?;
                rrx.await.map_err(|_| "the recorder is stopping".to_string())?
            })
            .await;
            drop(permit);
        });
    }

    fn send(&self, msg: Msg) -> Result<()> {
        if self.writer.tx.send(msg).is_err() {
            bail!("the writer thread stopped");
        }
        Ok(())
    }
}

/// Takes at most 64K events, so ticks and signals are not starved under heavy load.
fn drain_some(ring: &mut Ring, enr: &mut Enricher) {
    for _ in 0..65536 {
        match ring.next() {
            Some(item) => crate::events::handle_bytes(enr, &item),
            None => break,
        }
    }
}

fn drain(ring: &mut Ring, enr: &mut Enricher) {
    while let Some(item) = ring.next() {
        crate::events::handle_bytes(enr, &item);
    }
}
