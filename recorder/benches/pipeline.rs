//! Userspace pipeline benchmark: raw kernel events (as the ring buffer delivers them)
//! → decoding → socket table and enrichment → rows → Parquet, on one thread, exactly
//! the code the recorder runs. Reports events/s, bytes per event on disk per table,
//! and peak memory.
//!
//! ```text
//! cargo bench -p tcpfr-recorder --bench pipeline -- [EVENTS] [SOCKETS]
//! taskset -c 0 target/release/deps/pipeline-* 20000000 2000      # pinned to one core
//! ```
//! The event mix is a busy host's: many long-lived connections sending RTT samples,
//! a steady trickle of short connections, retransmits of various sizes, some resets.

use std::time::Instant;

use tcpfr_recorder::clock::Clock;
use tcpfr_recorder::enrich::Enricher;
use tcpfr_recorder::writer::push_all;
use tcpfr_recorder::synth::Workload;
use tcpfr_recorder::filter::Filter;
use tcpfr_recorder::procinfo::Cgroups;
use tcpfr_recorder::socket_table::SocketTable;
use tcpfr_schema::manifest::{ClockInfo, RecorderInfo};
use tcpfr_schema::write::{RecordingInfo, RecordingWriter, WriterOptions};


#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let sockets: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    eprintln!("generating {n} events over {sockets} open connections …");
    let mut events = Vec::with_capacity(n + 64);
    Workload::new(0x9e37_79b9_7f4a_7c15, sockets, 500).fill(&mut events, n);
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("TCPFR_BENCH_KEEP").map(std::path::PathBuf::from);
    let clock = Clock::new();
    let start_ns = clock.utc(1_000_000_000);
    let mut writer = RecordingWriter::create(
        &dir.path().join("rec"),
        RecordingInfo {
            recording_id: "bench".into(),
            host: "bench-host".into(),
            kernel: None,
            boot_id: None,
            clock: ClockInfo { mono_to_utc_offset_ns: clock.offset_ns, max_drift_ns: 0 },
            recorder: RecorderInfo { version: "bench".into(), config: serde_json::Value::Null },
            start_ns,
        },
        WriterOptions {
            rotate_interval_ns: i64::MAX / 4,
            rotate_size: 256 << 20,
            fsync: false,
            zstd_level: std::env::var("TCPFR_ZSTD").ok().and_then(|v| v.parse().ok()).unwrap_or(WriterOptions::default().zstd_level),
            ..Default::default()
        },
    )
    .unwrap();
    let mut enr = Enricher::new("bench-host", clock, SocketTable::new(start_ns, Cgroups::new(None)), Filter::default());

    let (t0, c0) = (Instant::now(), cpu_seconds());
    // One "second" of events between flushes, as the recorder does.
    for chunk in events.chunks(2_000_000) {
        for e in chunk {
            tcpfr_recorder::events::handle_bytes(&mut enr, e);
        }
        let last_ts = tcpfr_recorder::events::decode(chunk.last().unwrap()).unwrap().header().ts_ns;
        push_all(&mut writer, enr.take_rows(), vec![], vec![]);
        writer.flush(enr.clock.utc(last_ts), enr.clock.utc(last_ts)).unwrap();
    }
    let end = enr.clock.utc(u64::MAX / 4);
    tcpfr_recorder::flows::write_open_at_end(&mut enr, end);
    push_all(&mut writer, enr.take_rows(), vec![], vec![]);
    let manifest = writer.finish(end).unwrap();
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);

    println!("events: {}  wall {wall:.2} s  cpu {cpu:.2} s  →  {:.2} M events/s (wall), {:.2} M events/s per CPU second", events.len(), events.len() as f64 / wall / 1e6, events.len() as f64 / cpu / 1e6);
    println!("peak RSS {:.0} MB (events held in memory for the benchmark: {:.0} MB)", peak_rss_mb(), events.iter().map(|e| e.len()).sum::<usize>() as f64 / 1e6);
    println!("{:<15} {:>12} {:>12} {:>10}", "table", "rows", "bytes", "B/row");
    let mut mix = (0u64, 0u64);
    for t in tcpfr_schema::TABLES {
        let rows: u64 = manifest.files_of(t).map(|f| f.rows).sum();
        let bytes: u64 = manifest.files_of(t).map(|f| f.bytes).sum();
        if t == "retransmits" || t == "rtt_samples" {
            mix = (mix.0 + rows, mix.1 + bytes);
        }
        println!("{t:<15} {rows:>12} {bytes:>12} {:>10.2}", bytes as f64 / rows.max(1) as f64);
    }
    println!("retransmits + rtt_samples: {:.2} B/event", mix.1 as f64 / mix.0.max(1) as f64);
    if let Some(k) = keep {
        let _ = std::fs::remove_dir_all(&k);
        std::fs::rename(dir.path().join("rec"), &k).expect("keep the recording");
        println!("kept in {}", k.display());
    }
}
