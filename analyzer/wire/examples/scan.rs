//! Retransmission count of a capture, for the benchmark against
//! `tshark -r FILE -Y tcp.analysis.retransmission` (scripts/bench_pcap.py):
//!
//!     cargo run --release -p tcpfr-wire --example scan -- FILE
//!
//! Prints `frames tcp retransmissions fast spurious out_of_order seconds`.

use tcpfr_wire::analysis::{label, Analyzer};
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::decode;

fn main() {
    let path = std::env::args().nth(1).expect("usage: scan FILE");
    let t0 = std::time::Instant::now();
    let mut reader = match CaptureReader::open(path.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scan: {e}");
            std::process::exit(1);
        }
    };
    let mut an = Analyzer::new();
    let (mut frames, mut tcp, mut rt, mut fast, mut spurious, mut ooo) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        match reader.next_frame() {
            Ok(Some(fr)) => {
                frames += 1;
                if let Ok(seg) = decode(fr.linktype, fr.data, fr.orig_len) {
                    tcp += 1;
                    let l = an.segment(fr.ts_ns, &seg);
                    rt += l.is_retransmission() as u64;
                    fast += (l.bits & label::FAST_RETRANSMISSION != 0) as u64;
                    spurious += (l.bits & label::SPURIOUS_RETRANSMISSION != 0) as u64;
                    ooo += (l.bits & label::OUT_OF_ORDER != 0) as u64;
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("scan: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{frames} {tcp} {rt} {fast} {spurious} {ooo} {:.3}", t0.elapsed().as_secs_f64());
}
