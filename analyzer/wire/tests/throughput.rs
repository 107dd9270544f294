//! Reader throughput, on demand (it writes a large file):
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-wire cargo test --release -p tcpfr-wire --test throughput -- --ignored --nocapture
//! ```
//!
//! `TCPFR_BENCH_MB` sets the file size (default 1024). The file is a pcap of TCP frames
//! cut to a snaplen of 128, as the end-to-end benchmark uses, read from the page cache.

mod common;

use std::io::Write;
use std::time::Instant;

use common::*;
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::decode;

#[test]
#[ignore = "writes a large file; run in release mode with --ignored"]
fn reader_throughput() {
    let mb: u64 = std::env::var("TCPFR_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    for format in ["pcap", "pcapng"] {
        let path = dir.path().join(format!("bench.{format}"));
        write_bench_file(&path, format == "pcapng", mb << 20);
        measure(&path);
        std::fs::remove_file(&path).unwrap();
    }
}

fn write_bench_file(path: &std::path::Path, pcapng: bool, size: u64) {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    if pcapng {
        let mut ng = PcapNg::new(false);
        ng.idb(1, 128, Some(9), None);
        w.write_all(&ng.buf).unwrap();
    } else {
        w.write_all(&Pcap::new(false, true, 1, 128).buf).unwrap();
    }
    let mut i: u32 = 0;
    while written < size {
        let data = i % 4 != 3;
        let t = Tcp {
            sport: 40000 + (i % 64) as u16,
            seq: i.wrapping_mul(1448),
            ack: i,
            flags: 0x010,
            options: [vec![NOP, NOP], timestamps(i, i)].concat(),
            payload: if data { 1448 } else { 0 },
            ..Tcp::default()
        };
        let f = eth(0x0800, &v4(&t.bytes()));
        let cap = &f[..f.len().min(128)];
        let (sec, ns) = (1_700_000_000 + i / 100_000, i % 100_000 * 10_000);
        let rec = if pcapng {
            let mut ng = PcapNg { buf: Vec::new(), be: false };
            ng.epb(0, u64::from(sec) * 1_000_000_000 + u64::from(ns), cap, f.len() as u32);
            ng.buf
        } else {
            let mut p = Pcap { buf: Vec::new(), be: false };
            p.record(sec, ns, cap, f.len() as u32);
            p.buf
        };
        w.write_all(&rec).unwrap();
        written += rec.len() as u64;
        i += 1;
    }
}

fn measure(path: &std::path::Path) {
    let size = std::fs::metadata(path).unwrap().len();

    for round in 0..3 {
        let start = Instant::now();
        let mut r = CaptureReader::open(path).unwrap();
        let (mut frames, mut bytes) = (0u64, 0u64);
        while let Some(f) = r.next_frame().unwrap() {
            frames += 1;
            bytes += f.data.len() as u64 + f.ts_ns as u64 % 2;
        }
        let read_s = start.elapsed().as_secs_f64();
        std::hint::black_box(bytes);

        let start = Instant::now();
        let mut r = CaptureReader::open(path).unwrap();
        let (mut tcp, mut sum) = (0u64, 0u64);
        while let Some(f) = r.next_frame().unwrap() {
            if let Ok(s) = decode(f.linktype, f.data, f.orig_len) {
                tcp += 1;
                sum = sum.wrapping_add(u64::from(s.seq) + u64::from(s.seglen));
            }
        }
        let decode_s = start.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        assert_eq!(tcp, frames);
        let mbs = |s: f64| size as f64 / s / 1e6;
        let fps = |s: f64| frames as f64 / s / 1e6;
        eprintln!(
            "{} round {round}: {:.0} MB, {frames} frames: read {read_s:.3} s = {:.0} MB/s, {:.1} M frames/s; read+decode {decode_s:.3} s = {:.0} MB/s, {:.1} M frames/s",
            r.format(),
            size as f64 / 1e6,
            mbs(read_s),
            fps(read_s),
            mbs(decode_s),
            fps(decode_s)
        );
    }
}
