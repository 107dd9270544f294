//! Our sequence analysis against the installed tshark, frame by frame, on every
//! label: random conversations that exercise loss, reordering, duplicate ACKs, old
//! retransmissions, keep-alives, zero windows and probes, FINs, SYN and port reuse,
//! timestamps going backwards and sequence numbers wrapping; and the real captures
//! in `samples/`.

mod common;

use common::Rng;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use tcpfr_wire::analysis::{label, Analyzer};
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::decode;

/// tshark's expert messages → our label names (`tcp.analysis.retransmission` is
/// "R" for plain, fast and spurious alike, as tshark's filter counts it).
const MESSAGES: [(&str, &str); 14] = [
    ("This frame is a (suspected) retransmission", "R"),
    ("This frame is a (suspected) fast retransmission", "fast_retransmission"),
    ("This frame is a (suspected) spurious retransmission", "spurious_retransmission"),
    ("This frame is a (suspected) out-of-order segment", "out_of_order"),
    ("Previous segment(s) not captured (common at capture start)", "lost_segment"),
    ("ACKed segment that wasn't captured (common at capture start)", "ack_lost_segment"),
    ("TCP window update", "window_update"),
    ("TCP window specified by the receiver is now completely full", "window_full"),
    ("TCP keep-alive segment", "keep_alive"),
    ("ACK to a TCP keep-alive segment", "keep_alive_ack"),
    ("TCP Zero Window Probe", "zero_window_probe"),
    ("TCP Zero Window segment", "zero_window"),
    ("ACK to a TCP Zero Window Probe", "zero_window_probe_ack"),
    ("A new tcp session is started with the same ports as an earlier session in this trace", "reused_ports"),
];

fn tshark_labels(file: &Path) -> Vec<BTreeSet<String>> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"])
        .args(["-E", "occurrence=a", "-E", "aggregator=|"])
        .output()
        .expect("tshark runs (apt install tshark; scripts/bootstrap.sh installs it)");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let msgs = line.split_once('\t').map(|x| x.1).unwrap_or("");
            let mut s = BTreeSet::new();
            for m in msgs.split('|') {
                if let Some((_, name)) = MESSAGES.iter().find(|(msg, _)| *msg == m) {
                    s.insert(name.to_string());
                } else if m.starts_with("Duplicate ACK (#") {
                    s.insert("duplicate_ack".to_string());
                }
            }
            s
        })
        .collect()
}

/// Our labels per frame (empty sets for frames that are not TCP), same names.
fn our_labels(file: &Path) -> Vec<BTreeSet<String>> {
    let mut reader = CaptureReader::open(file).unwrap();
    let mut an = Analyzer::new();
    let mut out = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        let mut s = BTreeSet::new();
        if let Ok(seg) = decode(frame.linktype, frame.data, frame.orig_len) {
            let l = an.segment(frame.ts_ns, &seg);
            if l.is_retransmission() {
                s.insert("R".to_string());
            }
            for (bit, name) in label::NAMES {
                if l.bits & bit != 0 && bit != label::RETRANSMISSION {
                    s.insert(name.to_string());
                }
            }
        }
        out.push(s);
    }
    out
}

fn compare(file: &Path) -> std::collections::BTreeMap<String, usize> {
    let theirs = tshark_labels(file);
    let ours = our_labels(file);
    assert_eq!(theirs.len(), ours.len(), "frame count of {}", file.display());
    let mut bad = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        for l in t {
            *counts.entry(l.clone()).or_insert(0) += 1;
        }
        if t != o {
            bad.push(format!("frame {}: tshark {t:?}, ours {o:?}", i + 1));
        }
    }
    assert!(bad.is_empty(), "{}: {} frames differ:\n{}", file.display(), bad.len(), bad[..bad.len().min(20)].join("\n"));
    counts
}

const FIN: u8 = 1;
const SYN: u8 = 2;
const PSH: u8 = 8;
const ACK: u8 = 16;

struct Pkt {
    ts: i64,
    from_b: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    len: u32,
    ws: Option<u8>,
}

/// One random conversation (the generator the spec was checked with).
fn conversation(rng: &mut Rng, t: &mut i64) -> Vec<Pkt> {
    let mut pk = Vec::new();
    let mut isn = [0u32; 2];
    for v in &mut isn {
        *v = if rng.chance(0.5) { rng.next() as u32 } else { 0u32.wrapping_sub(1 + rng.below(3000) as u32) };
    }
    let mut nxt = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
    let mut win = [0u16; 2];
    for w in &mut win {
        *w = rng.pick(&[1000, 1, 100, 1000, 65535]);
    }
    let mut sent: [Vec<(u32, u32)>; 2] = [Vec::new(), Vec::new()];
    let gaps = [0, 1000, 50_000, 500_000, 2_000_000, 5_000_000, 30_000_000, 300_000_000];
    let emit = |pk: &mut Vec<Pkt>, rng: &mut Rng, t: &mut i64, d: usize, seq: u32, ack: u32, flags: u8, len: u32, w: u16, ws: Option<u8>, dt: Option<i64>| {
        *t += dt.unwrap_or_else(|| rng.pick(&gaps));
        pk.push(Pkt { ts: *t, from_b: d == 1, seq, ack, flags, win: w, len, ws });
    };
    if rng.chance(0.7) {
        let ws_a = rng.pick(&[None, Some(0), Some(2), Some(7)]);
        let ws_b = rng.pick(&[None, Some(0), Some(3), Some(7)]);
        emit(&mut pk, rng, t, 0, isn[0], 0, SYN, 0, 64240, ws_a, None);
        if rng.chance(0.2) {
            emit(&mut pk, rng, t, 0, isn[0], 0, SYN, 0, 64240, ws_a, Some(1_000_000_000));
        }
        let w = rng.pick(&[1000, 65160]);
        emit(&mut pk, rng, t, 1, isn[1], isn[0].wrapping_add(1), SYN | ACK, 0, w, ws_b, None);
        emit(&mut pk, rng, t, 0, nxt[0], nxt[1], ACK, 0, win[0], None, None);
    }
    let mut rcv = [nxt[1], nxt[0]];
    for _ in 0..5 + rng.below(55) {
        let d = rng.below(2) as usize;
        let o = 1 - d;
        let r = rng.below(100);
        if r < 35 {
            let n = rng.pick(&[1, 2, 10, 100, 1000, 1448]);
            let seq = nxt[d];
            nxt[d] = nxt[d].wrapping_add(n);
            sent[d].push((seq, n));
            if !rng.chance(0.15) {
                emit(&mut pk, rng, t, d, seq, rcv[d], PSH | ACK, n, win[d], None, None);
            }
        } else if r < 55 {
            if !sent[o].is_empty() && rng.chance(0.8) {
                let tail = &sent[o][sent[o].len().saturating_sub(4)..];
                let (s, n) = tail[rng.below(tail.len() as u64) as usize];
                let end = s.wrapping_add(n);
                rcv[d] = if rng.chance(0.8) && (rcv[d].wrapping_sub(end) as i32) > 0 { rcv[d] } else { end };
            }
            if rng.chance(0.1) {
                win[d] = rng.pick(&[0, 0, 10, 1000, 65535]);
            }
            emit(&mut pk, rng, t, d, nxt[d], rcv[d], ACK, 0, win[d], None, None);
        } else if r < 62 {
            for _ in 0..1 + rng.below(4) {
                let dt = rng.pick(&[100, 1000, 100_000]);
                emit(&mut pk, rng, t, d, nxt[d], rcv[d], ACK, 0, win[d], None, Some(dt));
            }
        } else if r < 74 {
            if !sent[d].is_empty() {
                let tail = &sent[d][sent[d].len().saturating_sub(5)..];
                let (s, n) = tail[rng.below(tail.len() as u64) as usize];
                emit(&mut pk, rng, t, d, s, rcv[d], PSH | ACK, n, win[d], None, None);
            }
        } else if r < 80 {
            let n = rng.pick(&[10, 100]);
            let (s1, s2) = (nxt[d], nxt[d].wrapping_add(n));
            nxt[d] = nxt[d].wrapping_add(2 * n);
            sent[d].push((s1, n));
            sent[d].push((s2, n));
            emit(&mut pk, rng, t, d, s2, rcv[d], PSH | ACK, n, win[d], None, None);
            let dt = rng.pick(&[0, 1000, 100_000, 10_000_000]);
            emit(&mut pk, rng, t, d, s1, rcv[d], PSH | ACK, n, win[d], None, Some(dt));
        } else if r < 85 {
            let n = rng.below(2) as u32;
            emit(&mut pk, rng, t, d, nxt[d].wrapping_sub(1), rcv[d], ACK, n, win[d], None, None);
        } else if r < 90 {
            emit(&mut pk, rng, t, d, nxt[d], rcv[d], ACK, 1, win[d], None, None);
            if rng.chance(0.5) {
                nxt[d] = nxt[d].wrapping_add(1);
                sent[d].push((nxt[d].wrapping_sub(1), 1));
            }
        } else if r < 93 {
            win[d] = rng.pick(&[0, 5, 1000, 2000, 65535]);
            emit(&mut pk, rng, t, d, nxt[d], rcv[d], ACK, 0, win[d], None, None);
        } else if r < 96 {
            emit(&mut pk, rng, t, d, nxt[d], rcv[d], FIN | ACK, 0, win[d], None, None);
            sent[d].push((nxt[d], 1));
            nxt[d] = nxt[d].wrapping_add(1);
        } else if r < 98 {
            if !pk.is_empty() {
                *t -= rng.pick(&[1000, 1_000_000]);
            }
        } else if rng.chance(0.6) {
            match rng.below(3) {
                0 => emit(&mut pk, rng, t, 0, isn[0], 0, SYN, 0, 64240, None, None),
                1 => {
                    isn[0] = rng.next() as u32;
                    nxt[0] = isn[0].wrapping_add(1);
                    sent[0].clear();
                    let ws = rng.pick(&[None, Some(5)]);
                    emit(&mut pk, rng, t, 0, isn[0], 0, SYN, 0, 64240, ws, None);
                }
                _ => {
                    if rng.chance(0.5) {
                        isn[1] = rng.next() as u32;
                    }
                    nxt[1] = isn[1].wrapping_add(1);
                    sent[1].clear();
                    let ws = rng.pick(&[None, Some(5)]);
                    emit(&mut pk, rng, t, 1, isn[1], nxt[0], SYN | ACK, 0, win[1], ws, None);
                }
            }
        } else {
            let edge = rcv[o].wrapping_add(win[o] as u32);
            let n = edge.wrapping_sub(nxt[d]);
            if n > 0 && n < 5000 {
                let seq = nxt[d];
                nxt[d] = nxt[d].wrapping_add(n);
                sent[d].push((seq, n));
                emit(&mut pk, rng, t, d, seq, rcv[d], PSH | ACK, n, win[d], None, None);
            }
        }
    }
    pk
}

/// Ethernet + IPv4 + TCP (checksums left 0: tshark does not verify them by default).
fn frame(a: ([u8; 4], u16), b: ([u8; 4], u16), p: &Pkt) -> Vec<u8> {
    let (src, dst) = if p.from_b { (b, a) } else { (a, b) };
    let mut opts = Vec::new();
    if let Some(ws) = p.ws {
        opts.extend_from_slice(&[3, 3, ws, 1]);
    }
    let thl = 20 + opts.len();
    let total = 20 + thl + p.len as usize;
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&p.seq.to_be_bytes());
    f.extend_from_slice(&p.ack.to_be_bytes());
    f.push(((thl / 4) as u8) << 4);
    f.push(p.flags);
    f.extend_from_slice(&p.win.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&opts);
    f.resize(14 + total, b'x');
    f
}

/// Writes `n` random conversations, one after another, each on its own ports, into a
/// nanosecond pcap.
fn write_random_capture(path: &Path, seed: u64, n: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(&0xa1b2_3c4du32.to_le_bytes()).unwrap();
    file.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]).unwrap();
    let mut t = 1_600_000_000_000_000_000i64;
    for i in 0..n {
        let a = ([10, 1, (i >> 8) as u8, i as u8], 40000 + (i % 20000) as u16);
        let b = ([10, 2, 0, 2], 5000 + (i % 1000) as u16);
        t += 10_000_000_000;
        for p in conversation(&mut rng, &mut t) {
            let f = frame(a, b, &p);
            let (s, ns) = (p.ts.div_euclid(1_000_000_000), p.ts.rem_euclid(1_000_000_000));
            for v in [s as u32, ns as u32, f.len() as u32, f.len() as u32] {
                file.write_all(&v.to_le_bytes()).unwrap();
            }
            file.write_all(&f).unwrap();
        }
    }
}

#[test]
fn labels_equal_tshark_on_random_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = std::collections::BTreeMap::new();
    for seed in 1..=4u64 {
        let file = dir.path().join(format!("random-{seed}.pcap"));
        write_random_capture(&file, seed, 250);
        for (k, v) in compare(&file) {
            *total.entry(k).or_insert(0) += v;
        }
    }
    eprintln!("labels seen (tshark): {total:?}");
    // The generator must exercise every label, or the comparison proves little.
    for (_, name) in MESSAGES {
        assert!(total.get(name).copied().unwrap_or(0) > 0, "no frame labelled {name}: {total:?}");
    }
    assert!(total.get("duplicate_ack").copied().unwrap_or(0) > 0);
}

#[test]
fn labels_equal_tshark_on_the_samples() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let mut n = 0;
    for entry in std::fs::read_dir(&samples).unwrap() {
        let pcap = entry.unwrap().path().join("capture.pcap");
        if pcap.exists() {
            let counts = compare(&pcap);
            eprintln!("{}: {counts:?}", pcap.display());
            n += 1;
        }
    }
    assert!(n >= 4, "expected the four sample captures in {}", samples.display());
}
