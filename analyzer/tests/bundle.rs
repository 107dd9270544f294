//! `tcpfr bundle`: a window of a recording in one file must answer every question as
//! the recording does over that window; damage must be caught with a clear error; and
//! a redacted bundle must not carry the original addresses or names anywhere — not in
//! the raw bytes, not in the decompressed values — while keeping the shape of the data.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::*;
use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;

/// Windows with retransmits in them, and a few tables to count.
const CASES: [(&str, &str, &str); 2] = [
    ("services/recording", "2026-11-23T12:43:21.7Z", "2026-11-23T12:43:21.9Z"),
    ("bulk-loss/recording", "2026-11-23T12:42:49.93Z", "2026-11-23T12:42:49.96Z"),
];
const TABLES: [&str; 6] = ["retransmits", "state_changes", "flows", "rtt_samples", "sockets", "host_counters"];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bundle(rec: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["bundle", s(rec), "-o", s(out)];
    args.extend_from_slice(extra);
    ok(&args);
}

fn count(rec: &Path, table: &str, window: &[&str]) -> i64 {
    let mut args = vec!["query", s(rec), "--format", "csv"];
    args.extend_from_slice(window);
    let sql = format!("SELECT count(*) FROM {table}");
    args.push(&sql);
    scalar(&ok(&args))
}

#[test]
fn a_bundle_answers_like_its_window() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, from, to)) in CASES.iter().enumerate() {
        let rec = sample(name);
        let out = dir.path().join(format!("b{i}.tcpfr"));
        let window = ["--from", from, "--to", to];
        bundle(&rec, &out, &window);
        // The window really cuts: fewer retransmits than the whole recording, but some.
        let all = count(&rec, "retransmits", &[]);
        let cut = count(&rec, "retransmits", &window);
        assert!(cut > 0 && cut < all, "{name}: window holds {cut} of {all}");
        for t in TABLES {
            assert_eq!(count(&out, t, &[]), count(&rec, t, &window), "{name}: {t}");
        }
        // Canned questions, rates included, say the same (with and without the window).
        for q in ["hotspots", "top-flows", "rtt", "timeline"] {
            let mut a = vec![q, s(&rec), "--format", "csv"];
            a.extend_from_slice(&window);
            let orig = ok(&a);
            assert_eq!(ok(&[q, s(&out), "--format", "csv"]), orig, "{name}: {q}");
            let mut b = vec![q, s(&out), "--format", "csv"];
            b.extend_from_slice(&window);
            assert_eq!(ok(&b), orig, "{name}: {q} with the window");
            assert!(!csv_rows(&orig).is_empty(), "{name}: {q} is empty");
        }
        // Detection is by content, not by name.
        let renamed = dir.path().join(format!("b{i}.data"));
        std::fs::copy(&out, &renamed).unwrap();
        assert_eq!(count(&renamed, "retransmits", &[]), cut);
        ok(&["verify", s(&out)]);
    }
}

#[test]
fn existing_outputs_are_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tcpfr");
    std::fs::write(&out, b"precious").unwrap();
    let r = tcpfr(&["bundle", s(&sample("services/recording")), "-o", s(&out), "--last", "1s"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("--force") && r.stderr.contains("x.tcpfr"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    ok(&["bundle", s(&sample("services/recording")), "-o", s(&out), "--last", "1s", "--force"]);
    assert!(count(&out, "host_counters", &[]) > 0);
    // No temporary files left next to it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let r = tcpfr(&["bundle", s(&sample("services/recording")), "-o", s(&dir.path().join("y.tcpfr")), "--snapshot", "nope"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("no snapshot \"nope\""), "{}", r.stderr);
}

fn fails(args: &[&str], needles: &[&str]) {
    let r = tcpfr(args);
    assert_eq!(r.code, Some(1), "tcpfr {args:?} should fail: {}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "tcpfr {args:?}: stderr lacks {n:?}:\n{}", r.stderr);
    }
}

#[test]
fn damaged_bundles_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tcpfr");
    bundle(&sample("services/recording"), &good, &[]);
    let bytes = std::fs::read(&good).unwrap();

    // One flipped byte in the middle of a Parquet member.
    let mut archive = tar::Archive::new(std::fs::File::open(&good).unwrap());
    let (pos, size) = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy().contains("retransmits/"))
        .map(|e| (e.raw_file_position() as usize, e.size() as usize))
        .unwrap();
    let mut flipped = bytes.clone();
    flipped[pos + size / 2] ^= 0x40;
    let f = dir.path().join("flipped.tcpfr");
    std::fs::write(&f, &flipped).unwrap();
    fails(&["query", s(&f), "SELECT count(*) FROM retransmits"], &["flipped.tcpfr", "damaged", "checksum"]);
    fails(&["hotspots", s(&f)], &["flipped.tcpfr", "damaged"]);

    // Truncated: in the middle, and before the first header ends.
    for (name, len) in [("half.tcpfr", bytes.len() / 2), ("stub.tcpfr", 300)] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes[..len]).unwrap();
        fails(&["query", s(&p), "SELECT count(*) FROM flows"], &[name]);
        let r = tcpfr(&["report", s(&p)]);
        assert!(r.stderr.contains("damaged") || r.stderr.contains("not a tcpfr bundle"), "{}", r.stderr);
    }

    // Not a tar at all.
    let junk = dir.path().join("junk.tcpfr");
    std::fs::write(&junk, (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    fails(&["query", s(&junk), "SELECT 1"], &["junk.tcpfr", "not a tcpfr bundle"]);
    // A tar of something else.
    let other = dir.path().join("other.tcpfr");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&other).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        b.append_data(&mut h, "notes.txt", &b"hello"[..]).unwrap();
        b.finish().unwrap();
    }
    fails(&["report", s(&other)], &["other.tcpfr", "not a tcpfr bundle"]);

    // SHA256SUMS lists one member twice instead of listing the manifest, which was
    // changed: the count of lines matches the members, but the manifest is unchecked.
    let mut members: Vec<(String, Vec<u8>)> = tar::Archive::new(std::fs::File::open(&good).unwrap())
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    let sums = String::from_utf8(members[0].1.clone()).unwrap();
    let manifest_line = sums.lines().find(|l| l.ends_with("rec-1/manifest.json")).unwrap();
    let other_line = sums.lines().find(|l| l.contains("retransmits/")).unwrap();
    members[0].1 = sums.replace(manifest_line, other_line).into_bytes();
    let m = members.iter_mut().find(|(p, _)| p == "rec-1/manifest.json").unwrap();
    let text = String::from_utf8(m.1.clone()).unwrap();
    let host = serde_json::from_str::<serde_json::Value>(&text).unwrap()["host"].as_str().unwrap().to_string();
    m.1 = text.replace(&format!("\"host\": \"{host}\""), "\"host\": \"forged\"").into_bytes();
    let dup = dir.path().join("dup.tcpfr");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&dup).unwrap());
        for (path, data) in &members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            b.append_data(&mut h, path, &data[..]).unwrap();
        }
        b.finish().unwrap();
    }
    fails(&["query", s(&dup), "SELECT DISTINCT host FROM flows"], &["dup.tcpfr", "damaged", "twice"]);
}

/// Every string value of every Parquet file below `dir`, per column name.
fn strings(dir: &Path) -> BTreeMap<String, HashSet<String>> {
    let mut out: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "snapshots" {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let f = std::fs::File::open(&p).unwrap();
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
                for b in reader {
                    let b = b.unwrap();
                    for (field, col) in b.schema().fields().iter().zip(b.columns()) {
                        if field.data_type() == &DataType::Utf8 {
                            let a = col.as_any().downcast_ref::<StringArray>().unwrap();
                            let set = out.entry(field.name().clone()).or_default();
                            set.extend(a.iter().flatten().map(str::to_string));
                        }
                    }
                }
            }
        }
    }
    out
}

fn extract(bundle: &Path, to: &Path) {
    tar::Archive::new(std::fs::File::open(bundle).unwrap()).unpack(to).unwrap();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// (address, value) rows of a two-column query.
fn pairs(out: &str) -> Vec<(IpAddr, i64)> {
    csv_rows(out).into_iter().map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap())).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Sizes of the groups when addresses are grouped by their first `bits` bits.
fn group_sizes(rows: &[(IpAddr, i64)], bits: u32) -> Vec<i64> {
    let mut g: BTreeMap<u128, i64> = BTreeMap::new();
    for (a, n) in rows {
        let key = match a {
            IpAddr::V4(v) => (u32::from(*v) >> (32 - bits)) as u128,
            IpAddr::V6(v) => (u128::from(*v) >> (128 - bits)) | (1 << 127),
        };
        *g.entry(key).or_default() += n;
    }
    sorted(g.into_values().collect())
}

/// Common prefix lengths of every pair of addresses.
fn prefix_lengths(addrs: &[IpAddr]) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        for b in &addrs[i + 1..] {
            out.push(match (a, b) {
                (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(*a) ^ u32::from(*b)).leading_zeros(),
                (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(*a) ^ u128::from(*b)).leading_zeros(),
                _ => 999,
            });
        }
    }
    sorted(out)
}

const PER_RADDR: &str = "SELECT raddr, sum(segments) FROM retransmits GROUP BY raddr";
const ADDRS: &str = "SELECT a, count(*) FROM (SELECT laddr AS a FROM flows UNION ALL SELECT raddr FROM flows \
                     UNION ALL SELECT laddr FROM sockets UNION ALL SELECT raddr FROM sockets) GROUP BY a";

#[test]
fn redacted_bundles_hide_addresses_and_names_but_keep_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, _, _)) in CASES.iter().enumerate() {
        let rec = sample(name);
        let out = dir.path().join(format!("r{i}.tcpfr"));
        bundle(&rec, &out, &["--redact", "--scrub-names", "--scrub-host"]);

        // What must not survive: every address, name and the host name of the original.
        let orig = strings(&rec);
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(rec.join("manifest.json")).unwrap()).unwrap();
        let mut secrets: HashSet<String> = HashSet::new();
        for col in ["laddr", "raddr", "comm", "cgroup", "container_id", "netns_name", "host"] {
            // `host` as a netns name labels the recorder's own namespace, not a machine.
            secrets.extend(orig.get(col).into_iter().flatten().filter(|v| !(v.is_empty() || col == "netns_name" && *v == "host")).cloned());
        }
        secrets.insert(manifest["host"].as_str().unwrap().to_string());
        let addrs: Vec<IpAddr> = orig["laddr"].iter().chain(&orig["raddr"]).map(|a| a.parse().unwrap()).collect();
        assert!(addrs.len() >= 2 && secrets.len() > addrs.len(), "{secrets:?}");

        // Raw bytes: text (long enough not to occur by chance in compressed data) and
        // addresses in binary.
        let raw = std::fs::read(&out).unwrap();
        for v in secrets.iter().filter(|v| v.len() >= 4) {
            assert!(!contains(&raw, v.as_bytes()), "{name}: {v:?} is in the bundle's bytes");
        }
        for a in &addrs {
            let b = match a {
                IpAddr::V4(v) => v.octets().to_vec(),
                IpAddr::V6(v) => v.octets().to_vec(),
            };
            if !a.is_unspecified() {
                assert!(!contains(&raw, &b), "{name}: {a} in binary is in the bundle's bytes");
            }
        }

        // Decompressed: every string value of every table, and the manifest.
        let x = dir.path().join(format!("x{i}"));
        extract(&out, &x);
        for (col, values) in strings(&x) {
            for v in values {
                for sec in &secrets {
                    assert!(v != *sec && (sec.len() < 4 || !v.contains(sec.as_str())), "{name}: {col} value {v:?} carries {sec:?}");
                }
            }
        }
        let mtext = std::fs::read_to_string(x.join("rec-1/manifest.json")).unwrap();
        for sec in secrets.iter().filter(|v| v.len() >= 4) {
            assert!(!mtext.contains(sec.as_str()), "{name}: manifest carries {sec:?}");
        }
        let m: serde_json::Value = serde_json::from_str(&mtext).unwrap();
        assert_eq!(m["host"], "host-1");
        assert!(m["boot_id"].is_null(), "{m}");
        // The kernel's version numbers only; no boot time (the monotonic clock's offset).
        let kernel = manifest["kernel"].as_str().unwrap();
        assert!(kernel.len() > 5 && !mtext.contains(kernel), "{name}: manifest carries the kernel {kernel}");
        assert!(kernel.starts_with(m["kernel"].as_str().unwrap()), "{m}");
        assert_eq!(m["clock"]["mono_to_utc_offset_ns"], 0, "{m}");
        assert_eq!(m["recorder"]["config"], serde_json::json!({}));

        // The shape survives: same numbers per address, same subnet structure.
        let o = pairs(&ok(&["query", s(&rec), "--format", "csv", PER_RADDR]));
        let r = pairs(&ok(&["query", s(&out), "--format", "csv", PER_RADDR]));
        assert!(!o.is_empty());
        assert_eq!(sorted(o.iter().map(|p| p.1).collect()), sorted(r.iter().map(|p| p.1).collect()), "{name}");
        let o = pairs(&ok(&["query", s(&rec), "--format", "csv", ADDRS]));
        let r = pairs(&ok(&["query", s(&out), "--format", "csv", ADDRS]));
        for bits in [8, 16, 24, 30] {
            assert_eq!(group_sizes(&o, bits), group_sizes(&r, bits), "{name}: /{bits}");
        }
        let oa: Vec<IpAddr> = o.iter().map(|p| p.0).collect();
        let ra: Vec<IpAddr> = r.iter().map(|p| p.0).collect();
        assert_eq!(prefix_lengths(&oa), prefix_lengths(&ra), "{name}");
        assert!(oa.iter().all(|a| !ra.contains(a)), "{name}: {oa:?} {ra:?}");
        // Counts per table are untouched.
        for t in TABLES {
            assert_eq!(count(&out, t, &[]), count(&rec, t, &[]), "{name}: {t}");
        }
    }
}

fn distinct_addrs(b: &Path) -> Vec<IpAddr> {
    sorted(pairs(&ok(&["query", s(b), "--format", "csv", ADDRS])).into_iter().map(|p| p.0).collect())
}

#[test]
fn kept_ranges_survive_and_keys_differ_between_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let rec: PathBuf = sample("services/recording");
    let orig = distinct_addrs(&rec);
    let (a, b, k) = (dir.path().join("a.tcpfr"), dir.path().join("b.tcpfr"), dir.path().join("k.tcpfr"));
    bundle(&rec, &a, &["--redact"]);
    bundle(&rec, &b, &["--redact"]);
    let (pa, pb) = (distinct_addrs(&a), distinct_addrs(&b));
    assert_eq!(pa.len(), orig.len());
    assert!(pa.iter().all(|x| !pb.contains(x)), "same pseudonyms twice: {pa:?} {pb:?}");
    // Names are kept without --scrub-names.
    assert_eq!(strings(&rec)["comm"].len(), {
        let x = dir.path().join("xa");
        extract(&a, &x);
        strings(&x)["comm"].len()
    });

    // Keep the first address (as a /32) and a range holding none: the kept one is
    // unchanged, the others changed and not mapped onto it.
    let kept = orig[0];
    let cidr = format!("{kept}/32");
    bundle(&rec, &k, &["--redact", "--keep", &cidr, "--keep", "192.0.2.0/24"]);
    let pk = distinct_addrs(&k);
    assert_eq!(pk.len(), orig.len(), "collision: {pk:?}");
    assert!(pk.contains(&kept), "{pk:?}");
    for o in orig.iter().filter(|o| **o != kept) {
        assert!(!pk.contains(o), "{o} survived: {pk:?}");
    }
    let per = |p: &Path| sorted(pairs(&ok(&["query", s(p), "--format", "csv", &format!("SELECT raddr, count(*) FROM flows WHERE raddr = '{kept}' GROUP BY 1")])));
    assert_eq!(per(&k), per(&rec));

    // --keep without --redact is a usage error, not silently ignored.
    let r = tcpfr(&["bundle", s(&rec), "-o", s(&dir.path().join("n.tcpfr")), "--keep", "10.0.0.0/8"]);
    assert!(!r.ok && r.stderr.contains("--redact"), "{}", r.stderr);
}
