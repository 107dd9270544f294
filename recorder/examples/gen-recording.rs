//! Generates large recordings for benchmarks, through the recorder's own enrichment
//! and the one writer every recording is made with, from a synthetic event stream with
//! a busy host's mix (`tcpfr_recorder::synth`).
//!
//! ```text
//! cargo run --release -p tcpfr-recorder --example gen-recording -- \
//!     --out /data/bench --events 100000000 [--hosts 1] [--sockets 5000] [--span 1h] [--jobs N] \
//!     [--ship s3://bucket/prefix]
//! ```
//! Each host gets a recording `OUT/<host>/` spanning `--span` of time, with host counters
//! (RetransSegs consistent with the events) and recorder statistics every second. Hosts
//! are generated `--jobs` at a time (default: one per core). With `--ship` each finished
//! recording goes to the store through the recorder's shipper and leaves `--out`, so a
//! fleet far larger than the local disk can be written.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tcpfr_recorder::clock::Clock;
use tcpfr_recorder::enrich::Enricher;
use tcpfr_recorder::writer::push_all;
use tcpfr_recorder::filter::Filter;
use tcpfr_recorder::procinfo::Cgroups;
use tcpfr_recorder::socket_table::SocketTable;
use tcpfr_recorder::synth::Workload;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};
use arrow_array::cast::AsArray;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use arrow_array::types::{Int32Type, TimestampNanosecondType};
use tcpfr_schema::{Str, UtcNanos};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(arg(&args, "--out").expect("--out DIR"));
    let events: u64 = arg(&args, "--events").map(|s| s.parse().expect("--events N")).unwrap_or(10_000_000);
    let hosts: u64 = arg(&args, "--hosts").map(|s| s.parse().expect("--hosts N")).unwrap_or(1);
    let sockets: u64 = arg(&args, "--sockets").map(|s| s.parse().expect("--sockets N")).unwrap_or(5000);
    let span = arg(&args, "--span").map(|s| humantime::parse_duration(&s).expect("--span 1h")).unwrap_or(Duration::from_secs(3600));
    let per_host = events / hosts;
    let step_ns = (span.as_nanos() as u64 / per_host.max(1)).max(1);
    let t0 = Instant::now();
    // A bar on a terminal only (not in pipes or CI logs); the per-host lines go above it.
    let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let target = if tty { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(per_host * hosts), target).with_style(
        ProgressStyle::with_template("[{wide_bar}] {human_pos}/{human_len} events ({elapsed}, {eta} left)").expect("valid template"),
    );
    // One runtime for all uploads: the store's HTTP connections live on it.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let store = arg(&args, "--ship").map(|url| tcpfr_ship::Store::open(&url).expect("--ship URL"));
    // Hosts are independent (a seed each): one worker per core takes the next host.
    let next = std::sync::atomic::AtomicU64::new(0);
    let jobs = arg(&args, "--jobs")
        .map(|s| s.parse().expect("--jobs N"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let h = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if h >= hosts {
                    break;
                }
                let host = format!("host-{h:04}");
                generate_host(&out.join(&host), &host, per_host, sockets, step_ns, 0x5eed + h, &bar);
                if let Some(store) = &store {
                    ship_and_remove(&rt, store, &out.join(&host));
                }
                let line = format!("{host}: {per_host} events ({:.0} s so far)", t0.elapsed().as_secs_f64());
                if tty {
                    bar.println(line);
                } else {
                    eprintln!("{line}");
                }
            });
        }
    });
    bar.finish_and_clear();
}

fn generate_host(dir: &std::path::Path, host: &str, events: u64, sockets: u64, step_ns: u64, seed: u64, bar: &ProgressBar) {
    let clock = Clock { offset_ns: 1_795_428_000_000_000_000 - 1_000_000_000, ..Clock::new() };
    let start_ns = clock.utc(1_000_000_000);
    let mut w = RecordingWriter::create(
        dir,
        RecordingInfo {
            recording_id: format!("gen-{seed}"),
            host: host.into(),
            kernel: Some("6.18.44".into()),
            boot_id: None,
            clock: ClockInfo { mono_to_utc_offset_ns: clock.offset_ns, max_drift_ns: 0 },
            recorder: RecorderInfo { version: "gen-recording".into(), config: serde_json::json!({"synthetic": true}) },
            start_ns,
        },
        WriterOptions { fsync: false, ..Default::default() },
    )
    .expect("create recording");
    let mut enr = Enricher::new(host, clock, SocketTable::new(start_ns, Cgroups::new(None)), Filter::default());
    let mut workload = Workload::new(seed, sockets, step_ns);
    let host_str: Str = Str::from(host);
    let mut produced = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut next_second = start_ns + 1_000_000_000;
    while produced < events {
        buf.clear();
        workload.fill(&mut buf, ((events - produced) as usize).min(1 << 20));
        produced += buf.len() as u64;
        bar.inc(buf.len() as u64);
        for e in &buf {
            tcpfr_recorder::events::handle_bytes(&mut enr, e);
        }
        let rows = enr.take_rows();
        let now = enr.clock.utc(workload.now_ns());
        // Host counters and recorder statistics once per second of data.
        let mut counters = Vec::new();
        let mut stats = Vec::new();
        use tcpfr_schema::Table;
        let retrans = concat(&rows.retransmits, tcpfr_schema::retransmits::Retransmit::schema());
        let rt = times(&retrans);
        let counted = retrans.column_by_name("counted").unwrap().as_boolean().clone();
        let segments = retrans.column_by_name("segments").unwrap().as_primitive::<Int32Type>().clone();
        let st = times(&concat(&rows.rtt_samples, tcpfr_schema::rtt_samples::RttSample::schema()));
        // (retransmitted segments, RTT samples) per second, keyed by the second's end: one
        // pass over the rows (scanning them once per second was quadratic in the span).
        let mut per_second = std::collections::HashMap::<i64, (i64, i64)>::new();
        let second_end = |t: i64| start_ns + ((t - start_ns).div_euclid(1_000_000_000) + 1) * 1_000_000_000;
        for i in (0..rt.len()).filter(|&i| counted.value(i)) {
            per_second.entry(second_end(rt[i])).or_default().0 += segments.value(i) as i64;
        }
        for &t in &st {
            per_second.entry(second_end(t)).or_default().1 += 1;
        }
        while next_second <= now {
            let (retrans, samples) = per_second.get(&next_second).copied().unwrap_or_default();
            counters.push(host_counters(&host_str, next_second, retrans, samples));
            stats.push(recorder_stats(&host_str, next_second, samples));
            next_second += 1_000_000_000;
        }
        push_all(&mut w, rows, counters, stats);
        w.flush(now, now).expect("write");
    }
    let end = enr.clock.utc(workload.now_ns()) + 1;
    tcpfr_recorder::flows::write_open_at_end(&mut enr, end);
    push_all(&mut w, enr.take_rows(), vec![], vec![]);
    w.finish(end).expect("finish");
}


/// Uploads one finished recording the way the recorder's `--ship` does (the store's
/// layout, then its manifest), then removes the local copy: the store holds the fleet,
/// the local disk one recording per worker at a time.
fn ship_and_remove(rt: &tokio::runtime::Runtime, store: &tcpfr_ship::Store, dir: &std::path::Path) {
    let rec = tcpfr_schema::read::Recording::open(dir).expect("read back the recording");
    rt.block_on(tcpfr_ship::ship(store, &[rec], &tcpfr_ship::Options::default(), &|_| {})).expect("ship");
    std::fs::remove_dir_all(dir).expect("remove the shipped recording");
}

fn concat(b: &[arrow_array::RecordBatch], schema: arrow_schema::SchemaRef) -> arrow_array::RecordBatch {
    arrow_select::concat::concat_batches(&schema, b).unwrap()
}

fn times(b: &arrow_array::RecordBatch) -> Vec<i64> {
    b.column_by_name("time").unwrap().as_primitive::<TimestampNanosecondType>().values().to_vec()
}

fn host_counters(host: &Str, t: i64, retrans: i64, samples: i64) -> HostCounters {
    // Segments sent: an ACK-clocked sender sends about two segments per ACK sampled.
    let out_segs = 2 * samples + 1000;
    HostCounters {
        host: host.clone(),
        time: UtcNanos(t),
        interval_ns: 1_000_000_000,
        netns: 4026531840,
        netns_name: Some(Str::from("host")),
        active_opens: samples / 50,
        passive_opens: 0,
        attempt_fails: 0,
        estab_resets: samples / 200,
        curr_estab: 5000,
        in_segs: samples,
        out_segs,
        retrans_segs: retrans,
        in_errs: 0,
        out_rsts: 0,
        syn_retrans: 0,
        timeouts: retrans / 20,
        loss_probes: retrans / 30,
        lost_retransmit: 0,
        fast_retrans: retrans / 2,
        slow_start_retrans: 0,
        retrans_fail: 0,
        spurious_rtos: 0,
        abort_on_timeout: 0,
        aborts_other: 0,
        listen_overflows: 0,
        listen_drops: 0,
    }
}

fn recorder_stats(host: &Str, t: i64, samples: i64) -> RecorderStats {
    RecorderStats {
        host: host.clone(),
        time: UtcNanos(t),
        interval_ns: 1_000_000_000,
        stream: Str::from("rtt_samples"),
        events_seen: samples,
        events_lost: 0,
        events_filtered: 0,
        rows_written: samples,
        rows_dropped: 0,
        gap_start: None,
        gap_end: None,
        note: None,
        shipped_files: None,
        shipped_bytes: None,
        unshipped_files: None,
        unshipped_bytes: None,
        ship_errors: None,
        ship_lost_files: None,
        ship_lost_bytes: None,
    }
}
