//! `tcpfr ship` into a directory (`file://`), and every command over the shipped
//! layout: the same answers as over the recordings themselves, re-runs that send
//! nothing, interrupted runs completed by the next, manifests last, and DuckDB reading
//! the same layout with hive partitioning.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SAMPLES: [&str; 4] = ["bulk-loss", "refused", "services", "syn-blackhole"];

fn recordings() -> Vec<String> {
    SAMPLES.iter().map(|s| sample(s).join("recording").to_string_lossy().into_owned()).collect()
}

fn ship_to(dir: &Path, extra: &[&str]) -> Run {
    let url = format!("file://{}", dir.display());
    let mut args: Vec<String> = vec!["ship".into()];
    args.extend(recordings());
    args.push(url);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tcpfr(&args)
}

/// (uploaded, skipped, manifests written) from the summary line.
fn summary(out: &str) -> (u64, u64, u64) {
    let line = out.lines().find(|l| l.starts_with("shipped to ")).unwrap_or_else(|| panic!("no summary: {out}"));
    let num_before = |word: &str| -> u64 {
        let i = line.find(word).unwrap_or_else(|| panic!("{word} in {line}"));
        line[..i].split_whitespace().last().unwrap().trim_start_matches('(').parse().unwrap()
    };
    (num_before("file(s) uploaded"), num_before("already there"), num_before("manifest(s) written"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn data_files(store: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    files_under(store, &mut v);
    v.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    v.sort();
    v
}

fn manifest_files(store: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    files_under(&store.join("_manifests"), &mut v);
    v.sort();
    v
}

#[test]
fn every_question_and_the_report_answer_the_same_over_the_shipped_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("fleet");
    let r = ship_to(&store, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(summary(&r.stdout), (32, 0, 4), "{}", r.stdout);
    // The layout of FORMAT.md, file for file.
    let files = data_files(&store);
    assert_eq!(files.len(), 32);
    for f in &files {
        let rel = f.strip_prefix(&store).unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 5, "{rel}");
        assert!(tcpfr_tables().contains(&parts[0]), "{rel}");
        assert!(parts[1].starts_with("host=sample-") && parts[2] == "date=2026-11-23" && parts[3] == "hour=12", "{rel}");
    }
    assert_eq!(manifest_files(&store).len(), 4);

    let originals = recordings();
    let shipped = [format!("file://{}", store.display())];
    let plain_dir = [store.display().to_string()];
    let run = |recs: &[String], q: &[&str]| -> String {
        let mut args: Vec<&str> = vec![q[0]];
        args.extend(recs.iter().map(String::as_str));
        args.extend(&q[1..]);
        ok(&args)
    };
    let mut questions: Vec<Vec<&str>> = tcpfr_testsupport::fleet::QUESTIONS.iter().map(|q| q.to_vec()).collect();
    questions.extend([
        // A window: the path filter on date/hour sits beside the time filter.
        vec!["timeline", "--from", "2026-11-23T12:42:50Z", "--to", "2026-11-23T12:43:20Z", "--format", "csv"],
        vec!["retransmit-rate", "--last", "10s", "--format", "csv"],
        // Column order and types of the views, as they are over the recordings.
        vec!["query", "SELECT * FROM retransmits ORDER BY host, time, socket_id", "--format", "csv"],
        vec!["query", "SELECT * FROM rtt_samples ORDER BY host, time, socket_id LIMIT 50", "--format", "csv"],
        vec!["query", "SELECT host, count(*) AS n FROM flows GROUP BY host ORDER BY host", "--format", "csv"],
    ]);
    for q in &questions {
        let want = run(&originals, q);
        assert!(want.lines().count() > 1, "{q:?} answers something: {want}");
        assert_eq!(run(&shipped, q), want, "{q:?} over file://");
        assert_eq!(run(&plain_dir, q), want, "{q:?} over the directory");
    }

    // Host and date are partition columns of the raw tables, read from the paths.
    let parts = ok(&[
        "query",
        &shipped[0],
        "SELECT host, date, hour, count(*) AS n FROM files.resets GROUP BY ALL ORDER BY host",
        "--format",
        "csv",
    ]);
    let want = ok(&[
        "query",
        &originals[0],
        &originals[1],
        &originals[2],
        &originals[3],
        "SELECT host, '2026-11-23' AS date, '12' AS hour, count(*) AS n FROM resets GROUP BY ALL ORDER BY host",
        "--format",
        "csv",
    ]);
    assert_eq!(parts, want);
    // A filter on host prunes by path: the plan lists only that host's file.
    let plan = ok(&["query", &shipped[0], "EXPLAIN SELECT sum(lport) FROM resets WHERE host = 'sample-refused'", "--format", "csv"]);
    assert!(plan.contains("host=sample-refused") && !plan.contains("host=sample-services"), "{plan}");
}

fn tcpfr_tables() -> [&'static str; 8] {
    ["retransmits", "state_changes", "resets", "rtt_samples", "flows", "sockets", "host_counters", "recorder_stats"]
}

#[test]
fn a_rerun_sends_nothing_and_an_interrupted_run_is_completed_manifest_last() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("fleet");
    // An interruption: one host's retransmits directory cannot be created (a file is in
    // the way), so that host's file fails after its retries, the others go through.
    let blocker = store.join("retransmits/host=sample-refused");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();
    let r = ship_to(&store, &["--retries", "1"]);
    assert!(!r.ok, "{}", r.stdout);
    assert!(r.stderr.contains("run again to complete it") && r.stderr.contains("host sample-refused"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let m = manifest_files(&store);
    // Recordings are shipped in order (bulk-loss first): the failed one has no manifest.
    assert!(m.iter().all(|p| !p.to_string_lossy().contains("sample-refused")), "{m:?}");
    let sent_before = data_files(&store).len();
    assert!(sent_before >= 8, "bulk-loss went through: {sent_before}");

    std::fs::remove_file(&blocker).unwrap();
    let r = ship_to(&store, &[]);
    assert!(r.ok, "{}", r.stderr);
    let (up, skipped, manifests) = summary(&r.stdout);
    assert_eq!((up as usize, skipped as usize), (32 - sent_before, sent_before), "{}", r.stdout);
    assert_eq!(manifests as usize, 4 - m.len());
    assert_eq!(data_files(&store).len(), 32);

    // Manifests last: none is older than a file it lists.
    let newest_data = data_files(&store)
        .iter()
        .filter(|p| p.to_string_lossy().contains("host=sample-refused"))
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .max()
        .unwrap();
    let refused = manifest_files(&store).into_iter().find(|p| p.to_string_lossy().contains("sample-refused")).unwrap();
    assert!(std::fs::metadata(&refused).unwrap().modified().unwrap() >= newest_data);

    // A re-run sends nothing.
    let r = ship_to(&store, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(summary(&r.stdout), (0, 32, 0), "{}", r.stdout);

    // Objects lost (deleted) are sent again, and only they.
    let files = data_files(&store);
    for f in files.iter().step_by(5) {
        std::fs::remove_file(f).unwrap();
    }
    let lost = files.iter().step_by(5).count() as u64;
    let r = ship_to(&store, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(summary(&r.stdout), (lost, 32 - lost, 0), "{}", r.stdout);
    // And what arrived is what was recorded: tcpfr verify checks sizes and checksums.
    let v = ok(&["verify", &store.display().to_string()]);
    assert_eq!(v.lines().filter(|l| l.starts_with("ok ")).count(), 4, "{v}");
}

#[test]
fn duckdb_reads_the_shipped_layout_with_hive_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("fleet");
    assert!(ship_to(&store, &[]).ok);
    let recs = recordings();
    for table in ["retransmits", "flows", "rtt_samples", "host_counters"] {
        // tcpfr over the recordings themselves.
        let sql = format!("SELECT host, count(*) AS n FROM {table} GROUP BY host ORDER BY host");
        let mut args: Vec<&str> = vec!["query"];
        args.extend(recs.iter().map(String::as_str));
        args.extend([sql.as_str(), "--format", "csv"]);
        let want: Vec<Vec<String>> = csv_rows(&ok(&args));
        // (sample-refused has no retransmits.)
        assert!(want.len() >= 3, "{table}: {want:?}");
        let py = format!(
            "import duckdb; [print(f'{{h}},{{n}}') for h, n in duckdb.sql(\"SELECT host, count(*) FROM read_parquet('{}/{table}/**/*.parquet', hive_partitioning = true) GROUP BY host ORDER BY host\").fetchall()]",
            store.display()
        );
        let got = python(&py);
        let got: Vec<Vec<String>> = got.lines().map(|l| l.split(',').map(String::from).collect()).collect();
        assert_eq!(got, want, "{table}");

        // Partition filters prune and agree with tcpfr's host filter.
        let host = &want[want.len() - 1][0];
        let py = format!(
            "import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('{}/{table}/**/*.parquet', hive_partitioning = true) WHERE host = '{host}' AND date = '2026-11-23' AND hour = 12\").fetchall()[0][0])",
            store.display()
        );
        assert_eq!(python(&py).trim(), want[want.len() - 1][1], "{table} {host}");
    }
}

fn python(code: &str) -> String {
    let out = Command::new("python3").arg("-c").arg(code).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_input_gets_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = sample("refused").join("recording");
    let rec = rec.to_str().unwrap();
    let fails = |args: &[&str], needle: &str| {
        let r = tcpfr(args);
        assert!(!r.ok && r.code == Some(1), "{args:?} should fail: {}", r.stdout);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    };
    fails(&["ship", rec, "ftp://host/dir"], "unsupported store ftp://");
    fails(&["ship", rec, "s3://"], "no bucket");
    fails(&["ship", rec, "file://otherhost/dir"], "not a host");
    let other = sample("services").join("recording");
    fails(&["ship", rec, other.to_str().unwrap()], "is a recording, not a store");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let dest = tmp.path().join("dest").display().to_string();
    fails(&["ship", empty.to_str().unwrap(), &dest], "no manifest.json");
    // An S3 endpoint nobody listens on: reported quickly, nothing uploaded.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tcpfr"))
        .args(["ship", rec, "s3://bucket/prefix"])
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test-key-id")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-not-printed")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot reach the store s3://bucket/prefix"), "{err}");
    assert!(!err.contains("test-secret-not-printed") && !err.contains("test-key-id"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // Reading: a store that cannot be reached (no credentials, no endpoint here) and
    // schemes nothing reads (tests/ship_s3.rs reads a real S3 server).
    fails(&["hotspots", "s3://bucket/prefix"], "cannot read the store s3://bucket/prefix");
    fails(&["hotspots", "gs://bucket/prefix"], "gs:// stores cannot be read");
    // Shipping the shipped layout again is refused.
    let store = tmp.path().join("fleet");
    assert!(tcpfr(&["ship", rec, store.to_str().unwrap()]).ok);
    fails(&["ship", store.to_str().unwrap(), &dest], "already in the shipped layout");
}

/// Copies a recording, renamed (host, id) and with its files' first-row times moved to
/// `time_min` in the manifest only: the shipped partitions follow the manifest.
fn doctored_copy(from: &Path, to: &Path, host: &str, id: &str, time_min: &str) {
    std::fs::create_dir_all(to).unwrap();
    let mut files = Vec::new();
    files_under(from, &mut files);
    for f in files {
        let dst = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dst).unwrap();
    }
    let path = to.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["host"] = host.into();
    m["recording_id"] = id.into();
    for f in m["files"].as_array_mut().unwrap() {
        f["time_min"] = time_min.into();
    }
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn the_window_end_prunes_later_hours_by_path_and_never_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = sample("refused").join("recording");
    // Same rows (12:43), partitions of another hour.
    doctored_copy(&rec, &tmp.path().join("later"), "later-host", "01a2086e-0000-7000-8000-000000000013", "2026-11-23T13:10:00Z");
    doctored_copy(&rec, &tmp.path().join("earlier"), "earlier-host", "01a2086e-0000-7000-8000-000000000011", "2026-11-23T11:59:59Z");
    let store = tmp.path().join("fleet");
    for r in ["later", "earlier"] {
        assert!(tcpfr(&["ship", tmp.path().join(r).to_str().unwrap(), store.to_str().unwrap()]).ok);
    }
    assert!(store.join("resets/host=later-host/date=2026-11-23/hour=13").is_dir());
    assert!(store.join("resets/host=earlier-host/date=2026-11-23/hour=11").is_dir());
    let s = store.to_str().unwrap();
    let plan = |to: &str| ok(&["query", s, "--to", to, "EXPLAIN SELECT sum(lport) FROM resets", "--format", "csv"]);
    // Ends before 13:00: the hour-13 files cannot hold a row before it, and are not read;
    // the hour-11 file's rows run on past its hour, and are.
    let p = plan("2026-11-23T13:00:00Z");
    assert!(!p.contains("host=later-host") && p.contains("host=earlier-host"), "{p}");
    let p = plan("2026-11-23T13:10:00.000000001Z");
    assert!(p.contains("host=later-host") && p.contains("host=earlier-host"), "{p}");
    // The answer from rows: the earlier host's resets (12:43) are all in the window.
    let n = ok(&["query", s, "--from", "2026-11-23T12:00:00Z", "--to", "2026-11-23T13:00:00Z", "SELECT host, count(*) FROM resets GROUP BY host", "--format", "csv"]);
    let want = ok(&["query", rec.to_str().unwrap(), "SELECT 'earlier-host' AS host, count(*) FROM resets", "--format", "csv"]);
    assert_eq!(n, want);

    // Shipped and unshipped recordings are not read together.
    let r = tcpfr(&["hotspots", s, rec.to_str().unwrap()]);
    assert!(!r.ok && r.stderr.contains("is not in a shipped store"), "{}", r.stderr);
}
