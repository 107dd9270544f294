//! `--metrics-listen` end to end: a real Prometheus scrapes the recorder while a lossy
//! bulk transfer and refused connections run in the test's namespaces; PromQL through
//! Prometheus's HTTP API must return the kernel's own RetransSegs figure, promtool must
//! accept the endpoint's output, peers must stay bounded, and the reset and handshake
//! counters must equal the rows of the recording made at the same time.

mod testbed;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tcpfr_schema::flows::Flow;
use tcpfr_schema::resets::Reset;
use testbed::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A bounded HTTP/1.0 GET on 127.0.0.1 (HTTP/1.0: no chunked answers): status line
/// and body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

/// Samples of an exposition: (name, sorted labels) → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn parse(body: &str) -> Samples {
    let mut out = Samples::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").unwrap();
            // Values are escaped with backslashes; find the closing quote.
            let mut v = String::new();
            let mut chars = r.char_indices();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.push(chars.next().unwrap().1),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            map.insert(k.to_string(), v);
            rest = r[end..].trim_start_matches(',');
        }
        out.insert((name.to_string(), map), value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")));
    }
    out
}

/// Sum of a family's samples whose labels include all of `want`.
fn sum(s: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|((n, l), _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

/// A Prometheus server scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: u16, rules: &PathBuf) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: tcpfr\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("/usr/bin/prometheus starts");
        let p = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/-/ready").0.contains(" 200") {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 30 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query's single value (None: empty result).
    fn query(&self, promql: &str) -> Option<f64> {
        let enc: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (head, body) = get(self.port, &format!("/api/v1/query?query={enc}"));
        assert!(head.contains(" 200"), "{promql}: {head}\n{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        let result = v["data"]["result"].as_array().unwrap();
        assert!(result.len() <= 1, "{promql}: one series expected: {body}");
        result.first().map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
    }

    /// An instant query's raw result (every series with its labels), for messages.
    fn raw(&self, promql: &str) -> String {
        let enc: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        get(self.port, &format!("/api/v1/query?query={enc}")).1
    }

    /// Polls `promql` until it returns `want` (bounded); returns the last value.
    fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.query(promql);
            if v == Some(want) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The endpoint, read until the counters stop moving (the recorder flushes every
/// second): two equal readings 1.5 s apart, within 20 s.
fn settled(port: u16) -> (String, Samples) {
    let moving = |s: &Samples| -> Samples {
        s.iter().filter(|((n, _), _)| !n.starts_with("tcpfr_recorder_") && !n.starts_with("tcpfr_host_")).map(|(k, v)| (k.clone(), *v)).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = moving(&parse(&get(port, "/metrics").1));
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let (_, body) = get(port, "/metrics");
        let now = parse(&body);
        if moving(&now) == last || Instant::now() > deadline {
            return (body, now);
        }
        last = moving(&now);
    }
}

#[test]
fn prometheus_sees_what_the_kernel_counted() {
    let _serial = serial();
    let bed = Bed::new("prom", 16, false);
    let extra = ["10.77.16.3", "10.77.16.4", "10.77.16.5"];
    for ip in extra {
        bed.server.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "veth0", "nodad"]);
    }
    let mport = free_port();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Only the bed's traffic (other tests and the scrapes themselves stay out), two
    // peers of their own, segments rotated often enough to count files.
    // The bulk transfer's port is a service of its own (the services map); the rest
    // are named after their process.
    let services = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(services.path(), "[[service]]\nname = \"bulk\"\nrport = 5016\n").unwrap();
    let services_path = services.path().to_str().unwrap();
    let rec = Recorder::start(&[
        "--metrics-listen",
        &mport.to_string(),
        "--services",
        services_path,
        "--max-peers",
        "2",
        "--cidr",
        "10.77.16.0/24",
        "--rotate-interval",
        "2s",
    ]);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../prometheus/tcpfr-alerts.yml");
    let prom = Prometheus::start(mport, &rules);

    // 1. A bulk transfer losing 2% of its data segments at the server.
    let (port, rejected, closed) = (5016, 5017, 5018);
    bed.iptables(
        &bed.server,
        &format!("-A INPUT -p tcp --dport {port} -m length --length 300:65535 -m statistic --mode random --probability 0.02 -j DROP"),
    );
    let server = bed.serve(port, &[]);
    let before = bed.client.counters();
    let (_, out) = bed.send(port, 20_000_000, 2, &[], Duration::from_secs(120));
    let after_bulk = bed.client.counters();
    assert_eq!(out, vec!["ok 20000000"; 2]);
    drop(server);
    let retrans = delta(&before, &after_bulk, "Tcp.RetransSegs");
    assert!(retrans > 20, "the link must actually lose data: RetransSegs +{retrans}");

    // 2. Refused connections: a firewall's resets (the server's TCP never sees them),
    // a closed port's, and closed ports on three more addresses (peers beyond
    // --max-peers).
    bed.iptables(&bed.server, &format!("-A INPUT -p tcp --dport {rejected} -j REJECT --reject-with tcp-reset"));
    let sb = bed.server.counters();
    let (_, out1) = bed.send(rejected, 0, 3, &[], Duration::from_secs(20));
    let (_, out2) = bed.send(closed, 0, 2, &[], Duration::from_secs(20));
    let mut refused = out1.len() + out2.len();
    assert!(out1.iter().chain(&out2).all(|l| l == "connect-error ConnectionRefused"), "{out1:?} {out2:?}");
    for ip in extra {
        let to = format!("{ip}:{closed}");
        let out = bed.client.spawn(&[traffic_bin(), "send", "--to", &to, "--bytes", "0", "--conns", "1"]).finish(Duration::from_secs(20));
        assert_eq!(out.trim(), "connect-error ConnectionRefused");
        refused += 1;
    }
    let (after, sa) = (bed.client.counters(), bed.server.counters());
    assert_eq!(delta(&after_bulk, &after, "Tcp.RetransSegs"), 0, "nothing retransmitted after the bulk transfer");

    // The endpoint: strict about paths, well-formed for promtool, HELP and TYPE.
    let (head, _) = get(mport, "/");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = get(mport, "/metricsx");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (body, s) = settled(mport);
    let (head, _) = get(mport, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"), "{head}");
    let mut check = Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    check.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let res = check.wait_with_output().unwrap();
    assert!(
        res.status.success() && res.stdout.is_empty() && res.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    for (family, kind) in [
        ("tcpfr_retransmitted_segments_total", "counter"),
        ("tcpfr_retransmit_failures_total", "counter"),
        ("tcpfr_handshake_failures_total", "counter"),
        ("tcpfr_resets_total", "counter"),
        ("tcpfr_state_changes_total", "counter"),
        ("tcpfr_rtt_seconds", "histogram"),
        ("tcpfr_host_tcp_out_segments_total", "counter"),
        ("tcpfr_host_tcp_retrans_segments_total", "counter"),
        ("tcpfr_recorder_events_total", "counter"),
        ("tcpfr_recorder_events_lost_total", "counter"),
        ("tcpfr_recorder_ringbuf_fill_ratio", "gauge"),
        ("tcpfr_recorder_rows_written_total", "counter"),
        ("tcpfr_recorder_rows_dropped_total", "counter"),
        ("tcpfr_recorder_files_written_total", "counter"),
        ("tcpfr_recorder_disk_bytes", "gauge"),
        ("tcpfr_recorder_last_write_timestamp_seconds", "gauge"),
        ("tcpfr_recorder_segments_evicted_total", "counter"),
    ] {
        assert!(body.contains(&format!("\n# HELP {family} ")) || body.starts_with(&format!("# HELP {family} ")), "HELP of {family}");
        assert!(body.contains(&format!("\n# TYPE {family} {kind}\n")), "TYPE of {family}");
    }

    // RTT buckets carry exactly the `le` texts `tcpfr export openmetrics` writes
    // (OpenMetrics' canonical `1.0`), so scraped and backfilled series are the same series.
    let les: BTreeSet<&str> = s.keys().filter(|(n, _)| n == "tcpfr_rtt_seconds_bucket").filter_map(|(_, l)| l.get("le").map(String::as_str)).collect();
    let want: BTreeSet<&str> =
        ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf"].into();
    assert_eq!(les, want, "RTT bucket bounds");

    // Peers: the bed's two addresses and `other`, nothing else.
    let peers: BTreeSet<&str> = s.keys().filter_map(|(_, l)| l.get("peer").map(String::as_str)).collect();
    let expected: BTreeSet<&str> = [bed.client_ip.as_str(), bed.server_ip.as_str(), "other"].into();
    assert_eq!(peers, expected, "{body}");
    for ip in extra {
        assert!(!body.contains(ip), "{ip} beyond --max-peers has no series of its own");
    }
    // SRTT samples of the bulk transfer, labelled by the client's socket.
    assert!(sum(&s, "tcpfr_rtt_seconds_count", &[("peer", &bed.server_ip)]) > 0.0, "{body}");
    assert!(sum(&s, "tcpfr_state_changes_total", &[("state", "ESTABLISHED")]) >= 2.0, "{body}");

    // Recorder health.
    for (name, labels) in [
        ("tcpfr_recorder_events_total", vec![("kind", "retransmits")]),
        ("tcpfr_recorder_events_total", vec![("kind", "resets")]),
        ("tcpfr_recorder_rows_written_total", vec![("table", "retransmits")]),
        ("tcpfr_recorder_rows_written_total", vec![("table", "host_counters")]),
        ("tcpfr_recorder_files_written_total", vec![]),
        ("tcpfr_recorder_disk_bytes", vec![]),
    ] {
        assert!(sum(&s, name, &labels) > 0.0, "{name}{labels:?} is 0:\n{body}");
    }
    assert!(sum(&s, "tcpfr_recorder_last_write_timestamp_seconds", &[]) >= started, "{body}");
    assert_eq!(sum(&s, "tcpfr_recorder_events_lost_total", &[]), 0.0, "{body}");

    // Through Prometheus: the server's series is the client's retransmits, and its
    // last value is the kernel's RetransSegs delta exactly. (The counter starts at 0
    // with the recorder, so its latest value is the total; increase() over a window
    // would extrapolate, and miss what came before the series' first scrape.)
    assert_eq!(prom.wait_for("up{job=\"tcpfr\"}", 1.0), Some(1.0), "{}", prom.log());
    let promql = format!("sum(tcpfr_retransmitted_segments_total{{job=\"tcpfr\",peer=\"{}\"}})", bed.server_ip);
    let direct = sum(&s, "tcpfr_retransmitted_segments_total", &[("peer", &bed.server_ip)]);
    let seen = prom.wait_for(&promql, retrans as f64);
    eprintln!("RetransSegs +{retrans}; endpoint {direct}; Prometheus {seen:?}");
    assert_eq!(
        seen,
        Some(retrans as f64),
        "{promql}: endpoint says {direct}; Prometheus has {}; the endpoint now:\n{}",
        prom.raw(&format!("tcpfr_retransmitted_segments_total{{peer=\"{}\"}}", bed.server_ip)),
        get(mport, "/metrics").1
    );
    let bulk = format!("sum(tcpfr_retransmitted_segments_total{{service=\"bulk\",kind=\"data\",peer=\"{}\"}})", bed.server_ip);
    assert_eq!(prom.query(&bulk), Some(retrans as f64), "{bulk}");
    let other = prom.query("sum(tcpfr_handshake_failures_total{job=\"tcpfr\",peer=\"other\",cause=\"refused\"})");
    assert_eq!(other, Some(extra.len() as f64));
    // The alert rules load and evaluate against the live series.
    let (_, rules_json) = get(prom.port, "/api/v1/rules");
    let v: serde_json::Value = serde_json::from_str(&rules_json).unwrap();
    let groups = v["data"]["groups"].as_array().unwrap();
    // tcpfr-tcp, tcpfr-retransmit-slo (recording rules too), tcpfr-recorder.
    assert_eq!(groups.len(), 3, "{rules_json}");
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
        }
    }
    drop(prom);

    // The recording made at the same time has the same resets and failed handshakes.
    let (recording, _d) = rec.stop();
    let resets = recording.read_table::<Reset>().unwrap();
    for dir in ["sent", "received"] {
        let rows = resets.iter().filter(|r| &*r.direction == dir).count();
        assert_eq!(sum(&s, "tcpfr_resets_total", &[("direction", dir)]), rows as f64, "{dir}: {resets:#?}\n{body}");
    }
    // And the kernel's: one received per refused connect (the firewall's and the
    // closed ports'), and the server's TCP sent at least those of its closed port.
    let received = sum(&s, "tcpfr_resets_total", &[("direction", "received")]);
    assert_eq!(received, refused as f64, "{body}");
    assert!(sum(&s, "tcpfr_resets_total", &[("direction", "sent")]) >= delta(&sb, &sa, "Tcp.OutRsts") as f64);
    let failed = recording.read_table::<Flow>().unwrap().into_iter().filter(|f| f.handshake.as_deref().is_some_and(|h| h != "completed")).count();
    assert_eq!(failed, refused);
    assert_eq!(sum(&s, "tcpfr_handshake_failures_total", &[("role", "client"), ("cause", "refused")]), refused as f64, "{body}");
    assert_eq!(sum(&s, "tcpfr_handshake_failures_total", &[]), failed as f64);
}

#[test]
fn process_names_cannot_grow_the_service_label() {
    let _serial = serial();
    let bed = Bed::new("svcs", 33, false);
    let port = 5634;
    let _server = bed.serve(port, &[]);
    let mport = free_port();
    let rec = Recorder::start(&["--metrics-listen", &mport.to_string(), "--max-services", "2", "--cidr", "10.77.33.0/24"]);
    // Any local user can name a process: clients under four names of their own.
    let names = tempfile::tempdir().unwrap();
    for name in ["svc-alpha", "svc-bravo", "svc-charlie", "svc-delta"] {
        let exe = names.path().join(name);
        std::fs::copy(traffic_bin(), &exe).unwrap();
        let p = bed.client.spawn(&[exe.to_str().unwrap(), "send", "--to", &bed.server_addr(port), "--bytes", "1000"]);
        assert!(p.finish(Duration::from_secs(20)).contains("ok 1000"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (_, body) = get(mport, "/metrics");
    let services: BTreeSet<String> = parse(&body)
        .into_keys()
        .filter(|(name, _)| name == "tcpfr_state_changes_total")
        .filter_map(|(_, labels)| labels.get("service").cloned())
        .collect();
    drop(rec);
    // The server's process and the clients: five names; two keep series of their own.
    assert!(services.contains("other"), "{services:?}");
    assert_eq!(services.len(), 3, "{services:?}");
}
