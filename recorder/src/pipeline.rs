//! The recorder's main loop: start-up checks, then ring buffer → enrichment → writer,
//! with host counters and recorder statistics every interval, until a signal or the
//! `--duration` ends it; then everything still open is written and the manifest closed.

use tcpfr_schema::TableId;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::raw::{KernelConfig, RAW_ABI_VERSION};
use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::signal::unix::{signal, SignalKind};

use crate::clock::{mono_ns, Clock};
use crate::enrich::Enricher;
use crate::filter::Filter;
use crate::host_counters::CounterReader;
use crate::procinfo::Cgroups;
use crate::socket_table::SocketTable;
use crate::writer::{Msg, WriterHandle};
use crate::{loader, recorder_stats, Options};

/// Events with kernel timestamps this much before a drain are all in the ring by then.
const WATERMARK_LAG_NS: i64 = 20_000_000;

/// How often the ring is read when the programs have not asked for it.
const RING_POLL: Duration = Duration::from_millis(50);

/// The shortest `--rtt-interval` of the socket walk: each walk visits every TCP socket
/// of the namespaces followed, and `0` (every ACK in the per-ACK mode) must not turn
/// it into a busy loop.
const MIN_WALK_INTERVAL: Duration = Duration::from_millis(10);

/// Rows of each table that are enabled, from `--streams` (tables no kernel program
/// feeds are always on).
fn enabled_streams(opts: &Options) -> [bool; TableId::COUNT] {
    TableId::ALL.map(|t| t.stream_bit() == 0 || opts.streams.is_empty() || opts.streams.contains(&t))
}

/// Snapshots' limits; without --max-snapshot-disk they may take half of --max-disk.
fn snapshot_limits(opts: &Options) -> crate::snapshot::Limits {
    crate::snapshot::Limits {
        max_count: opts.max_snapshots,
        max_bytes: opts.max_snapshot_disk.or(opts.max_disk.map(|m| m / 2)),
        max_window: opts.snapshot_max_window,
        min_gap: opts.snapshot_min_gap,
    }
}

fn host_name(opts: &Options) -> String {
    if let Some(h) = &opts.host {
        return h.clone();
    }
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct.
    unsafe { libc::uname(&mut uts) };
    let c = unsafe { std::ffi::CStr::from_ptr(uts.nodename.as_ptr()) };
    c.to_string_lossy().into_owned()
}

fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string())
}

pub async fn run(mut opts: Options) -> Result<()> {
    crate::privileges::check(&opts)?;
    loader::check_kernel()?;
    if !opts.ring_size.is_power_of_two() || opts.ring_size < 4096 || opts.ring_size > (1 << 30) {
        bail!("--ring-size must be a power of two between 4KiB and 1GiB (got {})", opts.ring_size);
    }
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
    // A bad rules file is an error before anything is loaded.
    let mut rules = match &opts.rules {
        Some(p) => Some(crate::rules::Rules::load(p, opts.snapshot_before, opts.snapshot_after)?),
        None => None,
    };
    // Live metrics: a bad services map or a busy port is an error now too.
    let metrics = match opts.metrics_listen {
        Some(addr) => {
            let services = match &opts.services {
                Some(p) => tcpfr_services::ServiceMap::load_file(p)?,
                None => tcpfr_services::ServiceMap::default(),
            };
            let listener = crate::metrics::http::bind(addr)?;
            Some((std::sync::Arc::new(crate::metrics::Metrics::new(&services, opts.max_peers, opts.max_services)), listener))
        }
        None => {
            if opts.services.is_some() {
                tracing::warn!("--services names the metrics' services: it has no effect without --metrics-listen");
            }
            None
        }
    };
    // --ship: a bad URL is an error now (nothing is sent yet; an unreachable store is not).
    let ship_store = opts.ship.as_deref().map(tcpfr_ship::Store::open).transpose()?;
    // Before anything is loaded: the directory is usable, nobody else can change it,
    // and it is ours alone; from here on it is used by its resolved path.
    let gid = opts.group.as_deref().map(crate::control::group_id).transpose()?;
    let out_dir = crate::outdir::OutDir::open(&opts.out, gid)?;
    opts.out = out_dir.path.clone();
    if let Some(store) = &ship_store {
        crate::ship::check_not_inside(store, &opts.out)?;
    }
    // Bound while this is the only thread: the socket is made under a umask.
    let control = crate::control::bind(&opts.out, gid)?;
    let tracefs = crate::tracefs::ensure_mounted()?;
    let tps = crate::tracefs::load(&tracefs)?;
    let kernel_btf = crate::btf::load(std::path::Path::new(crate::btf::VMLINUX))?;
    let warnings = kernel_btf.warnings.clone();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let enabled = enabled_streams(&opts);
    let rtt_mode = if !enabled[TableId::RttSamples.index()] {
        loader::RttMode::Off
    } else if opts.rtt_per_ack {
        loader::RttMode::PerAck
    } else {
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
        loader::RttMode::Walk
    };
    let mut streams = TableId::ALL.into_iter().filter(|t| enabled[t.index()]).fold(0, |bits, t| bits | t.stream_bit());
    if rtt_mode == loader::RttMode::Walk {
        streams |= tcpfr_schema::raw::stream::RTT_AT_CLOSE;
    }
    let config = KernelConfig {
        abi_version: RAW_ABI_VERSION,
        streams,
        rtt_interval_ns: opts.rtt_interval.as_nanos() as u64,
        flags: kernel_btf.flags,
        wakeup_bytes: (opts.ring_size / 8) as u32,
        probe: tps.probe,
        btf: kernel_btf.offsets,
    };

    let host = host_name(&opts);
    let clock = Clock::new();
    let start_ns = crate::clock::realtime_ns();
    let base = format!("{}-{}", chrono::DateTime::from_timestamp_nanos(start_ns).format("%Y%m%dT%H%M%SZ"), sanitize(&host));
    // A restart within the same second (after a crash) gets a suffix.
    let rec_dir = (1..)
        .map(|n| opts.out.join(if n == 1 { base.clone() } else { format!("{base}-{n}") }))
        .find(|d| !d.exists())
        .expect("a free name");
    let recording_id = uuid::Uuid::now_v7().to_string();
    let wopts = WriterOptions {
        rotate_size: opts.rotate_size,
        rotate_interval_ns: opts.rotate_interval.as_nanos() as i64,
        zstd_level: opts.zstd_level,
        ..WriterOptions::default()
    };
    // What a crashed run left: completed now, the time no recorder ran noted as a gap.
    let mut gaps = Vec::new();
    for r in out_dir.recover_unfinished(&wopts) {
        match r {
            Ok(r) => {
                tracing::warn!("crash recovery: {}", r.summary());
                gaps.push((r.last_time_ns, format!("crash recovery: {}", r.summary())));
            }
            Err(e) => tracing::error!("{}", crate::error_text(&e)),
        }
    }
    let writer = RecordingWriter::create(
        &rec_dir,
        RecordingInfo {
            recording_id,
            host: host.clone(),
            kernel: kernel_release(),
            boot_id: boot_id(),
            clock: ClockInfo { mono_to_utc_offset_ns: clock.offset_ns, max_drift_ns: 0 },
            recorder: RecorderInfo {
                version: format!("tcpfr-recorder {}", env!("CARGO_PKG_VERSION")),
                config: serde_json::to_value(&opts).unwrap_or_default(),
            },
            start_ns,
        },
        wopts,
    )
    .with_context(|| format!("cannot create the recording in {}", rec_dir.display()))?;

    // The uploader looks at --out on its own thread; the writer only pokes it.
    let uploader = match ship_store {
        Some(store) => {
            tracing::info!("shipping closed files to {}", store.url());
            Some(crate::ship::Uploader::spawn(store, opts.out.clone(), rec_dir.clone(), opts.ship_backoff_max)?)
        }
        None => None,
    };
    let ship_stats = uploader.as_ref().map(|u| u.stats.clone());

    let cgroup_root = loader::cgroup2_root().ok();
    let sockets = SocketTable::new(start_ns, Cgroups::new(cgroup_root));
    let filter = Filter { ports: opts.ports.clone(), cidrs: opts.cidrs.clone(), cgroups: opts.cgroups.clone() };
    let mut enr = Enricher::new(&host, clock, sockets, filter);
    enr.enabled = enabled;
    enr.total_retrans_known = kernel_btf.offsets.tcp_total_retrans != tcpfr_schema::raw::NO_OFFSET;
    enr.reset_reasons = tps.reset_reasons.iter().map(|(k, v)| (*k, tcpfr_schema::Str::from(v.as_str()))).collect();

    let loader::Kernel { ebpf: programs, ring, counters, walk } =
        loader::load(config, opts.ring_size as u32, enabled[TableId::Flows.index()], rtt_mode)?;
    // Owners of sockets that already exist, before events about them are read. Scanned
    // after the programs are attached: a socket born between a scan and the attachment
    // would be in neither.
    enr.sockets.scan_proc();
    let writer = WriterHandle::spawn(
        writer,
        crate::writer::Config {
            out: opts.out.clone(),
            retention: crate::ring::Retention { max_bytes: opts.max_disk, max_age: opts.max_age },
            snapshots: snapshot_limits(&opts),
            metrics: metrics.as_ref().map(|(m, _)| m.clone()),
            ship: ship_stats.clone(),
        },
    );
    if let Some((m, listener)) = metrics {
        let fill = crate::ring_fill::RingFill::new(std::os::fd::AsFd::as_fd(&ring), opts.ring_size);
        let mut exporter = crate::metrics::Exporter::new(m, writer.stats.clone(), fill, opts.out.clone());
        exporter.ship = ship_stats.clone();
        let addr = listener.local_addr()?;
        crate::metrics::http::spawn(listener, std::sync::Arc::new(exporter))?;
        tracing::info!("metrics at http://{addr}/metrics");
    }

    // Host counters: a thread of their own (it switches network namespaces). Its first
    // reading is the baseline, taken before we report ready.
    // The socket walk runs there too: it needs to enter each namespace as well.
    let walk = walk.map(|w| (w, opts.rtt_interval));
    let counters_thread = CountersThread::spawn(enr.host.clone(), opts.netns, opts.counters_interval, walk)?;
    crate::privileges::drop_after_startup(|| counters.get(&0, 0).is_ok())?;
    tracing::info!("recording to {}", rec_dir.display());

    let mut stats = recorder_stats::StatsState::new(start_ns);
    let mut pending_stats = vec![recorder_stats::note(
        &enr.host,
        start_ns,
        format!("recorder started: tcpfr-recorder {} on kernel {}", env!("CARGO_PKG_VERSION"), kernel_release().unwrap_or_default()),
    )];
    for w in warnings {
        pending_stats.push(recorder_stats::note(&enr.host, start_ns, w));
    }
    if let Some(w) = opts.max_disk.and_then(|m| crate::outdir::capacity_warning(&opts.out, m)) {
        tracing::warn!("{w}");
        pending_stats.push(recorder_stats::note(&enr.host, start_ns, w));
    }
    for (last, text) in gaps {
        pending_stats.push(recorder_stats::gap(&enr.host, last.unwrap_or(start_ns).min(start_ns), start_ns, text));
    }

    // SAFETY: the ring buffer's fd stays open as long as `ring` (owned by AsyncFd).
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot poll the ring buffer: {}", e.into_parts().1))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut tick = tokio::time::interval(opts.counters_interval.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The programs wake us only when the ring is filling up (see
    // `KernelConfig::wakeup_bytes`); everything else is picked up by this poll.
    let mut poll = tokio::time::interval(RING_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut reported_netns = ahash::AHashSet::new();
    let mut ship_last_ns = start_ns;
    let control_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(crate::control::MAX_CONNECTIONS));

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain_some(guard.get_inner_mut(), &mut enr);
                guard.clear_ready();
            }
            _ = poll.tick() => drain_some(ring.get_mut(), &mut enr),
            _ = tick.tick() => {
                drain(ring.get_mut(), &mut enr);
                let now_mono = mono_ns();
                enr.clock.refresh();
                let now = enr.clock.utc(now_mono as u64);
                let new_ns: Vec<u32> = enr.netns_seen.difference(&reported_netns).copied().collect();
                if !new_ns.is_empty() {
                    reported_netns.extend(new_ns.iter().copied());
                    counters_thread.seen(new_ns);
                }
                let host_counters = counters_thread.rows();
                let counts = std::mem::take(&mut enr.counts);
                let mut rs = std::mem::take(&mut pending_stats);
                rs.extend(recorder_stats::rows(
                    &mut stats,
                    recorder_stats::Inputs {
                        host: &enr.host,
                        now,
                        counts: &counts,
                        lost: loader::lost(&counters),
                        rate_limited: loader::counter(&counters, recorder_stats::RTT_RATE_LIMITED),
                        misses: &loader::recursion_misses(&programs),
                        writer: &writer.stats,
                        enabled: &enr.enabled,
                    },
                ));
                if let Some(err) = writer.stats.last_error.lock().unwrap().take() {
                    rs.push(recorder_stats::note(&enr.host, now, format!("write error: {err}")));
                }
                if let Some(s) = &ship_stats {
                    rs.push(recorder_stats::ship(&mut ship_last_ns, &enr.host, now, s));
                }
                let rows = enr.take_rows();
                let triggered = match rules.as_mut() {
                    Some(r) => r.observe(&rows, now, opts.counters_interval.min(Duration::from_secs(1))),
                    None => Vec::new(),
                };
                let msg = Msg::Flush {
                    rows,
                    host_counters,
                    recorder_stats: rs,
                    watermark: now - WATERMARK_LAG_NS,
                    now,
                };
                if writer.tx.send(msg).is_err() {
                    bail!("the writer thread stopped");
                }
                for req in triggered {
                    if writer.tx.send(Msg::Snapshot { req, reply: None }).is_err() {
                        bail!("the writer thread stopped");
                    }
                }
            }
            _ = sigusr1.recv() => {
                let req = crate::snapshot::Request {
                    at_ns: crate::clock::realtime_ns(),
                    before: opts.snapshot_before,
                    after: opts.snapshot_after,
                    reason: "SIGUSR1".into(),
                    source: "SIGUSR1".into(),
                };
                if writer.tx.send(Msg::Snapshot { req, reply: None }).is_err() {
                    bail!("the writer thread stopped");
                }
            }
            conn = control.accept() => {
                if let Ok((stream, _)) = conn {
                    let Ok(permit) = control_slots.clone().try_acquire_owned() else {
                        crate::control::refuse_busy(stream);
                        continue;
                    };
                    let tx = writer.tx.clone();
                    let defaults = (opts.snapshot_before, opts.snapshot_after);
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
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
        }
    }

    // Shipping: let the uploader send what has closed (bounded), so that the last
    // `recorder_stats` rows say what is left; the writer handles what it was sent first.
    if let Some(u) = &uploader {
        let (tx, rx) = mpsc::channel();
        if writer.tx.send(Msg::Sync(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        if !u.drain(crate::ship::DRAIN_TIMEOUT) {
            tracing::warn!("stopping: closed files are still waiting for upload (the last recorder_stats rows count them)");
        }
    }
    // Shutting down: take what is left in the ring, then close every open connection.
    drain(ring.get_mut(), &mut enr);
    let end = enr.clock.utc(mono_ns() as u64);
    crate::flows::write_open_at_end(&mut enr, end);
    let counts = std::mem::take(&mut enr.counts);
    let mut rs = std::mem::take(&mut pending_stats);
    rs.extend(recorder_stats::rows(
        &mut stats,
        recorder_stats::Inputs {
            host: &enr.host,
            now: end,
            counts: &counts,
            lost: loader::lost(&counters),
            rate_limited: loader::counter(&counters, recorder_stats::RTT_RATE_LIMITED),
            misses: &loader::recursion_misses(&programs),
            writer: &writer.stats,
            enabled: &enr.enabled,
        },
    ));
    if let Some(s) = &ship_stats {
        rs.push(recorder_stats::ship(&mut ship_last_ns, &enr.host, end, s));
    }
    let mut note = format!("recorder stopped; {} sockets were open", enr.sockets.len());
    if enr.undecodable > 0 {
        note.push_str(&format!("; {} ring records could not be decoded", enr.undecodable));
    }
    rs.push(recorder_stats::note(&enr.host, end, note));
    // A last reading of the host counters covers the final partial interval.
    let host_counters = counters_thread.stop();
    let _ = writer.tx.send(Msg::Finish { rows: enr.take_rows(), host_counters, recorder_stats: rs, end });
    let manifest = writer.join().context("finishing the recording");
    // The last segment and the final manifest (with `end`) go too, if the store lets us.
    if let Some(u) = uploader {
        if manifest.is_ok() {
            u.stats.wake();
            if !u.drain(crate::ship::DRAIN_TIMEOUT) {
                let s = &u.stats;
                tracing::warn!(
                    "stopping with {} file(s) ({} bytes) not shipped: the next start of tcpfr-recorder --ship (or `tcpfr ship`) sends them",
                    s.unshipped_files.load(std::sync::atomic::Ordering::Relaxed),
                    s.unshipped_bytes.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        }
        u.stop();
    }
    let manifest = manifest?;
    let _ = std::fs::remove_file(opts.out.join(crate::control::SOCKET));
    let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
    tracing::info!("recording complete: {} ({} files, {rows} rows)", rec_dir.display(), manifest.files.len());
    Ok(())
}

/// The host-counters thread and its channels.
struct CountersThread {
    cmd: mpsc::Sender<CountersCmd>,
    rows: mpsc::Receiver<Vec<tcpfr_schema::host_counters::HostCounters>>,
    thread: std::thread::JoinHandle<()>,
}

enum CountersCmd {
    /// Namespaces newly seen in events.
    Seen(Vec<u32>),
    /// Take a final reading and exit.
    Stop,
}

impl CountersThread {
    /// `walk`: the socket walk and how often to run it, in every namespace followed.
    fn spawn(
        host: tcpfr_schema::Str,
        mode: crate::host_counters::NetnsMode,
        interval: Duration,
        walk: Option<(loader::RttWalk, Duration)>,
    ) -> Result<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel::<CountersCmd>();
        let (rows_tx, rows_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let thread = std::thread::Builder::new().name("tcpfr-counters".into()).spawn(move || {
            crate::privileges::confine_thread(crate::privileges::Role::Counters);
            let mut reader = match CounterReader::new(mode) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = reader.sample(crate::clock::realtime_ns(), &host);
            let _ = ready_tx.send(Ok(()));
            let mut next = std::time::Instant::now() + interval;
            // The first walk at once: it samples every connection open now.
            let mut next_walk = walk.as_ref().map(|_| std::time::Instant::now());
            let mut walk_errors = 0u64;
            // Per namespace, its segment counters at its last walk: a namespace where
            // no segment moved since has nothing to sample, and is not walked (the
            // walk costs per socket, idle or not).
            let mut walked_at: std::collections::HashMap<u32, [i64; 3]> = std::collections::HashMap::new();
            loop {
                let due = next_walk.map_or(next, |w| w.min(next));
                let wait = due.saturating_duration_since(std::time::Instant::now());
                match cmd_rx.recv_timeout(wait) {
                    Ok(CountersCmd::Seen(ns)) => {
                        reader.discover(&ns);
                        continue;
                    }
                    Ok(CountersCmd::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        let _ = rows_tx.send(reader.sample(crate::clock::realtime_ns(), &host));
                        return;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                let now = std::time::Instant::now();
                if let (Some(at), Some((w, every))) = (next_walk.as_mut(), walk.as_ref()) {
                    if now >= *at {
                        reader.in_each_namespace(|ns| {
                            let segs = crate::host_counters::segment_counts();
                            if segs.is_some() && walked_at.get(&ns) == segs.as_ref() {
                                return;
                            }
                            match w.run() {
                                Ok(()) => {
                                    if let Some(segs) = segs {
                                        walked_at.insert(ns, segs);
                                    }
                                }
                                Err(e) => {
                                    // Said once; a walk that fails keeps failing the same way.
                                    walk_errors += 1;
                                    if walk_errors == 1 {
                                        tracing::warn!("the socket walk (rtt_samples) failed in netns {ns}: {e}");
                                    }
                                }
                            }
                        });
                        // A late walk does not make the next one come sooner.
                        *at = (*at + *every).max(std::time::Instant::now() + *every / 2);
                    }
                }
                if now >= next {
                    next += interval;
                    let _ = rows_tx.send(reader.sample(crate::clock::realtime_ns(), &host));
                    // Every tenth reading, look for new named namespaces.
                    reader.tick_discover();
                }
            }
        })?;
        ready_rx.recv().context("the host-counters thread died")??;
        Ok(CountersThread { cmd: cmd_tx, rows: rows_rx, thread })
    }

    fn seen(&self, ns: Vec<u32>) {
        let _ = self.cmd.send(CountersCmd::Seen(ns));
    }

    /// Rows read since the last call.
    fn rows(&self) -> Vec<tcpfr_schema::host_counters::HostCounters> {
        let mut out = Vec::new();
        while let Ok(r) = self.rows.try_recv() {
            out.extend(r);
        }
        out
    }

    fn stop(self) -> Vec<tcpfr_schema::host_counters::HostCounters> {
        let CountersThread { cmd, rows, thread } = self;
        let _ = cmd.send(CountersCmd::Stop);
        let _ = thread.join();
        rows.try_iter().flatten().collect()
    }
}

/// Takes at most 64K events, so ticks and signals are not starved under heavy load.
fn drain_some(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, enr: &mut Enricher) {
    for _ in 0..65536 {
        match ring.next() {
            Some(item) => enr.handle_bytes(&item),
            None => break,
        }
    }
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, enr: &mut Enricher) {
    while let Some(item) = ring.next() {
        enr.handle_bytes(&item);
    }
}

fn sanitize(host: &str) -> String {
    host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}
