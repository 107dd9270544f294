//! Broken inputs: empty files, things that are not captures, captures cut at every
//! byte, bad pcapng block lengths, garbage in the middle and at the end, lengths
//! beyond reason. The reader must never panic, and must either end with the frames
//! before the damage plus a warning, or fail with a message that names the byte offset.

mod common;

use std::io::Cursor;

use common::*;
use tcpfr_wire::capture::{CaptureError, CaptureReader, MAX_WARNINGS};
use tcpfr_wire::decode::decode;

fn reader(bytes: &[u8]) -> Result<CaptureReader, CaptureError> {
    CaptureReader::from_reader(Box::new(Cursor::new(bytes.to_vec())), "test.pcap")
}

/// Reads everything: (frames, warnings, the error if it ended with one). Decodes every
/// frame too, to shake out panics there.
fn drain(bytes: &[u8]) -> Result<(u64, Vec<String>, Option<CaptureError>), CaptureError> {
    let mut r = reader(bytes)?;
    let mut n = 0;
    let err = loop {
        match r.next_frame() {
            Ok(Some(f)) => {
                n += 1;
                let _ = decode(f.linktype, f.data, f.orig_len);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // After the end or an error, the reader stays ended.
    assert!(matches!(r.next_frame(), Ok(None)));
    Ok((n, r.warnings().to_vec(), err))
}

fn small_pcap(be: bool) -> (Vec<u8>, Vec<usize>) {
    let mut p = Pcap::new(be, false, 1, 65535);
    let mut ends = Vec::new();
    for i in 0..3 {
        let f = eth(0x0800, &v4(&Tcp { seq: i, payload: 10 * i as usize, ..Tcp::default() }.bytes()));
        p.record(1_700_000_000, i, &f, f.len() as u32);
        ends.push(p.buf.len());
    }
    (p.buf, ends)
}

/// (file, ends of the packet blocks, end of the section header, end of the IDB).
fn small_pcapng(be: bool) -> (Vec<u8>, Vec<usize>, usize, usize) {
    let mut ng = PcapNg::new(be);
    let shb_end = ng.buf.len();
    ng.idb(1, 0, Some(9), None);
    let idb_end = ng.buf.len();
    let mut ends = Vec::new();
    for i in 0..3u32 {
        let f = eth(0x0800, &v4(&Tcp { seq: i, payload: 10 * i as usize, ..Tcp::default() }.bytes()));
        ng.epb(0, 1_700_000_000_000_000_000 + u64::from(i), &f, f.len() as u32);
        ends.push(ng.buf.len());
    }
    (ng.buf, ends, shb_end, idb_end)
}

#[test]
fn empty_file() {
    let e = reader(&[]).unwrap_err();
    assert!(matches!(e, CaptureError::Empty { .. }));
    let msg = e.to_string();
    assert!(msg.contains("test.pcap") && msg.contains("byte 0") && msg.contains("empty"), "{msg}");
    // The same through open(), with the path in the message.
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "empty.pcap", &[]);
    let msg = CaptureReader::open(&path).unwrap_err().to_string();
    assert!(msg.contains("empty.pcap"), "{msg}");
}

#[test]
fn missing_file_and_directory() {
    let msg = CaptureReader::open(std::path::Path::new("/nonexistent/x.pcap")).unwrap_err().to_string();
    assert!(msg.contains("/nonexistent/x.pcap") && msg.contains("check the path"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let msg = CaptureReader::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("directory"), "{msg}");
}

#[test]
fn not_a_capture() {
    for (bytes, expect) in [
        (&[0x12u8, 0x34, 0x56][..], "12 34 56"),
        (b"hello world, this is text\n", "looks like text"),
        (&[0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3], "gunzip"),
        (&[0x28, 0xB5, 0x2F, 0xFD, 0, 0, 0, 0], "zstd"),
        (&[0xA1, 0xB2, 0xCD, 0x34, 0, 2, 0, 4], "editcap"),
        (&[0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "de ad be ef"),
    ] {
        let e = reader(bytes).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CaptureError::NotCapture { .. }), "{msg}");
        assert!(msg.contains("not a pcap or pcapng file") && msg.contains(expect), "{msg}");
        assert!(msg.contains("byte 0"), "{msg}");
    }
}

/// Every prefix of a small file: either an error naming an offset (only while the file
/// header is incomplete), or the complete records plus a warning at the first
/// incomplete one.
#[test]
fn cut_at_every_byte() {
    for be in [false, true] {
        let (pcap, ends) = small_pcap(be);
        for n in 0..=pcap.len() {
            match drain(&pcap[..n]) {
                Err(e) => {
                    assert!(n < 24, "pcap cut at {n}: {e}");
                    if n >= 4 {
                        let msg = e.to_string();
                        assert!(msg.contains(&format!("byte {n}")), "cut at {n}: {msg}");
                    }
                }
                Ok((frames, warnings, err)) => {
                    assert!(err.is_none(), "pcap cut at {n}: {err:?}");
                    let complete = ends.iter().filter(|&&e| e <= n).count() as u64;
                    assert_eq!(frames, complete, "pcap cut at {n}");
                    let last_end = ends.iter().rev().find(|&&e| e <= n).copied().unwrap_or(24);
                    if n == last_end {
                        assert!(warnings.is_empty(), "cut at {n}: {warnings:?}");
                    } else {
                        assert_eq!(warnings.len(), 1, "cut at {n}");
                        let w = &warnings[0];
                        assert!(
                            w.contains(&format!("at byte {last_end}")) && w.contains("cut short"),
                            "cut at {n}: {w}"
                        );
                    }
                }
            }
        }
        let (ng, ends, shb_end, idb_end) = small_pcapng(be);
        for n in 0..=ng.len() {
            match drain(&ng[..n]) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(n < shb_end, "pcapng cut at {n}: {msg}");
                    assert!(n < 4 || msg.contains(&format!("byte {n}")), "cut at {n}: {msg}");
                }
                Ok((frames, warnings, err)) => {
                    assert!(err.is_none(), "pcapng cut at {n}: {err:?}");
                    let complete = ends.iter().filter(|&&e| e <= n).count() as u64;
                    assert_eq!(frames, complete, "pcapng cut at {n}");
                    if n == shb_end || n == idb_end || ends.contains(&n) {
                        assert!(warnings.is_empty(), "cut at {n}: {warnings:?}");
                    } else {
                        assert_eq!(warnings.len(), 1, "cut at {n}: {warnings:?}");
                        assert!(warnings[0].contains("capture ends inside a record at byte"), "{}", warnings[0]);
                    }
                }
            }
        }
    }
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_pcapng_block_lengths() {
    let (ng, ends, _, _) = small_pcapng(false);
    let second = ends[0]; // offset of the second EPB
    for (len, expect) in
        [(8u32, "less than the minimum of 12"), (30, "not a multiple of 4"), (0, "less than the minimum")]
    {
        let mut b = ng.clone();
        set_u32(&mut b, second + 4, len);
        let (frames, _, err) = drain(&b).unwrap();
        assert_eq!(frames, 1);
        let msg = err.expect("an error").to_string();
        assert!(msg.contains(&format!("byte {second}")) && msg.contains(expect), "{msg}");
        assert!(msg.contains("frames before it were read"), "{msg}");
    }
    // Trailing length different from the leading one.
    let mut b = ng.clone();
    let end2 = ends[1];
    set_u32(&mut b, end2 - 4, 12);
    let (frames, _, err) = drain(&b).unwrap();
    assert_eq!(frames, 1);
    let msg = err.expect("an error").to_string();
    assert!(msg.contains(&format!("byte {second}")), "{msg}");
    // Larger than the file: the file was cut short; a warning.
    let mut b = ng.clone();
    set_u32(&mut b, second + 4, 4096);
    let (frames, warnings, err) = drain(&b).unwrap();
    assert!(err.is_none());
    assert_eq!(frames, 1);
    assert!(warnings[0].contains(&format!("byte {second}")), "{warnings:?}");
    // Larger than anything we accept.
    let mut b = ng.clone();
    set_u32(&mut b, second + 4, 0x7FFF_FFFC);
    let (frames, _, err) = drain(&b).unwrap();
    assert_eq!(frames, 1);
    let msg = err.expect("an error").to_string();
    assert!(msg.contains(&format!("byte {second}")) && msg.contains("256 MiB"), "{msg}");
    // An EPB whose captured length exceeds its block.
    let mut b = ng.clone();
    set_u32(&mut b, second + 20, 5000);
    let msg = drain(&b).unwrap().2.expect("an error").to_string();
    assert!(msg.contains(&format!("byte {second}")) && msg.contains("5000"), "{msg}");
    // An EPB on an interface that was never described.
    let mut b = ng.clone();
    set_u32(&mut b, second + 8, 3);
    let msg = drain(&b).unwrap().2.expect("an error").to_string();
    assert!(msg.contains(&format!("byte {second}")) && msg.contains("interface 3"), "{msg}");
    // A section header with an unknown major version: an error when opening.
    let mut b = ng.clone();
    b[12] = 2;
    let msg = drain(&b).unwrap_err().to_string();
    assert!(msg.contains("byte 0") && msg.contains("version 2"), "{msg}");
    // A section header with a bad byte-order magic.
    let mut b = ng.clone();
    b[8] = 0;
    let msg = drain(&b).unwrap_err().to_string();
    assert!(msg.contains("byte 0") && msg.contains("byte-order magic"), "{msg}");
}

#[test]
fn garbage_in_the_middle_and_at_the_end() {
    // pcapng, garbage between two blocks: an error at the garbage's offset.
    let (ng, ends, _, _) = small_pcapng(true);
    let mut b = ng[..ends[0]].to_vec();
    b.extend_from_slice(&[0x55; 64]);
    b.extend_from_slice(&ng[ends[0]..]);
    let (frames, _, err) = drain(&b).unwrap();
    assert_eq!(frames, 1);
    let msg = err.expect("an error").to_string();
    assert!(msg.contains(&format!("byte {}", ends[0])), "{msg}");
    // pcapng, garbage at the end.
    let mut b = ng.clone();
    b.extend_from_slice(b"\x07\x00\x00\x00garbage!garbage!garbage!");
    let (frames, warnings, err) = drain(&b).unwrap();
    assert_eq!(frames, 3);
    let msg = err.map(|e| e.to_string()).unwrap_or_else(|| warnings.join("; "));
    assert!(msg.contains(&format!("byte {}", ng.len())), "{msg}");
    // pcap, garbage at the end: a record header with an absurd length.
    let (pcap, _) = small_pcap(false);
    let mut b = pcap.clone();
    b.extend_from_slice(&[0xEE; 40]);
    let (frames, warnings, err) = drain(&b).unwrap();
    assert_eq!(frames, 3);
    let msg = err.map(|e| e.to_string()).unwrap_or_else(|| warnings.join("; "));
    assert!(msg.contains(&format!("byte {}", pcap.len())), "{msg}");
    // pcap, a few bytes at the end: cut short.
    let mut b = pcap.clone();
    b.extend_from_slice(&[1, 2, 3]);
    let (frames, warnings, err) = drain(&b).unwrap();
    assert!(err.is_none());
    assert_eq!(frames, 3);
    assert!(warnings[0].contains(&format!("byte {}", pcap.len())), "{warnings:?}");
}

#[test]
fn pcap_record_lengths() {
    // caplen > snaplen and caplen > orig_len: warnings, frames still read.
    let mut p = Pcap::new(false, true, 1, 64);
    let f = eth(0x0800, &v4(&Tcp { payload: 100, ..Tcp::default() }.bytes()));
    p.record(1, 0, &f, f.len() as u32);
    p.record(2, 0, &f[..60], 40);
    let (frames, warnings, err) = drain(&p.buf).unwrap();
    assert!(err.is_none());
    assert_eq!(frames, 2);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("byte 24") && warnings[0].contains("snaplen 64"), "{}", warnings[0]);
    assert!(warnings[1].contains(&format!("byte {}", 24 + 16 + f.len())), "{}", warnings[1]);
    // A record claiming more than we accept.
    let mut b = p.buf.clone();
    let at = b.len();
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&(300u32 << 20).to_le_bytes());
    b.extend_from_slice(&(300u32 << 20).to_le_bytes());
    b.extend_from_slice(&[0; 100]);
    let (frames, _, err) = drain(&b).unwrap();
    assert_eq!(frames, 2);
    let msg = err.expect("an error").to_string();
    assert!(msg.contains(&format!("byte {at}")) && msg.contains("256 MiB"), "{msg}");
}

#[test]
fn warnings_are_bounded() {
    let mut p = Pcap::new(false, false, 1, 10);
    let f = [0u8; 20];
    for i in 0..150 {
        p.record(i, 0, &f, 20);
    }
    let mut r = reader(&p.buf).unwrap();
    let mut n = 0;
    while r.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 150);
    assert_eq!(r.warnings().len(), MAX_WARNINGS);
    assert_eq!(r.warning_count(), 150);
}

#[test]
fn random_corruption_never_panics() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let inputs = [small_pcap(false).0, small_pcap(true).0, small_pcapng(false).0, small_pcapng(true).0];
    for round in 0..3000 {
        let mut b = inputs[round % inputs.len()].clone();
        let edits = 1 + rng.next() % 6;
        for _ in 0..edits {
            let at = (rng.next() % b.len() as u64) as usize;
            match rng.next() % 4 {
                0 => b[at] = rng.next() as u8,
                1 => b[at] ^= 1 << (rng.next() % 8),
                2 => b.truncate(at.max(1)),
                _ => {
                    let v = [0u8, 0xFF, 0x7F, 0x80][(rng.next() % 4) as usize];
                    let end = (at + 4).min(b.len());
                    b[at..end].fill(v);
                }
            }
        }
        if let Ok((_, _, Some(e))) | Err(e) = drain(&b) {
            let msg = e.to_string();
            assert!(msg.contains("test.pcap"), "{msg}");
            if !matches!(e, CaptureError::NotCapture { .. }) {
                assert!(msg.contains("byte "), "{msg}");
            }
        }
    }
}
