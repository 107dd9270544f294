//! A capture that another process truncates while we read it (logrotate's
//! `copytruncate`, a second `tcpdump -w` onto the same path, `truncate -s`): the read
//! must end with an error naming the file and saying so, and every frame handed out
//! before it must be one that was written.
//!
//! A reader that memory-maps the file is killed by SIGBUS when it touches a page past
//! the new end, so the reading runs in a child process (this test binary run again, on
//! the ignored test `truncating_child`): a signal then fails the parent test instead of
//! killing the harness.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tcpfr_wire::capture::CaptureReader;

/// Where the child finds its instructions: `FILE:FRAMES_BEFORE_TRUNCATION:NEW_SIZE:HOW`,
/// HOW `keep` (cut the file to its first NEW_SIZE bytes) or `other` (replace it with
/// NEW_SIZE bytes of something else, as a new capture written over it would).
const CHILD_ENV: &str = "TCPFR_TEST_TRUNCATING_CHILD";

/// Frame `i`'s bytes: its number first, then a pattern, 60 to 1559 bytes long.
fn frame_data(i: u32) -> Vec<u8> {
    let len = 60 + (i as usize * 37) % 1500;
    let mut d: Vec<u8> = (0..len).map(|k| (k as u32 ^ i.wrapping_mul(7)) as u8).collect();
    d[..4].copy_from_slice(&i.to_be_bytes());
    d
}

/// A capture of `size` bytes or a little more (large enough that the old reader mapped it).
fn write_capture(path: &Path, pcapng: bool, size: usize) -> u32 {
    let mut p = Pcap::new(false, true, 1, 0);
    let mut ng = PcapNg::new(false);
    ng.idb(1, 0, Some(9), None);
    let mut i = 0u32;
    loop {
        let buf = if pcapng { &ng.buf } else { &p.buf };
        if buf.len() >= size {
            break;
        }
        let d = frame_data(i);
        if pcapng {
            ng.epb(0, u64::from(i), &d, d.len() as u32);
        } else {
            p.record(0, i, &d, d.len() as u32);
        }
        i += 1;
    }
    std::fs::write(path, if pcapng { &ng.buf } else { &p.buf }).unwrap();
    i
}

/// What the child saw, one `key=value` a line.
#[derive(Debug)]
struct Seen {
    frames: u64,
    bad: u64,
    error: Option<String>,
}

fn run_child(path: &Path, before: u64, new_size: u64, how: &str) -> Seen {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "truncating_child", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, format!("{}:{before}:{new_size}:{how}", path.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the reading process did not end normally ({}): stdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let field = |key: &str| {
        stdout.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
    };
    let num = |key: &str| field(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {key}= in {stdout}"));
    Seen { frames: num("frames"), bad: num("bad"), error: field("error") }
}

/// Reads `before` frames, truncates the file to `new_size` bytes (through a handle of
/// its own, as another process would; for `other`, to 0 and then writes `new_size`
/// bytes of 0xff), then reads on to the end; prints what it saw.
#[test]
#[ignore = "run by the other tests of this file in a child process"]
fn truncating_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.rsplitn(4, ':');
    let how = parts.next().unwrap().to_string();
    let new_size: u64 = parts.next().unwrap().parse().unwrap();
    let before: u64 = parts.next().unwrap().parse().unwrap();
    let path = PathBuf::from(parts.next().unwrap());
    let mut r = CaptureReader::open(&path).unwrap();
    let (mut frames, mut bad) = (0u64, 0u64);
    let error = loop {
        if frames == before {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            if how == "keep" {
                f.set_len(new_size).unwrap();
            } else {
                use std::io::Write;
                f.set_len(0).unwrap();
                f.write_all(&vec![0xff; new_size as usize]).unwrap();
            }
        }
        match r.next_frame() {
            Ok(Some(f)) => {
                let i = frames as u32;
                if f.number != frames + 1 || f.data != frame_data(i).as_slice() {
                    bad += 1;
                }
                frames += 1;
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    println!("frames={frames}");
    println!("bad={bad}");
    if let Some(e) = error {
        println!("error={e}");
    }
}

/// Truncated below the reader's position, to a size it has not reached yet, and
/// replaced by other bytes: all end with the error, after only frames that were
/// written.
#[test]
fn truncated_while_reading_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    for pcapng in [false, true] {
        let path = dir.path().join(if pcapng { "trunc.pcapng" } else { "trunc.pcap" });
        let cases = [(2_000u64, 1_000u64, "keep"), (2_000, 10 << 20, "keep"), (0, 0, "keep"), (2_000, 4 << 20, "other")];
        for (before, new_size, how) in cases {
            let total = write_capture(&path, pcapng, 24 << 20);
            let seen = run_child(&path, before, new_size, how);
            let what = format!("{} truncated to {new_size} ({how}) after {before} frames: {seen:?}", path.display());
            let error = seen.error.as_deref().unwrap_or_else(|| panic!("no error: {what}"));
            assert!(error.contains(&path.display().to_string()), "error does not name the file: {what}");
            assert!(error.contains("truncated while it was being read"), "{what}");
            assert!(error.contains("read a copy"), "error does not say what to do: {what}");
            assert_eq!(seen.bad, 0, "frames that were never written: {what}");
            assert!(seen.frames >= before && seen.frames < u64::from(total), "{what}");
        }
    }
}

/// A capture still being written is read up to its size at open, without an error:
/// growing is not shrinking.
#[test]
fn grown_while_reading_is_read_to_its_size_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growing.pcap");
    let total = write_capture(&path, false, 8 << 20);
    let size_at_open = std::fs::metadata(&path).unwrap().len();
    let mut r = CaptureReader::open(&path).unwrap();
    let mut frames = 0u64;
    while let Some(f) = r.next_frame().unwrap() {
        assert_eq!(f.data, frame_data(frames as u32).as_slice());
        frames += 1;
        if frames == 100 {
            use std::io::Write;
            let mut more = Pcap { buf: Vec::new(), be: false };
            more.record(0, total, &frame_data(total), 1000);
            std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&more.buf).unwrap();
        }
    }
    assert_eq!(frames, u64::from(total));
    assert_eq!(r.bytes_read(), size_at_open);
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
}
