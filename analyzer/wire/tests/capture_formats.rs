//! `CaptureReader` on every format variant, compared with tshark frame by frame:
//! numbers, timestamps (`frame.time_epoch`, exact to the ns), lengths, interfaces.
//! Also: reading through odd-sized chunks, records larger than the buffer, offsets,
//! progress counters.

mod common;

use std::io::Read;
use std::path::Path;

use common::*;
use tcpfr_wire::capture::CaptureReader;

/// What we read, one entry per frame.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    number: u64,
    ts_ns: i64,
    linktype: u32,
    interface: u32,
    orig_len: u32,
    data: Vec<u8>,
    offset: u64,
}

fn read_all(mut r: CaptureReader) -> (Vec<Got>, CaptureReader) {
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.push(Got {
            number: f.number,
            ts_ns: f.ts_ns,
            linktype: f.linktype,
            interface: f.interface,
            orig_len: f.orig_len,
            data: f.data.to_vec(),
            offset: f.offset,
        });
    }
    (out, r)
}

/// Compares our frames with tshark's: number, time, lengths, interface. `no_ts` lists
/// frame numbers without a timestamp in tshark (Simple Packet Blocks).
fn compare_with_tshark(file: &Path, ours: &[Got], no_ts: &[u64]) {
    let t =
        tshark_fields(file, &["frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "frame.interface_id"]);
    for g in ours {
        let row = t
            .iter()
            .find(|r| r[0] == g.number.to_string())
            .unwrap_or_else(|| panic!("tshark has no frame {}", g.number));
        if no_ts.contains(&g.number) {
            assert_eq!(row[1], "", "frame {}: tshark shows a time for an SPB", g.number);
        } else {
            assert_eq!(row[1], epoch_string(g.ts_ns), "frame {} time in {}", g.number, file.display());
        }
        assert_eq!(row[2], g.orig_len.to_string(), "frame {} frame.len", g.number);
        assert_eq!(row[3], g.data.len().to_string(), "frame {} frame.cap_len", g.number);
        if !row[4].is_empty() {
            assert_eq!(row[4], g.interface.to_string(), "frame {} interface", g.number);
        }
    }
}

fn frame_bytes(i: usize) -> Vec<u8> {
    eth(0x0800, &v4(&Tcp { seq: i as u32 * 1000, payload: i * 7 % 300, ..Tcp::default() }.bytes()))
}

#[test]
fn pcap_both_byte_orders_and_resolutions() {
    let dir = tempfile::tempdir().unwrap();
    for be in [false, true] {
        for nanos in [false, true] {
            let mut p = Pcap::new(be, nanos, 1, 65535);
            let mut offsets = Vec::new();
            for i in 0..20usize {
                let f = frame_bytes(i);
                let frac =
                    if nanos { (i as u32 * 123_456_789) % 1_000_000_000 } else { (i as u32 * 123_457) % 1_000_000 };
                offsets.push(p.buf.len() as u64);
                // Every 5th frame is cut by a snaplen of 60.
                let cap = if i % 5 == 4 { &f[..60] } else { &f[..] };
                p.record(1_700_000_000 + i as u32 * 17, frac, cap, f.len() as u32);
            }
            let name = format!("be{be}-ns{nanos}.pcap");
            let file = write_temp(&dir, &name, &p.buf);
            let (got, r) = read_all(CaptureReader::open(&file).unwrap());
            assert_eq!(r.format(), "pcap");
            assert_eq!(got.len(), 20);
            assert_eq!(r.bytes_read(), p.buf.len() as u64);
            assert_eq!(r.len(), Some(p.buf.len() as u64));
            assert!(r.warnings().is_empty(), "{:?}", r.warnings());
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.number, i as u64 + 1);
                assert_eq!(g.offset, offsets[i]);
                assert_eq!(g.linktype, 1);
                assert_eq!(g.interface, 0);
            }
            compare_with_tshark(&file, &got, &[]);
        }
    }
}

#[test]
fn pcap_linktype_fcs_bits_are_masked() {
    // libpcap's LT_FCS_LENGTH_PRESENT bits in the upper half of the link type.
    let mut p = Pcap::new(false, false, 1 | 0x0400_0000 | (4 << 28), 65535);
    p.record(1, 0, &frame_bytes(1), frame_bytes(1).len() as u32);
    let (got, _) = read_all(CaptureReader::from_reader(Box::new(std::io::Cursor::new(p.buf)), "mem").unwrap());
    assert_eq!(got[0].linktype, 1);
}

/// A pcapng with two sections of different byte orders, interfaces of several link
/// types and time resolutions, every packet block type and blocks to skip.
fn multi_section_pcapng() -> (Vec<u8>, Vec<u64>, u64) {
    const T: u64 = 1_700_000_000;
    let mut ng = PcapNg::new(false);
    ng.idb(1, 0, None, None); // 0: Ethernet, µs (default)
    ng.idb(113, 0, Some(9), None); // 1: SLL, ns
    ng.idb(101, 0, Some(0x80 | 20), Some(100)); // 2: raw, 2^-20 s, +100 s
    ng.idb(228, 0, Some(3), Some(-5)); // 3: IPv4, ms, -5 s
    ng.idb(1, 0, Some(10), None); // 4: Ethernet, 100 ps (truncated to ns)
    let raw = v4(&Tcp::default().bytes());
    ng.epb(0, T * 1_000_000 + 123_456, &frame_bytes(1), frame_bytes(1).len() as u32);
    ng.epb(1, T * 1_000_000_000 + 987_654_321, &sll(0x0800, &raw), (16 + raw.len()) as u32);
    ng.epb(2, (T << 20) + 12_345, &raw, raw.len() as u32);
    ng.epb(3, T * 1000 + 999, &raw, raw.len() as u32);
    ng.epb(4, T * 10_000_000_000 + 1_234_567_899, &frame_bytes(2), frame_bytes(2).len() as u32);
    // Blocks that are not frames: name resolution, interface statistics, a custom block,
    // decryption secrets, an unknown type.
    ng.block(4, &[0, 0, 0, 0]);
    ng.block(5, &[0; 12]);
    ng.block(0x0000_0BAD, &[0, 0, 0x7E, 0x8B, 1, 2, 3]);
    ng.block(0x0000_000A, &[0x53, 0x4B, 0x4C, 0x54, 0, 0, 0, 0]);
    ng.block(0x0000_7777, &[9; 20]);
    // A systemd journal export block: tshark numbers it (and the custom block above)
    // as a frame.
    ng.block(9, b"__REALTIME_TIMESTAMP=1700000000000000\nMESSAGE=hello\n");
    // Obsolete packet block; then a simple packet block (interface 0, no time).
    ng.pb(1, T * 1_000_000_000 + 5, &sll(0x0800, &raw), (16 + raw.len()) as u32);
    ng.spb(&frame_bytes(3), frame_bytes(3).len() as u32);
    // Section 2, big-endian, its own interfaces (numbered 0 and 1 again, as tshark does).
    ng.section(true);
    ng.idb(0, 0, Some(6), None);
    ng.idb(1, 64, Some(9), Some(1));
    ng.epb(1, T * 1_000_000_000 + 1, &frame_bytes(4)[..64], frame_bytes(4).len() as u32);
    ng.epb(0, T * 1_000_000 + 2, &null(2, false, &raw), (4 + raw.len()) as u32);
    // SPB cut to interface 0's snaplen... interface 0 here has none; a short one.
    ng.spb(&null(2, false, &raw), (4 + raw.len()) as u32);
    ng.pb(1, T * 1_000_000_000 + 3, &frame_bytes(5)[..64], frame_bytes(5).len() as u32);
    (ng.buf, vec![9, 12], 13)
}

#[test]
fn pcapng_sections_interfaces_resolutions_blocks() {
    let (bytes, spbs, total) = multi_section_pcapng();
    let dir = tempfile::tempdir().unwrap();
    let file = write_temp(&dir, "multi.pcapng", &bytes);
    let (got, r) = read_all(CaptureReader::open(&file).unwrap());
    assert_eq!(r.format(), "pcapng");
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    assert_eq!(r.bytes_read(), bytes.len() as u64);
    let numbers: Vec<u64> = got.iter().map(|g| g.number).collect();
    // Frames 6 and 7 are the custom and journal export blocks.
    assert_eq!(numbers, [1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    assert_eq!(*numbers.last().unwrap(), total);
    let lts: Vec<u32> = got.iter().map(|g| g.linktype).collect();
    assert_eq!(lts, [1, 113, 101, 228, 1, 113, 1, 1, 0, 0, 1]);
    let ifs: Vec<u32> = got.iter().map(|g| g.interface).collect();
    assert_eq!(ifs, [0, 1, 2, 3, 4, 1, 0, 1, 0, 0, 1]);
    // Exact expectations for the unusual resolutions.
    assert_eq!(got[2].ts_ns, 1_700_000_100_011_773_109, "2^-20 with offset");
    assert_eq!(got[3].ts_ns, 1_699_999_995_999_000_000, "ms with -5 s offset");
    assert_eq!(got[4].ts_ns, 1_700_000_000_123_456_789, "100 ps truncated");
    // An SPB has no time: it gets the previous frame's.
    assert_eq!(got[6].ts_ns, got[5].ts_ns);
    // Interface 1 of section 2 has a snaplen of 64.
    assert_eq!(got[7].data.len(), 64);
    compare_with_tshark(&file, &got, &spbs);
    let t = tshark_fields(&file, &["frame.number"]);
    assert_eq!(t.len() as u64, total, "tshark frame count");
}

#[test]
fn pcapng_big_endian_first_and_spb_snaplen() {
    let mut ng = PcapNg::new(true);
    ng.idb(1, 60, None, None);
    ng.epb(0, 1_700_000_000_000_001, &frame_bytes(9)[..60], frame_bytes(9).len() as u32);
    // An SPB's captured length is min(original length, snaplen); the block holds more.
    let f = frame_bytes(10);
    ng.spb(&f[..60], f.len() as u32);
    let dir = tempfile::tempdir().unwrap();
    let file = write_temp(&dir, "be.pcapng", &ng.buf);
    let (got, r) = read_all(CaptureReader::open(&file).unwrap());
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].data, f[..60].to_vec());
    assert_eq!(got[1].orig_len, f.len() as u32);
    compare_with_tshark(&file, &got, &[2]);
}

/// Hands out the bytes in small, varying chunks, as a pipe might.
struct Dribble {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step % 4093 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn streaming_across_buffer_boundaries_and_huge_records() {
    // ~12 MiB: many small frames, some large, one record bigger than the 8 MiB buffer.
    let mut p = Pcap::new(false, true, 1, 0);
    let mut ng = PcapNg::new(false);
    ng.idb(1, 0, Some(9), None);
    let mut expect = Vec::new();
    let mut i = 0u32;
    while p.buf.len() < 12 << 20 {
        let len = match i % 97 {
            0 => 65_000,
            50 => 1 + (i as usize * 31) % 9000,
            _ => 60 + (i as usize * 13) % 200,
        };
        let len = if i == 3000 { 9 << 20 } else { len };
        let data: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
        p.record(i, i, &data, len as u32);
        ng.epb(0, u64::from(i), &data, len as u32);
        expect.push(data);
        i += 1;
    }
    for (name, bytes) in [("pcap", p.buf), ("pcapng", ng.buf)] {
        let direct = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes.clone())), name).unwrap();
        let dribbled =
            CaptureReader::from_reader(Box::new(Dribble { data: bytes.clone(), at: 0, step: 0 }), name).unwrap();
        for r in [direct, dribbled] {
            assert_eq!(r.len(), None);
            let (got, r) = read_all(r);
            assert_eq!(r.format(), name);
            assert_eq!(got.len(), expect.len(), "{name}");
            for (k, (g, e)) in got.iter().zip(&expect).enumerate() {
                assert!(g.data == *e, "{name}: frame {} differs", k + 1);
                assert_eq!(g.ts_ns, k as i64 * if name == "pcap" { 1_000_000_001 } else { 1 });
            }
            assert_eq!(r.bytes_read(), bytes.len() as u64);
            assert!(r.warnings().is_empty());
        }
    }
}

/// Files opened by path (read up to their size at open, with a check that they did not
/// shrink) give the same frames, offsets, warnings and progress as the streaming reader
/// gives for the same bytes, also when the file ends inside a record, across many
/// refills of the reader's buffer.
#[test]
fn files_read_like_streams() {
    let mut p = Pcap::new(false, false, 1, 0);
    let mut ng = PcapNg::new(true);
    ng.idb(1, 0, Some(9), None);
    let mut i = 0u32;
    while p.buf.len() < 20 << 20 {
        let data: Vec<u8> = (0..(60 + (i as usize * 37) % 1500)).map(|k| (k as u32 ^ i) as u8).collect();
        p.record(i, i % 1_000_000, &data, data.len() as u32 + (i % 3));
        ng.epb(0, u64::from(i), &data, data.len() as u32);
        i += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [("pcap", p.buf), ("pcapng", ng.buf)] {
        let full = bytes.len();
        // Whole, cut inside a record late in the file, cut early.
        for cut in [full, full - 700, (5 << 20) + 3] {
            let bytes = &bytes[..cut];
            let path = dir.path().join(format!("{name}-{cut}"));
            std::fs::write(&path, bytes).unwrap();
            let file = CaptureReader::open(&path).unwrap();
            assert_eq!(file.len(), Some(bytes.len() as u64));
            let (got, file) = read_all(file);
            let streamed = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes.to_vec())), name).unwrap();
            let (want, streamed) = read_all(streamed);
            assert!(got.len() > 5_000, "{name} cut at {cut}: {} frames", got.len());
            assert_eq!(got.len(), want.len(), "{name} cut at {cut}");
            assert!(got == want, "{name} cut at {cut}: frames differ");
            assert_eq!(file.bytes_read(), streamed.bytes_read(), "{name} cut at {cut}");
            assert_eq!(file.warnings(), streamed.warnings(), "{name} cut at {cut}");
            assert_eq!(file.warnings().is_empty(), cut == full, "{name} cut at {cut}: {:?}", file.warnings());
        }
    }
}

#[test]
fn errors_and_frames_are_send() {
    fn is_send<T: Send>() {}
    is_send::<CaptureReader>();
    is_send::<tcpfr_wire::capture::CaptureError>();
}
