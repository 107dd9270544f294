//! `tcpfr export openmetrics`: the file promtool backfills, and what a real Prometheus
//! then answers, against the recordings read independently (DuckDB over the Parquet
//! files, through python3).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The samples exported together: between them they have retransmits (and failed
/// attempts), resets, failed handshakes and RTT samples.
const SAMPLES: [&str; 4] = ["bulk-loss", "refused", "services", "syn-blackhole"];

/// A Prometheus serving the TSDB blocks in a directory, on a free port; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(tsdb: &Path) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            // Blocks older than the retention (15 days by default) would be deleted.
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus runs (installed by scripts/bootstrap.sh)");
        let mut p = Prometheus { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}): {}", p.log());
            }
            if get(port, "/-/ready").is_some_and(|(code, _)| code == 200) {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus not ready after 60 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    /// An instant query: label sets (without __name__) → value.
    fn query(&self, promql: &str, time: f64) -> BTreeMap<BTreeMap<String, String>, f64> {
        let path = format!("/api/v1/query?query={}&time={time:.3}", urlencode(promql));
        let (code, body) = get(self.port, &path).expect("prometheus answers");
        assert_eq!(code, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        let mut out = BTreeMap::new();
        for r in v["data"]["result"].as_array().unwrap() {
            let labels: BTreeMap<String, String> = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            out.insert(labels, value);
        }
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// DuckDB's answer over the samples' Parquet files: `{table}` in `sql` reads that table
/// of every exported sample.
fn duck(sql: &str) -> Vec<Vec<serde_json::Value>> {
    duck_in(&SAMPLES, sql)
}

/// [`duck`] over the given samples.
fn duck_in(samples: &[&str], sql: &str) -> Vec<Vec<serde_json::Value>> {
    let tables = ["retransmits", "resets", "flows", "state_changes", "rtt_samples", "host_counters", "drops", "listeners"];
    let sql = tables.iter().fold(sql.to_string(), |s, t| {
        let files: Vec<String> =
            samples.iter().map(|n| format!("'{}/recording/{t}/*.parquet'", sample(n).display())).collect();
        s.replace(&format!("{{{t}}}"), &format!("read_parquet([{}])", files.join(", ")))
    });
    let script = "import duckdb, json, sys\nprint(json.dumps([list(r) for r in duckdb.sql(sys.argv[1]).fetchall()], default=str))";
    let out = Command::new("python3").args(["-c", script, &sql]).output().expect("python3 runs");
    assert!(out.status.success(), "duckdb: {sql}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// DuckDB rows `label…, value` as Prometheus-like label sets → value (zeros left out).
fn keyed(rows: Vec<Vec<serde_json::Value>>, names: &[&str]) -> BTreeMap<BTreeMap<String, String>, f64> {
    rows.into_iter()
        .map(|r| {
            let labels = names.iter().zip(&r).map(|(n, v)| (n.to_string(), v.as_str().unwrap().to_string())).collect();
            (labels, r[names.len()].as_f64().unwrap())
        })
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

fn nonzero(m: BTreeMap<BTreeMap<String, String>, f64>) -> BTreeMap<BTreeMap<String, String>, f64> {
    m.into_iter().filter(|(_, v)| *v != 0.0).collect()
}

fn export(args: &[&str]) -> String {
    let r = tcpfr(args);
    assert!(r.ok, "tcpfr {args:?} failed: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r.stderr
}

fn create_blocks(file: &Path, dir: &Path) {
    let out = Command::new("promtool").args(["tsdb", "create-blocks-from", "openmetrics"]).arg(file).arg(dir).output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool create-blocks-from openmetrics {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the file must be beyond what promtool checks: each family's lines together,
/// after its HELP and TYPE; each series' timestamps increasing, counters never going
/// down, and the first sample of each counter 0; `# EOF` last. Returns each series' last
/// value.
fn check_structure(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
    let mut families_done = BTreeSet::new();
    let mut family = String::new();
    let mut last: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.split(' ');
            let (kind, name) = (w.next().unwrap(), w.next().unwrap_or(""));
            if kind == "HELP" {
                assert!(families_done.insert(name.to_string()), "family {name} appears twice");
                family = name.to_string();
            } else if kind != "EOF" {
                assert_eq!(name, family, "{line}: metadata outside its family");
            }
            continue;
        }
        let (series, rest) = line.rsplit_once('}').map(|(s, r)| (format!("{s}}}"), r.trim())).unwrap_or_else(|| {
            let (s, r) = line.split_once(' ').unwrap();
            (s.to_string(), r)
        });
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with(&family), "{line}: outside family {family}");
        let mut w = rest.split(' ');
        let value: f64 = w.next().unwrap().parse().unwrap();
        let ts: f64 = w.next().expect("a timestamp on every sample").parse().unwrap();
        match last.get(&series) {
            Some(&(v0, t0)) => {
                assert!(ts > t0, "{series}: timestamp {ts} after {t0}");
                assert!(value >= v0, "{series}: counter went down from {v0} to {value}");
            }
            None => assert_eq!(value, 0.0, "{series}: does not start at 0"),
        }
        last.insert(series, (value, ts));
    }
    last.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

/// The bucket bounds around `x`: (lower, upper].
fn bucket_of(x: f64) -> (f64, f64) {
    let bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY];
    let mut lower = 0.0;
    for b in bounds {
        if x <= b {
            return (lower, b);
        }
        lower = b;
    }
    unreachable!()
}

#[test]
fn prometheus_answers_what_the_recordings_hold() {
    let recs: Vec<PathBuf> = SAMPLES.iter().map(|s| sample(s)).collect();
    let end_ns = duck(
        "SELECT max(t) FROM (SELECT max(epoch_ns(time)) AS t FROM {retransmits} UNION ALL SELECT max(epoch_ns(time)) FROM {resets} \
         UNION ALL SELECT max(epoch_ns(time)) FROM {flows} UNION ALL SELECT max(epoch_ns(time)) FROM {state_changes} \
         UNION ALL SELECT max(epoch_ns(time)) FROM {rtt_samples} UNION ALL SELECT max(epoch_ns(time)) FROM {host_counters})",
    )[0][0]
        .as_i64()
        .unwrap();

    // The truths, from DuckDB.
    let retransmitted = keyed(duck("SELECT host, kind, sum(segments) FROM {retransmits} WHERE counted GROUP BY ALL"), &["host", "kind"]);
    let failures = keyed(duck("SELECT host, count(*) FROM {retransmits} WHERE NOT counted GROUP BY ALL"), &["host"]);
    let resets = keyed(duck("SELECT host, direction, count(*) FROM {resets} GROUP BY ALL"), &["host", "direction"]);
    let handshakes = keyed(
        duck("SELECT host, role, handshake, count(*) FROM {flows} WHERE handshake <> 'completed' GROUP BY ALL"),
        &["host", "role", "cause"],
    );
    let states = keyed(duck("SELECT host, new_state, count(*) FROM {state_changes} GROUP BY ALL"), &["host", "state"]);
    let rtt = duck(
        "SELECT host, count(*), sum(srtt_us), quantile_disc(srtt_us, 0.5), quantile_disc(srtt_us, 0.9) FROM {rtt_samples} GROUP BY ALL ORDER BY 1",
    );
    let les = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5"];
    let mut buckets = BTreeMap::new();
    for le in les {
        let us = (le.parse::<f64>().unwrap() * 1e6).round();
        buckets.extend(keyed(duck(&format!("SELECT host, '{le}', count(*) FROM {{rtt_samples}} WHERE srtt_us <= {us} GROUP BY ALL")), &["host", "le"]));
    }
    buckets.extend(keyed(duck("SELECT host, '+Inf', count(*) FROM {rtt_samples} GROUP BY ALL"), &["host", "le"]));
    let host = duck("SELECT host, sum(out_segs), sum(retrans_segs) FROM {host_counters} GROUP BY ALL ORDER BY 1");
    // A moment inside the longest sample, on both steps' grids: the samples there hold
    // exactly the events before it.
    let (lo, hi) = {
        let r = &duck("SELECT min(epoch_ns(time)), max(epoch_ns(time)) FROM {retransmits} WHERE host = 'sample-syn-blackhole'")[0];
        (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())
    };
    let mid_s = ((lo + hi) / 2 / 10_000_000_000) * 10;
    let before_mid = |sql: &str| duck(&sql.replace("{mid}", &format!("{mid_s}000000000")))[0][0].as_f64().unwrap_or(0.0);
    let retrans_mid = before_mid("SELECT sum(segments) FROM {retransmits} WHERE counted AND host = 'sample-syn-blackhole' AND epoch_ns(time) < {mid}");
    let host_mid = before_mid("SELECT sum(retrans_segs) FROM {host_counters} WHERE host = 'sample-syn-blackhole' AND epoch_ns(time) < {mid}");
    let all_blackhole = retransmitted.iter().filter(|(l, _)| l["host"] == "sample-syn-blackhole").map(|(_, v)| v).sum::<f64>();
    assert!(retrans_mid > 0.0 && retrans_mid < all_blackhole, "{retrans_mid} of {all_blackhole} before {mid_s}");
    // The samples must exercise every family, or the comparisons below prove little.
    assert!(retransmitted.len() >= 3 && !failures.is_empty() && resets.len() >= 2 && handshakes.len() >= 2, "samples changed?");
    assert!(rtt.len() >= 2 && host.iter().filter(|r| r[2].as_i64().unwrap() > 0).count() >= 2, "samples changed?");

    for (step, step_s) in [("1s", 1.0), ("10s", 10.0)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tcpfr.om");
        let mut args = vec!["export", "openmetrics"];
        let rec_args: Vec<&str> = recs.iter().map(|p| p.to_str().unwrap()).collect();
        args.extend(&rec_args);
        args.extend(["--step", step, "-o", file.to_str().unwrap()]);
        let stderr = export(&args);
        assert!(stderr.contains("host label"), "{stderr}");
        let text = std::fs::read_to_string(&file).unwrap();
        let last = check_structure(&text);
        assert!(last.keys().all(|s| s.contains("{host=\"sample-")), "several hosts: every series has a host label");
        let blocks = dir.path().join("tsdb");
        create_blocks(&file, &blocks);

        let prom = Prometheus::start(&blocks);
        // Any time from the last sample on (within Prometheus' 5 min look-back) sees the totals.
        let at = end_ns as f64 / 1e9 + step_s;
        let q = |promql: &str| nonzero(prom.query(promql, at));
        assert_eq!(q("sum by (host, kind) (tcpfr_retransmitted_segments_total)"), retransmitted, "step {step}");
        assert_eq!(q("sum by (host) (tcpfr_retransmit_failures_total)"), failures, "step {step}");
        assert_eq!(q("sum by (host, direction) (tcpfr_resets_total)"), resets, "step {step}");
        assert_eq!(q("sum by (host, role, cause) (tcpfr_handshake_failures_total)"), handshakes, "step {step}");
        assert_eq!(q("sum by (host, state) (tcpfr_state_changes_total)"), states, "step {step}");

        assert_eq!(q("sum by (host, le) (tcpfr_rtt_seconds_bucket)"), buckets, "step {step}");
        let count = q("sum by (host) (tcpfr_rtt_seconds_count)");
        let sum = q("sum by (host) (tcpfr_rtt_seconds_sum)");
        let p50 = q("histogram_quantile(0.5, sum by (host, le) (tcpfr_rtt_seconds_bucket))");
        let p90 = q("histogram_quantile(0.9, sum by (host, le) (tcpfr_rtt_seconds_bucket))");
        assert_eq!(count.len(), rtt.len(), "{count:?}");
        for r in &rtt {
            let h = BTreeMap::from([("host".to_string(), r[0].as_str().unwrap().to_string())]);
            assert_eq!(count[&h], r[1].as_f64().unwrap(), "{h:?}");
            let sql_sum = r[2].as_f64().unwrap() / 1e6;
            assert!((sum[&h] - sql_sum).abs() < 1e-9, "{h:?}: sum {} vs {sql_sum}", sum[&h]);
            // Prometheus interpolates within the bucket the quantile's rank falls in: the
            // exact percentile must lie in that same bucket.
            for (q, promq, sqlq) in [(0.5, &p50, r[3].as_f64().unwrap() / 1e6), (0.9, &p90, r[4].as_f64().unwrap() / 1e6)] {
                let (lo, hi) = bucket_of(promq[&h]);
                assert!(lo < sqlq && sqlq <= hi, "{h:?} p{q}: SQL {sqlq} s not in PromQL's bucket ({lo}, {hi}] ({})", promq[&h]);
            }
        }

        let at_mid = |promql: &str| prom.query(promql, mid_s as f64).values().sum::<f64>();
        assert_eq!(at_mid("tcpfr_retransmitted_segments_total{host=\"sample-syn-blackhole\"}"), retrans_mid, "step {step}");
        assert_eq!(at_mid("tcpfr_host_tcp_retrans_segments_total{host=\"sample-syn-blackhole\"}"), host_mid, "step {step}");

        // The host retransmit ratio SREs alert on: rate over a range holding the whole
        // export (both counters have samples at the same steps, so it is exact).
        let ratio = prom.query(
            "sum by (host) (rate(tcpfr_host_tcp_retrans_segments_total[5m])) / sum by (host) (rate(tcpfr_host_tcp_out_segments_total[5m]))",
            at,
        );
        let out_total = q("sum by (host) (tcpfr_host_tcp_out_segments_total)");
        let retrans_total = q("sum by (host) (tcpfr_host_tcp_retrans_segments_total)");
        let mut checked = 0;
        for r in &host {
            let h = BTreeMap::from([("host".to_string(), r[0].as_str().unwrap().to_string())]);
            let (out, retrans) = (r[1].as_f64().unwrap(), r[2].as_f64().unwrap());
            assert_eq!(out_total.get(&h).copied().unwrap_or(0.0), out, "{h:?} OutSegs");
            assert_eq!(retrans_total.get(&h).copied().unwrap_or(0.0), retrans, "{h:?} RetransSegs");
            if out > 0.0 {
                let want = retrans / out;
                assert!((ratio[&h] - want).abs() < 1e-9 * want.max(1.0), "{h:?}: ratio {} vs ΔRetransSegs/ΔOutSegs {want}", ratio[&h]);
                checked += 1;
            }
        }
        assert!(checked >= 2, "{ratio:?}");
    }
}

#[test]
fn one_host_a_window_and_few_peers() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample("syn-blackhole");
    let rec_s = rec.to_str().unwrap();
    let file = dir.path().join("one.om");
    let stderr = export(&["export", "openmetrics", rec_s, "--step", "1s", "--last", "10s", "-o", file.to_str().unwrap()]);
    assert!(!stderr.contains("host label"), "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("host=\""), "one host: no host label");
    let last = check_structure(&text);
    create_blocks(&file, &dir.path().join("tsdb"));
    // Counters count from 0 at the window's start: the totals are the window's.
    let total = |fam: &str| -> i64 { last.iter().filter(|(s, _)| s.starts_with(fam)).map(|(_, v)| v).sum::<f64>() as i64 };
    let sql = |window: &[&str], q: &str| {
        let mut args = vec!["query", rec_s, "--format", "csv"];
        args.extend(window);
        args.push(q);
        scalar(&ok(&args))
    };
    let segs = "SELECT sum(segments) FROM retransmits WHERE counted";
    let (want, all) = (sql(&["--last", "10s"], segs), sql(&[], segs));
    assert!(want > 0 && want < all, "the window should cut the retransmits: {want} of {all}");
    assert_eq!(total("tcpfr_retransmitted_segments_total{"), want);
    let failed = "SELECT count(*) FROM flows WHERE handshake <> 'completed'";
    assert_eq!(total("tcpfr_handshake_failures_total{"), sql(&["--last", "10s"], failed));
    let retrans = "SELECT sum(retrans_segs) FROM host_counters";
    assert_eq!(total("tcpfr_host_tcp_retrans_segments_total"), sql(&["--last", "10s"], retrans));

    let rec = sample("services");
    let all = scalar(&ok(&["query", rec.to_str().unwrap(), "--format", "csv", segs]));
    // One peer of its own, the rest `other`; nothing lost.
    let file = dir.path().join("peers.om");
    export(&["export", "openmetrics", rec.to_str().unwrap(), "--max-peers", "1", "-o", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    let last = check_structure(&text);
    let peers: BTreeSet<&str> = text.lines().filter_map(|l| l.split("peer=\"").nth(1)).map(|r| r.split('"').next().unwrap()).collect();
    let top = duck("SELECT raddr FROM {retransmits} WHERE host = 'sample-services' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1");
    assert_eq!(peers, BTreeSet::from([top[0][0].as_str().unwrap(), "other"]));
    let total: f64 = last.iter().filter(|(s, _)| s.starts_with("tcpfr_retransmitted_segments_total{")).map(|(_, v)| v).sum();
    assert_eq!(total as i64, all);
    create_blocks(&file, &dir.path().join("tsdb2"));
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let r = tcpfr(args);
    assert!(!r.ok, "tcpfr {args:?} should fail");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "tcpfr {args:?}: stderr lacks {n:?}:\n{}", r.stderr);
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let rec = sample("refused");
    let rec = rec.to_str().unwrap();
    let out = dir.path().join("x.om");
    let out_s = out.to_str().unwrap();

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails_with(&["export", "openmetrics", empty.to_str().unwrap(), "-o", out_s], &["no manifest.json"]);
    assert!(!out.exists());

    for (step, needle) in [("0s", "longer than 0"), ("abc", "--step"), ("1500us", "whole milliseconds")] {
        fails_with(&["export", "openmetrics", rec, "--step", step, "-o", out_s], &[needle]);
    }
    fails_with(&["export", "openmetrics", rec, "--from", "2030-01-01T00:00:00Z", "-o", out_s], &["holds no data"]);
    fails_with(&["export", "openmetrics", rec, "-o", dir.path().join("no/such/dir/x.om").to_str().unwrap()], &["does not exist"]);
    assert!(!out.exists());

    std::fs::write(&out, "precious").unwrap();
    fails_with(&["export", "openmetrics", rec, "-o", out_s], &["already exists", "--force"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    export(&["export", "openmetrics", rec, "-o", out_s, "--force"]);
    assert!(std::fs::read_to_string(&out).unwrap().ends_with("# EOF\n"));
    // No temporary files left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".tmp")).count(), 0, "{names:?}");
}

/// The families of format 1.2's causes (retransmits by cause, connect times, local drops,
/// full accept queues) on samples/causes, exported alone (the other samples are of
/// format 1.1, made weeks before: one export over all of them at 1 s would be weeks of
/// steps), against DuckDB over its Parquet files.
#[test]
fn cause_families_answer_what_the_causes_sample_holds() {
    let only = ["causes"];
    let d = |sql: &str| duck_in(&only, sql);
    let causes = keyed(d("SELECT cause, sum(segments) FROM {retransmits} WHERE counted AND kind = 'data' AND cause IS NOT NULL GROUP BY ALL"), &["cause"]);
    let drops = keyed(d("SELECT direction, reason, sum(packets) FROM {drops} GROUP BY ALL"), &["direction", "reason"]);
    let listeners = keyed(d("SELECT listener, sum(drops) FROM (SELECT laddr || ':' || lport AS listener, drops FROM {listeners}) GROUP BY ALL"), &["listener"]);
    let connects = &d("SELECT count(*), sum(handshake_ns // 1000), count(*) FILTER (WHERE handshake_ns // 1000 <= 1000) FROM {flows} \
                       WHERE role = 'client' AND handshake = 'completed' AND handshake_ns IS NOT NULL")[0];
    let end_ns = d("SELECT max(t) FROM (SELECT max(epoch_ns(time)) AS t FROM {flows} UNION ALL SELECT max(epoch_ns(time)) FROM {drops} \
                    UNION ALL SELECT max(epoch_ns(time)) FROM {listeners} UNION ALL SELECT max(epoch_ns(time)) FROM {retransmits})")[0][0]
        .as_i64()
        .unwrap();
    assert!(causes.len() >= 2 && !drops.is_empty() && !listeners.is_empty() && connects[0].as_i64().unwrap() > 5, "sample changed?");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tcpfr.om");
    export(&["export", "openmetrics", sample("causes").to_str().unwrap(), "--step", "1s", "-o", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    check_structure(&text);
    let blocks = dir.path().join("tsdb");
    create_blocks(&file, &blocks);
    let prom = Prometheus::start(&blocks);
    let q = |promql: &str| nonzero(prom.query(promql, end_ns as f64 / 1e9 + 1.0));
    assert_eq!(q("sum by (cause) (tcpfr_retransmitted_data_segments_total)"), causes);
    assert_eq!(q("sum by (direction, reason) (tcpfr_local_drop_packets_total)"), drops);
    assert_eq!(q("sum by (listener) (tcpfr_listener_drops_total)"), listeners);
    let one = |promql: &str| q(promql).into_values().sum::<f64>();
    assert_eq!(one("sum(tcpfr_connect_duration_seconds_count)"), connects[0].as_f64().unwrap());
    assert!((one("sum(tcpfr_connect_duration_seconds_sum)") - connects[1].as_f64().unwrap() / 1e6).abs() < 1e-9);
    assert_eq!(one("sum(tcpfr_connect_duration_seconds_bucket{le=\"0.001\"})"), connects[2].as_f64().unwrap());
}
