//! Recordings shipped into a real S3-compatible store (SeaweedFS on loopback, started
//! by each test): every question answers over `s3://` exactly as over the same
//! recordings on local disk, a filter on host fetches only that host's objects, and
//! bad stores get clear errors that carry no secret.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tcpfr_testsupport::fleet::{generate, QUESTIONS};
use tcpfr_testsupport::{Seaweed, ACCESS_KEY, SECRET_KEY};

/// Where cargo put the recorder's examples (gen-recording) next to this build's tcpfr.
fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tcpfr")).with_file_name("examples")
}

/// `tcpfr` with the store's environment (credentials, endpoint) and `env` on top.
fn tcpfr_at(sw: &Seaweed, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tcpfr"));
    sw.configure(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::of(cmd.args(args))
}

fn ok_at(sw: &Seaweed, args: &[&str]) -> Run {
    let r = tcpfr_at(sw, &[], args);
    assert!(r.ok && !r.stderr.contains("panicked"), "tcpfr {args:?} failed: {}", r.stderr);
    r
}

fn with(recs: &[String], q: &[&str]) -> Vec<String> {
    let mut v = vec![q[0].to_string()];
    v.extend(recs.iter().cloned());
    v.extend(q[1..].iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn every_question_answers_over_s3_as_over_local_disk() {
    let sw = Seaweed::start("fleet");
    let tmp = tempfile::tempdir().unwrap();
    let generated = generate(&examples(), &tmp.path().join("gen"), 20, 200_000);
    let samples: Vec<String> =
        ["bulk-loss", "refused", "services", "syn-blackhole"].iter().map(|s| sample(s).join("recording").to_string_lossy().into_owned()).collect();

    for (recs, prefix, n) in [(&generated, "gen", 20), (&samples, "samples", 4)] {
        let url = sw.url(prefix);
        let shipped = ok_at(&sw, &strs(&with(recs, &["ship"]).into_iter().chain([url.clone()]).collect::<Vec<_>>()));
        assert!(shipped.stdout.contains(&format!("{n} manifest(s) written")), "{}", shipped.stdout);

        let mut questions: Vec<Vec<&str>> = QUESTIONS.iter().map(|q| q.to_vec()).collect();
        questions.extend([
            vec!["retransmit-rate", "--last", "20m", "--format", "csv"],
            vec!["query", "SELECT * FROM retransmits ORDER BY host, time, socket_id", "--format", "csv"],
            vec!["query", "SELECT * FROM rtt_samples ORDER BY host, time, socket_id LIMIT 200", "--format", "csv"],
            vec!["query", "SELECT host, count(*) AS n, sum(segments) AS s FROM retransmits WHERE counted GROUP BY host ORDER BY host", "--format", "csv"],
        ]);
        for q in &questions {
            let want = ok_at(&sw, &strs(&with(recs, q))).stdout;
            assert!(want.lines().count() > 2, "{q:?} answers something: {want}");
            let got = ok_at(&sw, &strs(&with(&[url.clone()], q))).stdout;
            if q[0] == "report" {
                // The report's RTT finding uses approximate percentiles (t-digest), whose
                // last digit depends on the order partitions merge in, on local disk too.
                let approx = |s: &str| -> String {
                    s.lines().map(|l| if l.contains("RTT tail") { l.split(" at p99").next().unwrap() } else { l }).collect::<Vec<_>>().join("\n")
                };
                assert_eq!(approx(&got), approx(&want), "{q:?} over {url}");
            } else if q[0] == "rtt" {
                // Percentiles are approximate too: numbers within 2%, the rest exact.
                let (g, w) = (csv_rows(&got), csv_rows(&want));
                assert_eq!(g.len(), w.len(), "{q:?} over {url}");
                for (gr, wr) in g.iter().zip(&w) {
                    for (a, b) in gr.iter().zip(wr) {
                        match (a.parse::<f64>(), b.parse::<f64>()) {
                            (Ok(x), Ok(y)) => assert!((x - y).abs() <= 0.02 * x.abs().max(y.abs()) + 1.0, "{q:?} over {url}: {gr:?} vs {wr:?}"),
                            _ => assert_eq!(a, b, "{q:?} over {url}"),
                        }
                    }
                }
            } else {
                assert_eq!(got, want, "{q:?} over {url}");
            }
        }
        // A window inside the data (the generated recordings span two hours).
        if prefix == "gen" {
            let q = ["timeline", "--from", "2026-11-23T10:50:00Z", "--to", "2026-11-23T11:10:00Z", "--format", "csv"];
            let want = ok_at(&sw, &strs(&with(recs, &q))).stdout;
            assert!(want.lines().count() > 2);
            assert_eq!(ok_at(&sw, &strs(&with(&[url.clone()], &q))).stdout, want);
        }
        // Exports too, byte for byte.
        let (a, b) = (tmp.path().join(format!("{prefix}-local.om")), tmp.path().join(format!("{prefix}-s3.om")));
        let mut args = vec!["export".to_string()];
        args.extend(with(recs, &["openmetrics", "-o", a.to_str().unwrap()]));
        ok_at(&sw, &strs(&args));
        ok_at(&sw, &["export", "openmetrics", &url, "-o", b.to_str().unwrap()]);
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(a.len() > 1000);
        assert!(a == b, "openmetrics export over {url} differs from local");
    }
}

/// `-v` counts what is fetched through the store: a question about one host reads
/// only that host's objects of the table asked about, and less than the store holds.
#[test]
fn a_host_filter_fetches_only_that_hosts_objects() {
    let sw = Seaweed::start("prune");
    let tmp = tempfile::tempdir().unwrap();
    let recs = generate(&examples(), &tmp.path().join("gen"), 12, 60_000);
    let url = sw.url("fleet/eu");
    ok_at(&sw, &strs(&with(&recs, &["ship"]).into_iter().chain([url.clone()]).collect::<Vec<_>>()));

    let host = "host-0005";
    let local = &recs[5];
    assert!(local.ends_with(host));
    let files = std::fs::read_dir(Path::new(local).join("retransmits")).unwrap().count();
    assert!(files >= 1);
    let sql = format!("SELECT count(*) AS n, sum(segments) AS s FROM retransmits WHERE host = '{host}'");
    let want = ok_at(&sw, &["query", local, &sql, "--format", "csv"]).stdout;
    let r = ok_at(&sw, &["-v", "query", &url, &sql, "--format", "csv"]);
    assert_eq!(r.stdout, want);
    let line = r.stderr.lines().find(|l| l.contains("fetched")).unwrap_or_else(|| panic!("no -v line: {}", r.stderr));
    let objects: usize = line.split(" object(s)").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(objects, files, "objects fetched for one host's retransmits: {line}");
    let mut all = 0;
    for r in &recs {
        for t in std::fs::read_dir(r).unwrap().flatten().filter(|e| e.path().is_dir()) {
            all += std::fs::read_dir(t.path()).unwrap().flatten().filter(|f| f.path().extension().is_some_and(|x| x == "parquet")).count();
        }
    }
    assert!(line.ends_with(&format!("in {all} file(s)")), "{all} files in the local recordings: {line}");

    // Without -v nothing is said.
    assert!(!ok_at(&sw, &["query", &url, &sql]).stderr.contains("fetched"));
}

#[test]
fn bad_stores_get_clear_errors() {
    let sw = Seaweed::start("bad");
    let tmp = tempfile::tempdir().unwrap();
    ok_at(&sw, &["ship", sample("refused").join("recording").to_str().unwrap(), &sw.url("one")]);

    // A wrong secret: refused, said so, the secret never printed.
    let r = tcpfr_at(&sw, &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")], &["hotspots", &sw.url("one")]);
    assert!(!r.ok && r.stderr.contains("cannot read the store") && r.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-secret") && !r.stderr.contains(SECRET_KEY), "{}", r.stderr);
    // An empty prefix and a missing bucket.
    let r = tcpfr_at(&sw, &[], &["hotspots", &sw.url("nothing-here")]);
    assert!(!r.ok && r.stderr.contains("no shipped recordings"), "{}", r.stderr);
    let r = tcpfr_at(&sw, &[], &["hotspots", "s3://no-such-bucket/x"]);
    assert!(!r.ok && r.stderr.contains("s3://no-such-bucket/x"), "{}", r.stderr);
    // Nothing listening: an answer within the client's retries, not a hang.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let t0 = std::time::Instant::now();
    let r = tcpfr_at(&sw, &[("AWS_ENDPOINT", &format!("http://{dead}"))], &["hotspots", &sw.url("one")]);
    assert!(!r.ok && r.stderr.contains("cannot read the store"), "{}", r.stderr);
    assert!(t0.elapsed().as_secs() < 60, "took {:?}", t0.elapsed());
    // Other schemes, and commands that need local files.
    let r = tcpfr_at(&sw, &[], &["hotspots", "gs://bucket/x"]);
    assert!(!r.ok && r.stderr.contains("cannot be read"), "{}", r.stderr);
    let out = tmp.path().join("x.tcpfr");
    let r = tcpfr_at(&sw, &[], &["bundle", &sw.url("one"), "-o", out.to_str().unwrap()]);
    assert!(!r.ok && r.stderr.contains("needs the files on this machine"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
}

/// With no `AWS_*` keys in the environment, the profile `AWS_PROFILE` names in the AWS
/// shared files gives keys, region and endpoint; a profile with wrong keys is refused,
/// a missing one named.
#[test]
fn credentials_from_the_aws_shared_files() {
    let sw = Seaweed::start("profiles");
    let tmp = tempfile::tempdir().unwrap();
    let (creds, config) = (tmp.path().join("credentials"), tmp.path().join("config"));
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = not-the-secret\n\n[fleet]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    // Both profiles point at the test server: nothing may go anywhere else.
    std::fs::write(&config, format!("[default]\nendpoint_url = {0}\n[profile fleet]\nregion = us-east-1\nendpoint_url = {0}\n", sw.endpoint)).unwrap();
    let run = |profile: &str, args: &[&str]| -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tcpfr"));
        for (k, _) in sw.env() {
            cmd.env_remove(k);
        }
        Run::of(cmd.env("AWS_SHARED_CREDENTIALS_FILE", &creds).env("AWS_CONFIG_FILE", &config).env("AWS_PROFILE", profile).args(args))
    };
    let rec = sample("refused").join("recording");
    let rec = rec.to_str().unwrap();
    let url = sw.url("p");
    let r = run("fleet", &["ship", rec, &url]);
    assert!(r.ok && r.stdout.contains("1 manifest(s) written"), "{}", r.stderr);
    let want = ok(&["resets", rec, "--format", "csv"]);
    let got = run("fleet", &["resets", &url, "--format", "csv"]);
    assert!(got.ok, "{}", got.stderr);
    assert_eq!(got.stdout, want);

    let r = run("default", &["resets", &url]);
    assert!(!r.ok && r.code == Some(1) && r.stderr.contains("cannot read the store"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-secret") && !r.stderr.contains(SECRET_KEY), "{}", r.stderr);
    let r = run("nope", &["resets", &url]);
    assert!(!r.ok && r.stderr.contains("AWS_PROFILE=nope") && r.stderr.contains("credentials"), "{}", r.stderr);
}
