//! [`Recorder::start`]: from checked options to a running recorder. First what can fail
//! on a bad option or a busy resource (before anything is loaded), then the kernel's
//! facts, the recording and its uploader ([`Prepared`]); then the programs are loaded
//! and the threads started ([`Prepared::launch`]). The order is the one the comments
//! give reasons for: keep it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::raw::{KernelConfig, RAW_ABI_VERSION};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
use tcpfr_schema::{Str, TableId};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{checks, CountersThread, Recorder};
use crate::clock::Clock;
use crate::enrich::Enricher;
use crate::filter::Filter;
use crate::procinfo::Cgroups;
use crate::socket_table::SocketTable;
use crate::writer::WriterHandle;
use crate::{loader, recorder_stats, Options};

/// The live metrics and the port they are served on (`--metrics-listen`).
type MetricsListen = (Arc<crate::metrics::Metrics>, std::net::TcpListener);

/// Everything that is ready before the programs are loaded.
struct Prepared {
    /// `out` resolved.
    opts: Options,
    rules: Option<crate::rules::Rules>,
    metrics: Option<MetricsListen>,
    out_dir: crate::outdir::OutDir,
    control: tokio::net::UnixListener,
    kernel: KernelSetup,
    recording: Recording,
    uploader: Option<crate::ship::Uploader>,
    enr: Enricher,
}

impl Recorder {
    pub(super) fn start(opts: Options) -> Result<Recorder> {
        Prepared::new(opts)?.launch()
    }
}

impl Prepared {
    fn new(mut opts: Options) -> Result<Prepared> {
        // A bad rules file is an error before anything is loaded.
        let rules = match &opts.rules {
            Some(p) => Some(crate::rules::Rules::load(p, opts.snapshot_before, opts.snapshot_after)?),
            None => None,
        };
        let metrics = bind_metrics(&opts)?;
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
        let kernel = KernelSetup::read(&opts)?;
        let recording = Recording::create(&opts, &out_dir)?;
        let uploader = spawn_uploader(ship_store, &opts, &recording.dir)?;
        let enr = enricher(&opts, &recording, &kernel);
        Ok(Prepared { opts, rules, metrics, out_dir, control, kernel, recording, uploader, enr })
    }

    /// Loads the programs, starts the writer, the metrics and the host counters, then
    /// drops our privileges.
    fn launch(self) -> Result<Recorder> {
        let Prepared { opts, rules, metrics, out_dir, control, kernel, recording, uploader, mut enr } = self;
        let Recording { writer, dir: rec_dir, start_ns, gaps, .. } = recording;
        let ship_stats = uploader.as_ref().map(|u| u.stats.clone());
        let with_flows = kernel.enabled[TableId::Flows.index()];
        let loader::Kernel { ebpf: programs, mut ring, counters, drops, walk, owners } =
            loader::load(kernel.config, opts.ring_size as u32, with_flows, kernel.rtt_mode, kernel.socket_walk, kernel.btf.can_walk_owners())?;
        // Owners of sockets that already exist, before events about them are read. Found
        // after the programs are attached: a socket born between the search and the
        // attachment would be in neither.
        let owners_note = find_existing_owners(&mut enr, owners.as_ref(), &mut ring, &counters);
        let writer = WriterHandle::spawn(
            writer,
            crate::writer::Config {
                out: opts.out.clone(),
                retention: crate::ring::Retention { max_bytes: opts.max_disk, max_age: opts.max_age },
                snapshots: snapshot_limits(&opts),
                observers: metrics.iter().map(|(m, _)| m.clone() as Arc<dyn crate::writer::FlushObserver>).collect(),
                ship: ship_stats.clone(),
            },
        );
        if let Some(metrics) = metrics {
            spawn_exporter(metrics, &ring, &writer, &opts, &ship_stats)?;
        }

        // Host counters: a thread of their own (it switches network namespaces). Its first
        // reading is the baseline, taken before we report ready.
        // The socket walk runs there too: it needs to enter each namespace as well.
        // With --rtt-per-ack the interval is tcp_probe's rate limit (0: every ACK); the
        // walk then reads only listeners, every second at the most.
        let every = match kernel.rtt_mode {
            loader::RttMode::Walk => opts.rtt_interval,
            _ => opts.rtt_interval.max(std::time::Duration::from_secs(1)),
        };
        let walk = walk.map(|w| (w, every));
        let counters_thread = CountersThread::spawn(enr.host.clone(), opts.netns, opts.counters_interval, walk)?;
        crate::privileges::drop_after_startup(|| counters.get(&0, 0).is_ok())?;
        tracing::info!("recording to {}", rec_dir.display());

        let stats = recorder_stats::StatsState::new(start_ns);
        let warnings = kernel.btf.warnings.into_iter().chain(owners_note).collect();
        let pending_stats = start_notes(&opts, &enr.host, start_ns, warnings, gaps);
        // SAFETY: the ring buffer's fd stays open as long as `ring` (owned by AsyncFd).
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("cannot poll the ring buffer: {}", e.into_parts().1))?;
        let drops = drops
            .filter(|_| kernel.enabled[TableId::Drops.index()])
            .map(|m| crate::drops::DropCounts::new(m, &kernel.btf.drop_reasons));
        Ok(Recorder {
            opts,
            rec_dir,
            ring,
            enr,
            programs,
            counters,
            drops,
            writer,
            counters_thread,
            uploader,
            ship_stats,
            rules,
            stats,
            pending_stats,
            reported_netns: ahash::AHashSet::new(),
            ship_last_ns: start_ns,
            control,
            control_slots: Arc::new(tokio::sync::Semaphore::new(crate::control::MAX_CONNECTIONS)),
            _out_dir: out_dir,
        })
    }
}

/// Live metrics: a bad services map or a busy port is an error now too.
fn bind_metrics(opts: &Options) -> Result<Option<MetricsListen>> {
    match opts.metrics_listen {
        Some(addr) => {
            let services = match &opts.services {
                Some(p) => tcpfr_services::ServiceMap::load_file(p)?,
                None => tcpfr_services::ServiceMap::default(),
            };
            let listener = crate::metrics::http::bind(addr)?;
            Ok(Some((Arc::new(crate::metrics::Metrics::new(&services, opts.max_peers, opts.max_services)), listener)))
        }
        None => {
            if opts.services.is_some() {
                tracing::warn!("--services names the metrics' services: it has no effect without --metrics-listen");
            }
            Ok(None)
        }
    }
}

/// What the programs are loaded with, and what the kernel told us on the way.
/// Who holds each socket that exists already: the owner walk (its records are handled
/// here, before any later event), else a /proc scan. The walk writes into the ring that
/// only this thread reads, so on a host with more sockets than the ring holds records
/// some are lost: /proc is asked for those, and the returned note says so.
fn find_existing_owners(
    enr: &mut Enricher,
    owners: Option<&loader::Walk>,
    ring: &mut super::Ring,
    counters: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
) -> Option<String> {
    match owners.map(loader::Walk::run) {
        Some(Ok(())) => {
            super::drain(ring, enr);
            let lost = loader::lost(counters)[tcpfr_schema::raw::kind::SOCKET_OWNER as usize];
            if lost == 0 {
                enr.sockets.owners_walked();
                return None;
            }
            let note = format!(
                "the owners of {lost} existing sockets did not fit in the ring buffer (--ring-size): looked up in /proc instead"
            );
            tracing::warn!("{note}");
            enr.sockets.scan_proc();
            Some(note)
        }
        Some(Err(e)) => {
            tracing::warn!("the owner walk failed ({e}): owners of existing sockets come from /proc");
            enr.sockets.scan_proc();
            None
        }
        None => {
            enr.sockets.scan_proc();
            None
        }
    }
}

struct KernelSetup {
    config: KernelConfig,
    enabled: [bool; TableId::COUNT],
    rtt_mode: loader::RttMode,
    /// Whether the socket walk runs (for `rtt_samples`, `listeners` or both).
    socket_walk: bool,
    tracepoints: crate::tracefs::Tracepoints,
    btf: crate::btf::Kernel,
    /// The kernel's HZ (jiffies per second), None if it could not be measured.
    hz: Option<u32>,
}

impl KernelSetup {
    fn read(opts: &Options) -> Result<KernelSetup> {
        let tracefs = crate::tracefs::ensure_mounted()?;
        let tps = crate::tracefs::load(&tracefs)?;
        let mut kernel_btf = crate::btf::load(std::path::Path::new(crate::btf::VMLINUX))?;
        let hz = crate::kernel_hz::measure()
            .map_err(|why| kernel_btf.warnings.push(format!("{why}: flows.busy_ns and the limited times will be null")))
            .ok();
        for w in &kernel_btf.warnings {
            tracing::warn!("{w}");
        }
        let enabled = enabled_streams(opts);
        let rtt_mode = checks::rtt_mode(opts, &enabled, &kernel_btf)?;
        let mut enabled = enabled;
        if kernel_btf.flags & tcpfr_schema::raw::kernel_flag::KFREE_SKB_OK == 0 {
            enabled[TableId::Drops.index()] = false;
        }
        let mut streams = TableId::ALL.into_iter().filter(|t| enabled[t.index()]).fold(0, |bits, t| bits | t.stream_bit());
        if rtt_mode == loader::RttMode::Walk {
            streams |= tcpfr_schema::raw::stream::RTT_AT_CLOSE | tcpfr_schema::raw::stream::RTT_BY_WALK;
        }
        // The walk also reads listeners, with or without RTT sampling.
        let socket_walk = rtt_mode == loader::RttMode::Walk
            || (enabled[TableId::Listeners.index()] && kernel_btf.offsets.sk_drops != tcpfr_schema::raw::NO_OFFSET);
        let config = KernelConfig {
            abi_version: RAW_ABI_VERSION,
            streams,
            rtt_interval_ns: opts.rtt_interval.as_nanos() as u64,
            flags: kernel_btf.flags,
            wakeup_bytes: (opts.ring_size / 8) as u32,
            btf: kernel_btf.offsets,
        };
        Ok(KernelSetup { config, enabled, rtt_mode, socket_walk, tracepoints: tps, btf: kernel_btf, hz })
    }
}

/// Rows of each table that are enabled, from `--streams` (tables no kernel program
/// feeds are always on).
fn enabled_streams(opts: &Options) -> [bool; TableId::COUNT] {
    TableId::ALL.map(|t| t.stream_bit() == 0 || opts.streams.is_empty() || opts.streams.contains(&t))
}

/// This run's recording, created (nothing written yet), and what a crashed run left.
struct Recording {
    writer: RecordingWriter,
    dir: PathBuf,
    host: String,
    clock: Clock,
    start_ns: i64,
    /// Recordings completed now: since when (if known) no recorder ran, and why.
    gaps: Vec<(Option<i64>, String)>,
}

impl Recording {
    fn create(opts: &Options, out_dir: &crate::outdir::OutDir) -> Result<Recording> {
        let host = host_name(opts);
        let clock = Clock::new();
        let start_ns = crate::clock::realtime_ns();
        let base = format!("{}-{}", chrono::DateTime::from_timestamp_nanos(start_ns).format("%Y%m%dT%H%M%SZ"), sanitize(&host));
        // A restart within the same second (after a crash) gets a suffix.
        let dir = (1..)
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
        let gaps = recover_unfinished(out_dir, &wopts);
        let writer = RecordingWriter::create(
            &dir,
            RecordingInfo {
                recording_id,
                host: host.clone(),
                kernel: kernel_release(),
                boot_id: boot_id(),
                clock: ClockInfo { mono_to_utc_offset_ns: clock.offset_ns, max_drift_ns: 0 },
                recorder: RecorderInfo {
                    version: format!("tcpfr-recorder {}", env!("CARGO_PKG_VERSION")),
                    config: serde_json::to_value(opts).unwrap_or_default(),
                },
                start_ns,
            },
            wopts,
        )
        .with_context(|| format!("cannot create the recording in {}", dir.display()))?;
        Ok(Recording { writer, dir, host, clock, start_ns, gaps })
    }
}

/// What a crashed run left: completed now, the time no recorder ran noted as a gap.
fn recover_unfinished(out_dir: &crate::outdir::OutDir, wopts: &WriterOptions) -> Vec<(Option<i64>, String)> {
    let mut gaps = Vec::new();
    for r in out_dir.recover_unfinished(wopts) {
        match r {
            Ok(r) => {
                tracing::warn!("crash recovery: {}", r.summary());
                gaps.push((r.last_time_ns, format!("crash recovery: {}", r.summary())));
            }
            Err(e) => tracing::error!("{}", crate::error_text(&e)),
        }
    }
    gaps
}

/// The uploader looks at --out on its own thread; the writer only pokes it.
fn spawn_uploader(store: Option<tcpfr_ship::Store>, opts: &Options, rec_dir: &std::path::Path) -> Result<Option<crate::ship::Uploader>> {
    match store {
        Some(store) => {
            tracing::info!("shipping closed files to {}", store.url());
            Ok(Some(crate::ship::Uploader::spawn(store, opts.out.clone(), rec_dir.to_path_buf(), opts.ship_backoff_max)?))
        }
        None => Ok(None),
    }
}

fn enricher(opts: &Options, recording: &Recording, kernel: &KernelSetup) -> Enricher {
    let cgroup_root = loader::cgroup2_root().ok();
    let sockets = SocketTable::new(recording.start_ns, Cgroups::new(cgroup_root));
    let filter = Filter { ports: opts.ports.clone(), cidrs: opts.cidrs.clone(), cgroups: opts.cgroups.clone() };
    let mut enr = Enricher::new(&recording.host, recording.clock, sockets, filter);
    enr.enabled = kernel.enabled;
    enr.total_retrans_known = kernel.btf.offsets.tcp_total_retrans != tcpfr_schema::raw::NO_OFFSET;
    enr.hz = kernel.hz;
    enr.reset_reasons = kernel.tracepoints.reset_reasons.iter().map(|(k, v)| (*k, Str::from(v.as_str()))).collect();
    enr
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

fn spawn_exporter(
    (m, listener): MetricsListen,
    ring: &super::Ring,
    writer: &WriterHandle,
    opts: &Options,
    ship_stats: &Option<Arc<crate::ship::ShipStats>>,
) -> Result<()> {
    let fill = crate::ring_fill::RingFill::new(std::os::fd::AsFd::as_fd(ring), opts.ring_size);
    let mut exporter = crate::metrics::Exporter::new(m, writer.stats.clone(), fill, opts.out.clone());
    exporter.ship = ship_stats.clone();
    let addr = listener.local_addr()?;
    crate::metrics::http::spawn(listener, Arc::new(exporter))?;
    tracing::info!("metrics at http://{addr}/metrics");
    Ok(())
}

/// The first `recorder_stats` rows: the start, the kernel's warnings, too little room
/// for --max-disk, and the gaps crashed runs left.
fn start_notes(opts: &Options, host: &Str, start_ns: i64, warnings: Vec<String>, gaps: Vec<(Option<i64>, String)>) -> Vec<RecorderStats> {
    let mut pending_stats = vec![recorder_stats::note(
        host,
        start_ns,
        format!("recorder started: tcpfr-recorder {} on kernel {}", env!("CARGO_PKG_VERSION"), kernel_release().unwrap_or_default()),
    )];
    for w in warnings {
        pending_stats.push(recorder_stats::note(host, start_ns, w));
    }
    if let Some(w) = opts.max_disk.and_then(|m| crate::outdir::capacity_warning(&opts.out, m)) {
        tracing::warn!("{w}");
        pending_stats.push(recorder_stats::note(host, start_ns, w));
    }
    for (last, text) in gaps {
        pending_stats.push(recorder_stats::gap(host, last.unwrap_or(start_ns).min(start_ns), start_ns, text));
    }
    pending_stats
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

fn sanitize(host: &str) -> String {
    host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}
