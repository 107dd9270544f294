//! The real captures in `samples/*/capture.pcap` (tcpdump, snaplen 96), read and
//! decoded frame by frame, against tshark: time, ports, raw seq/ack, tcp.len, flags,
//! window, header length.

mod common;

use std::path::Path;

use common::*;
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::decode;

const FIELDS: [&str; 10] = [
    "frame.number",
    "frame.time_epoch",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.hdr_len",
];

fn check(file: &Path) -> (usize, usize) {
    let theirs = tshark_fields(file, &FIELDS);
    let mut r = CaptureReader::open(file).unwrap();
    let (mut frames, mut tcp) = (0, 0);
    let mut bad = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let t = &theirs[frames];
        frames += 1;
        assert_eq!(t[0], f.number.to_string());
        let mut row = vec![f.number.to_string(), epoch_string(f.ts_ns)];
        match decode(f.linktype, f.data, f.orig_len) {
            Ok(s) => {
                tcp += 1;
                row.extend([
                    s.sport.to_string(),
                    s.dport.to_string(),
                    s.seq.to_string(),
                    s.ack.to_string(),
                    s.seglen.to_string(),
                    format!("0x{:04x}", s.flags),
                    s.window.to_string(),
                    s.header_len.to_string(),
                ]);
            }
            Err(_) => row.extend(std::iter::repeat_n(String::new(), 8)),
        }
        if &row != t && bad.len() < 20 {
            bad.push(format!("frame {}: ours {row:?}\n          tshark {t:?}", f.number));
        }
    }
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    assert_eq!(frames, theirs.len(), "frame count of {}", file.display());
    assert!(bad.is_empty(), "{}:\n{}", file.display(), bad.join("\n"));
    (frames, tcp)
}

#[test]
fn samples_decode_like_tshark() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let mut n = 0;
    for entry in std::fs::read_dir(&samples).unwrap() {
        let pcap = entry.unwrap().path().join("capture.pcap");
        if pcap.exists() {
            let (frames, tcp) = check(&pcap);
            eprintln!("{}: {frames} frames, {tcp} TCP", pcap.display());
            assert!(tcp > 0);
            n += 1;
        }
    }
    assert!(n >= 4, "expected the four sample captures in {}", samples.display());
}
