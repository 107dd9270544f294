//! What users type wrong, and what tcpfr must do then: a clear error that says what to
//! do, a non-zero exit, never a panic, and never a written or deleted file.

mod common;

use std::path::Path;

use common::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let r = tcpfr(args);
    assert!(!r.ok, "tcpfr {args:?} should fail; stdout: {}", r.stdout);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "tcpfr {args:?}: stderr lacks {n:?}:\n{}", r.stderr);
    }
    said_once(&r.stderr);
    r.stderr
}

/// No part of an error message is said twice (an error and its cause both printing
/// the cause).
fn said_once(stderr: &str) {
    for line in stderr.lines() {
        let parts: Vec<&str> = line.split(": ").filter(|p| p.len() >= 8).collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{p:?} is said twice in {line:?}");
        }
    }
}

#[test]
fn errors_say_it_once_and_what_to_give_instead() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent");
    let m = missing.to_str().unwrap();
    for args in [vec!["report", m], vec!["hotspots", m], vec!["query", m, "SELECT 1"], vec!["verify", m], vec!["replay", m]] {
        fails_with(&args, &[m, "does not exist", "recording directory"]);
    }
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    fails_with(&["report", notes.to_str().unwrap()], &["notes.txt"]);
    fails_with(&["pcap", m], &[m]);
    fails_with(&["query", "--pcap", m, "SELECT 1"], &[m]);
}

#[test]
fn a_capture_alone_is_queried_with_sql() {
    let cap = sample("services/capture.pcap");
    let n = scalar(&ok(&["query", "--pcap", cap.to_str().unwrap(), "--format", "csv", "SELECT count(*) FROM packets"]));
    let tshark_n = tshark(&cap, "frame", &["frame.number"]).len() as i64;
    assert_eq!(n, tshark_n);
    // The recording tables are there, empty.
    assert_eq!(scalar(&ok(&["query", "--pcap", cap.to_str().unwrap(), "--format", "csv", "SELECT count(*) FROM retransmits"])), 0);
}

#[test]
fn each_question_has_its_own_help() {
    let top = ok(&["--help"]);
    assert!(!top.contains("Options of every canned question"), "{top}");
    for q in ["hotspots", "rtt", "top-flows"] {
        let about = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../queries/{q}.sql"))).unwrap();
        let about = about.lines().find_map(|l| l.strip_prefix("-- about:")).unwrap().trim().to_string();
        let help = ok(&[q, "--help"]);
        let first = about.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        assert!(help.contains(&first), "{q} --help lacks {first:?}:\n{help}");
        assert!(!help.contains("Options of every canned question"), "{help}");
        assert!(help.contains("<REC>...") && help.contains("bundle"), "REC is explained:\n{help}");
    }
}

#[test]
fn paths_that_are_not_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails_with(&["report", empty.to_str().unwrap()], &["empty", "no manifest.json"]);
    fails_with(&["query", "/no/such/recording", "SELECT 1"], &["/no/such/recording"]);
    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"not parquet at all").unwrap();
    fails_with(&["query", garbage.to_str().unwrap(), "SELECT 1"], &["garbage.parquet", "not a readable Parquet file"]);
}

#[test]
fn foreign_and_damaged_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // A Parquet file of someone else's: DuckDB makes one.
    let foreign = dir.path().join("sales.parquet");
    let out = std::process::Command::new("python3")
        .args(["-c", &format!("import duckdb; duckdb.sql(\"COPY (SELECT 1 AS amount) TO '{}'\")", foreign.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fails_with(&["query", foreign.to_str().unwrap(), "SELECT 1"], &["sales.parquet", "not one written by tcpfr"]);

    // A recording whose file was cut short.
    let rec = dir.path().join("rec");
    copy_dir(&sample("refused/recording"), &rec);
    let file = std::fs::read_dir(rec.join("state_changes")).unwrap().next().unwrap().unwrap().path();
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 3).unwrap();
    let err = fails_with(&["report", rec.to_str().unwrap()], &["damaged", "truncated", "tcpfr verify"]);
    assert!(err.contains(&file.file_name().unwrap().to_string_lossy().to_string()), "{err}");
    let v = tcpfr(&["verify", rec.to_str().unwrap()]);
    assert!(!v.ok && v.stdout.contains("BAD") && v.stdout.contains("state_changes"), "{}", v.stdout);
}

#[test]
fn a_recording_whose_manifest_cannot_be_read_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all");
    copy_dir(&sample("refused/recording"), &all.join("good"));
    let one = scalar(&ok(&["query", all.to_str().unwrap(), "--format", "csv", "SELECT count(*) FROM state_changes"]));
    assert!(one > 0);
    // Empty (a power cut after an unsynced rename), zeros, cut short.
    for (name, damage) in [("empty", 0usize), ("zeros", 1), ("cut", 2)] {
        let rec = all.join(name);
        copy_dir(&sample("refused/recording"), &rec);
        let m = rec.join("manifest.json");
        let text = std::fs::read(&m).unwrap();
        let bytes = [Vec::new(), vec![0; text.len()], text[..text.len() / 2].to_vec()];
        std::fs::write(&m, &bytes[damage]).unwrap();
    }
    let r = tcpfr(&["query", all.to_str().unwrap(), "--format", "csv", "SELECT count(*) FROM state_changes"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(scalar(&r.stdout), one, "the readable recording, once");
    for name in ["empty", "zeros", "cut"] {
        let m = all.join(name).join("manifest.json");
        assert!(r.stderr.contains(&format!("skipped a recording that cannot be read: {}", m.display())), "{name}: {}", r.stderr);
    }
    let r = tcpfr(&["report", all.to_str().unwrap()]);
    assert!(r.ok && r.stderr.matches("skipped").count() == 3, "{}", r.stderr);
    // `verify` lists each as bad, and fails.
    let v = tcpfr(&["verify", all.to_str().unwrap()]);
    assert!(!v.ok && v.stdout.matches("BAD").count() == 3 && v.stdout.contains("ok  "), "{}", v.stdout);
    // Named on its own, a broken recording is an error that names it.
    let empty = all.join("empty");
    fails_with(&["report", empty.to_str().unwrap()], &["empty/manifest.json", "damaged"]);
}

#[test]
fn a_newer_format_says_which_version_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    copy_dir(&sample("refused/recording"), &rec);
    let m = rec.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap().replace("\"format_version\": \"1.0\"", "\"format_version\": \"2.0\"");
    std::fs::write(&m, text).unwrap();
    fails_with(&["hotspots", rec.to_str().unwrap()], &["format 2.0", "reads format 1.x", "reads format 2"]);
}

#[test]
fn sql_mistakes_are_explained() {
    let rec = sample("refused");
    let rec = rec.to_str().unwrap();
    fails_with(&["query", rec, "SELECT * FROM retransmit"], &["not found", "Tables:", "retransmits", "flows"]);
    fails_with(&["query", rec, "SELECT nonsense_column FROM flows"], &["nonsense_column", "socket_id"]);
    fails_with(&["query", rec, "SELEC 1"], &["SELEC"]);
    fails_with(&["hotspots", rec, "--by", "colour"], &["--by colour", "service, peer"]);
    fails_with(&["query", rec, "SELECT 1", "--format", "parquet"], &["-o FILE"]);
    fails_with(&["report", rec, "--from", "yesterday"], &["--from", "not a time"]);
}

#[test]
fn nothing_typed_can_write_or_delete() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    copy_dir(&sample("refused/recording"), &rec);
    let target = dir.path().join("stolen.csv");
    let before: Vec<_> = walk(dir.path());
    for sql in [
        format!("COPY (SELECT * FROM flows) TO '{}'", target.display()),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "DROP VIEW flows".to_string(),
        "INSERT INTO files.flows SELECT * FROM files.flows".to_string(),
        format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'", target.display()),
        "SET datafusion.execution.target_partitions = 1".to_string(),
    ] {
        fails_with(&["query", rec.to_str().unwrap(), &sql], &["queries only"]);
    }
    assert_eq!(walk(dir.path()), before, "no file appeared, changed or vanished");
}

fn walk(p: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
        }
    }
    out.sort();
    out
}

#[test]
fn output_formats() {
    let rec = sample("refused");
    let rec = rec.to_str().unwrap();
    let sql = "SELECT socket_id, raddr, rport, handshake FROM flows WHERE role = 'client' ORDER BY time";
    let csv = ok(&["query", rec, sql, "--format", "csv"]);
    assert!(csv.starts_with("socket_id,raddr,rport,handshake\n"), "{csv}");
    assert_eq!(csv_rows(&csv).len(), 9);
    let json: serde_json::Value = serde_json::from_str(&ok(&["query", rec, sql, "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 9);
    assert_eq!(json[8]["handshake"], "refused");
    let nd = ok(&["query", rec, sql, "--format", "ndjson"]);
    assert_eq!(nd.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).count(), 9);
    let empty: serde_json::Value = serde_json::from_str(&ok(&["query", rec, "SELECT * FROM flows WHERE false", "--format", "json"])).unwrap();
    assert_eq!(empty, serde_json::json!([]));
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("out.parquet");
    ok(&["query", rec, sql, "--format", "parquet", "-o", pq.to_str().unwrap()]);
    let md = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&pq).unwrap()).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(md.metadata().file_metadata().num_rows(), 9);
    let table = ok(&["query", rec, sql]);
    assert!(table.contains("socket_id") && table.contains("(9 rows)"), "{table}");
}

#[test]
fn many_recordings_and_single_files_are_one_dataset() {
    let both = ok(&[
        "query",
        sample("refused").to_str().unwrap(),
        sample("syn-blackhole").to_str().unwrap(),
        "SELECT host, count(*) FROM flows GROUP BY host ORDER BY host",
        "--format",
        "csv",
    ]);
    let rows = csv_rows(&both);
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["sample-refused", "sample-syn-blackhole"]);
    // The parent of both finds them too, and every other sample (one host each).
    let parent = ok(&["query", sample("").to_str().unwrap(), "SELECT count(DISTINCT host) FROM flows", "--format", "csv"]);
    let samples = std::fs::read_dir(sample("")).unwrap().filter(|e| e.as_ref().unwrap().path().join("recording").is_dir()).count();
    assert!(samples >= 5, "{samples}");
    assert_eq!(scalar(&parent), samples as i64);
    // One Parquet file on its own: its table has its rows, the others are empty.
    let file = std::fs::read_dir(sample("refused/recording/flows")).unwrap().next().unwrap().unwrap().path();
    let n = scalar(&ok(&["query", file.to_str().unwrap(), "SELECT count(*) FROM flows", "--format", "csv"]));
    assert_eq!(n, 11);
    assert_eq!(scalar(&ok(&["query", file.to_str().unwrap(), "SELECT count(*) FROM resets", "--format", "csv"])), 0);
}

#[test]
fn time_windows_select_rows_by_time() {
    let rec = sample("syn-blackhole");
    let rec = rec.to_str().unwrap();
    let all = csv_rows(&ok(&["query", rec, "SELECT time FROM state_changes ORDER BY time", "--format", "csv"]));
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> =
        all.iter().map(|r| chrono::DateTime::parse_from_rfc3339(&r[0]).unwrap()).collect();
    let mid = times[times.len() / 2];
    let expected_before = times.iter().filter(|t| **t < mid).count() as i64;
    let from_mid = mid.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let n = scalar(&ok(&["query", rec, "SELECT count(*) FROM state_changes", "--to", &from_mid, "--format", "csv"]));
    assert_eq!(n, expected_before);
    let n = scalar(&ok(&["query", rec, "SELECT count(*) FROM state_changes", "--from", &from_mid, "--format", "csv"]));
    assert_eq!(n, times.len() as i64 - expected_before);
    // --last counts back from the end of the data.
    let last = *times.last().unwrap();
    let expected = times.iter().filter(|t| (last - **t).num_milliseconds() <= 2000).count() as i64;
    let n = scalar(&ok(&["query", rec, "SELECT count(*) FROM state_changes", "--last", "2s", "--format", "csv"]));
    assert!(n >= expected && n <= expected + 1, "{n} vs {expected}");
    // The raw tables ignore the window.
    let raw = scalar(&ok(&["query", rec, "SELECT count(*) FROM files.state_changes", "--last", "1ms", "--format", "csv"]));
    assert_eq!(raw, times.len() as i64);
}

#[test]
fn services_map_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("services.toml");
    std::fs::write(&map, "[[service]]\nname = \"orders-db\"\nrport = 5432\n[[service]]\nname = \"lab\"\ncidr = \"10.66.0.0/24\"\n").unwrap();
    let rec = sample("services");
    let rows = csv_rows(&ok(&["hotspots", rec.to_str().unwrap(), "--part", "1", "--services", map.to_str().unwrap(), "--format", "csv"]));
    // First match wins: 5432 is orders-db; everything else on 10.66.0.0/24 is lab.
    assert_eq!(rows[0][0], "orders-db");
    assert!(rows[1..].iter().all(|r| r[0] == "lab"), "{rows:?}");
    std::fs::write(&map, "[[service]]\nname = \"x\"\n").unwrap();
    fails_with(&["hotspots", rec.to_str().unwrap(), "--services", map.to_str().unwrap()], &["services.toml", "no condition"]);
}

#[test]
fn every_question_runs_on_every_sample_and_lists_in_help() {
    let help = ok(&["--help"]);
    for q in ["retransmit-rate", "hotspots", "handshakes", "resets", "causes", "rtt", "timeline", "top-flows"] {
        assert!(help.contains(q), "--help lists {q}");
        for s in ["bulk-loss", "syn-blackhole", "refused", "services"] {
            for by in ["service", "peer", "flow", "host", "process"] {
                let r = tcpfr(&[q, sample(s).to_str().unwrap(), "--by", by, "--format", "csv"]);
                if ["retransmit-rate", "hotspots", "causes", "rtt"].contains(&q) {
                    // The grouping is the answer's: a column named after it (hotspots
                    // once ignored --by and grouped by service anyway).
                    assert!(r.ok, "{q} {s} --by {by}: {}", r.stderr);
                    // Some result's header (the line after its `# title`) has it.
                    let lines: Vec<&str> = r.stdout.lines().collect();
                    let grouped = lines.windows(2).any(|w| w[0].starts_with('#') && w[1].split(',').any(|c| c == by))
                        || lines.first().is_some_and(|h| h.split(',').any(|c| c == by));
                    assert!(grouped, "{q} {s} --by {by}: {}", r.stdout.lines().take(3).collect::<Vec<_>>().join(" | "));
                } else {
                    // The others group their own way: said, not silently ignored.
                    assert!(!r.ok && r.stderr.contains("has groupings of its own"), "{q} {s} --by {by}: {}", r.stderr);
                }
            }
        }
        // --show-sql prints SQL that DuckDB could run after dialect changes; here: valid SQL text.
        assert!(ok(&[q, sample("refused").to_str().unwrap(), "--show-sql"]).contains("SELECT"));
    }
}

/// `tcpfr … | head`: the reader goes away before tcpfr writes. Every printing path ends
/// quietly with success — no "failed printing to stdout" panic (it did for questions
/// with several results, the pcap summary and --show-sql).
#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::process::{Command, Stdio};
    let services = sample("services");
    let services = services.to_str().unwrap();
    let pcap = sample("services/capture.pcap");
    let pcap = pcap.to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &["hotspots", services],
        &["hotspots", services, "--show-sql"],
        &["report", services],
        &["pcap", pcap],
        &["xref", services, "--pcap", pcap],
        &["verify", services],
        &["services"],
    ];
    for args in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcpfr"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "tcpfr {args:?} into a closed pipe: {:?}\n{stderr}", out.status);
    }
}

/// DataFusion's settings from `DATAFUSION_*` variables, as in datafusion-cli: a value
/// is applied (the session's own settings table shows it), a wrong one is refused.
#[test]
fn datafusion_settings_from_the_environment() {
    use std::process::Command;
    let services = sample("services");
    let services = services.to_str().unwrap();
    let run = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_tcpfr"))
            .args(["query", services, "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'", "--format", "csv"])
            .env("DATAFUSION_EXECUTION_BATCH_SIZE", value)
            .output()
            .unwrap()
    };
    let default = ok(&["query", services, "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'", "--format", "csv"]);
    assert_eq!(default, "value\n8192\n");
    let set = run("1234");
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert_eq!(String::from_utf8_lossy(&set.stdout), "value\n1234\n");
    let bad = run("many");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("DATAFUSION_") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fleet_answers_name_the_host() {
    let (a, b) = (sample("refused/recording"), sample("syn-blackhole/recording"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for (q, part) in [("top-flows", "1"), ("handshakes", "1"), ("resets", "1"), ("hotspots", "2")] {
        let one = ok(&[q, a, "--part", part, "--format", "csv"]);
        assert!(!one.lines().next().unwrap_or("").split(',').any(|c| c == "host"), "{q} on one host: {one}");
        let two = ok(&[q, a, b, "--part", part, "--format", "csv"]);
        let header = two.lines().find(|l| !l.starts_with('#')).unwrap_or("");
        assert!(header.starts_with("host,"), "{q} on two hosts: {two}");
        let rows = csv_rows(&two);
        assert!(!rows.is_empty(), "{q}: no rows on two hosts");
        // Every row is one host's.
        for r in &rows {
            assert!(r[0] == "sample-refused" || r[0] == "sample-syn-blackhole", "{q}: {r:?}");
        }
    }
}
