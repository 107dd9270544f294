//! tcpfr on a real Ballista cluster: `tcpfr-scheduler` and two `tcpfr-executor`s as
//! separate processes on loopback, reading recordings shipped into SeaweedFS (started by
//! the test). Every canned question, the report and raw SQL answer through
//! `--cluster` exactly as `tcpfr` answers alone over the same store (also with a
//! services map whose IPv6 rule needs tcpfr's `cidr_contains` on the executors); both executors do
//! work; a local recording path works too (the executors see this machine's files);
//! a scheduler that is not there gets a clear error.
//!
//! Needs `tcpfr` built with the `cluster` feature and the recorder's `gen-recording`
//! example, both in this target directory: scripts/test.sh builds them first
//! (`cargo build --workspace --all-targets --features tcpfr/cluster`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tcpfr_testsupport::fleet::{generate, QUESTIONS};
use tcpfr_testsupport::{free_port, Seaweed};

fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tcpfr-scheduler")).parent().unwrap().to_path_buf()
}


/// A process killed (and reaped) on drop, with its log in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(sw: &Seaweed, exe: &Path, args: &[String], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(exe);
        sw.configure(&mut cmd);
        cmd.args(args).env("RUST_LOG", "info").stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (≤ 180 s: a cold debug build is slow to start on a busy machine) until
    /// the log says `what`.
    fn wait_for(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !self.log().contains(what) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}) before saying {what:?}:\n{}", self.log.display(), self.log());
            }
            assert!(Instant::now() < deadline, "{} did not say {what:?} within 180 s:\n{}", self.log.display(), self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scheduler and executors on loopback, reading `sw`.
struct Cluster {
    url: String,
    scheduler: Proc,
    executors: Vec<Proc>,
}

impl Cluster {
    /// A scheduler and two executors.
    fn start(sw: &Seaweed, dir: &Path) -> Cluster {
        Self::start_with(sw, dir, 2, &[])
    }

    /// A scheduler and `n` executors started with `extra` arguments too.
    fn start_with(sw: &Seaweed, dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        let port = free_port();
        let s = |v: &str| v.to_string();
        let mut scheduler = Proc::spawn(
            sw,
            &bin_dir().join("tcpfr-scheduler"),
            &[s("--bind-host"), s("127.0.0.1"), s("--external-host"), s("127.0.0.1"), s("--bind-port"), port.to_string()],
            dir.join("scheduler.log"),
        );
        scheduler.wait_for("tcpfr-scheduler listening");
        let mut executors = Vec::new();
        for i in 0..n {
            let work = dir.join(format!("executor-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let mut e = Proc::spawn(
                sw,
                &bin_dir().join("tcpfr-executor"),
                &[
                    s("--bind-host"),
                    s("127.0.0.1"),
                    s("--external-host"),
                    s("127.0.0.1"),
                    s("--scheduler-host"),
                    s("127.0.0.1"),
                    s("--scheduler-port"),
                    port.to_string(),
                    s("--bind-port"),
                    free_port().to_string(),
                    s("--bind-grpc-port"),
                    free_port().to_string(),
                    s("--vcores"),
                    s("2"),
                    s("--work-dir"),
                    work.to_string_lossy().into_owned(),
                ]
                .into_iter()
                .chain(extra.iter().map(|a| a.to_string()))
                .collect::<Vec<_>>(),
                dir.join(format!("executor-{i}.log")),
            );
            e.wait_for("Executor registration succeed");
            executors.push(e);
        }
        Cluster { url: format!("df://127.0.0.1:{port}"), scheduler, executors }
    }

    /// The last lines of every log, warnings and errors first: why a job failed.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for p in std::iter::once(&self.scheduler).chain(&self.executors) {
            let log = p.log();
            let lines: Vec<&str> = log.lines().collect();
            let bad: Vec<&str> = lines.iter().copied().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
            out += &format!("--- {} (warnings/errors, then the last lines)\n{}\n...\n{}\n", p.log.display(), bad[bad.len().saturating_sub(15)..].join("\n"), lines[lines.len().saturating_sub(10)..].join("\n"));
        }
        out
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn tcpfr(sw: &Seaweed, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin_dir().join("tcpfr"));
    sw.configure(&mut cmd);
    let out = cmd.args(args).output().expect("tcpfr runs");
    Run { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn ok(sw: &Seaweed, args: &[&str]) -> String {
    let r = tcpfr(sw, args);
    assert!(r.ok && !r.stderr.contains("panicked"), "tcpfr {args:?} failed: {}", r.stderr);
    r.stdout
}

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples").join(name).join("recording").to_string_lossy().into_owned()
}

/// Compares two answers: exactly, but for approximate percentiles (t-digest, whose last
/// digits depend on the order partitions merge in): numbers within 2% in `rtt`, the
/// report's RTT line up to its p99.
fn same(q: &str, got: &str, want: &str) -> Result<(), String> {
    match q {
        "report" => {
            let approx = |s: &str| s.lines().map(|l| if l.contains("RTT tail") { l.split(" at p99").next().unwrap() } else { l }).collect::<Vec<_>>().join("\n");
            (approx(got) == approx(want)).then_some(()).ok_or_else(|| format!("got:\n{got}\nwant:\n{want}"))
        }
        "rtt" => {
            let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            if g.len() != w.len() {
                return Err(format!("{} lines vs {}:\n{got}\nwant:\n{want}", g.len(), w.len()));
            }
            for (gl, wl) in g.iter().zip(&w) {
                let (gc, wc): (Vec<&str>, Vec<&str>) = (gl.split(',').collect(), wl.split(',').collect());
                let close = gc.len() == wc.len()
                    && gc.iter().zip(&wc).all(|(a, b)| match (a.parse::<f64>(), b.parse::<f64>()) {
                        (Ok(x), Ok(y)) => (x - y).abs() <= 0.02 * x.abs().max(y.abs()) + 1.0,
                        _ => a == b,
                    });
                if !close {
                    return Err(format!("{gl}\nvs\n{wl}"));
                }
            }
            Ok(())
        }
        _ => (got == want).then_some(()).ok_or_else(|| format!("got:\n{got}\nwant:\n{want}")),
    }
}

#[test]
fn every_question_answers_on_the_cluster_as_in_one_process() {
    let sw = Seaweed::start("cluster");
    let tmp = tempfile::tempdir().unwrap();
    let generated = generate(&bin_dir().join("examples"), &tmp.path().join("gen"), 12, 120_000);
    let samples: Vec<String> = ["bulk-loss", "refused", "services", "syn-blackhole"].iter().map(|s| sample(s)).collect();
    for (recs, prefix) in [(&generated, "gen"), (&samples, "samples")] {
        let mut args = vec!["ship"];
        args.extend(recs.iter().map(String::as_str));
        let url = sw.url(prefix);
        args.push(&url);
        ok(&sw, &args);
    }
    let cluster = Cluster::start(&sw, tmp.path());

    let mut questions: Vec<Vec<&str>> = QUESTIONS.iter().map(|q| q.to_vec()).collect();
    questions.extend([
        vec!["retransmit-rate", "--last", "20m", "--format", "csv"],
        vec!["query", "SELECT host, count(*) AS n, sum(segments) AS s FROM retransmits WHERE counted GROUP BY host ORDER BY host", "--format", "csv"],
        vec!["query", "SELECT * FROM rtt_samples ORDER BY host, time, socket_id LIMIT 200", "--format", "csv"],
    ]);
    // tcpfr's SQL function runs on the executors: called directly, and through a
    // services map whose rules need it (IPv6 networks) next to plain IPv4 ones.
    let map = tmp.path().join("services.toml");
    std::fs::write(&map, "[[service]]\nname = \"v6-net\"\ncidr = \"fd00::/8\"\n[[service]]\nname = \"db-net\"\ncidr = \"10.2.0.0/24\"\n").unwrap();
    let map = map.to_str().unwrap();
    questions.push(vec!["hotspots", "--services", map, "--format", "csv"]);
    questions.push(vec![
        "query",
        "SELECT host, cidr_contains('10.2.0.0/24', raddr) AS in_net, cidr_contains('fd00::/8', raddr) AS in_v6, count(*) AS n FROM flows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        "--format",
        "csv",
    ]);
    let mut compared = 0;
    for prefix in ["gen", "samples"] {
        let url = sw.url(prefix);
        for q in &questions {
            let mut args = vec![q[0], url.as_str()];
            args.extend(&q[1..]);
            let want = ok(&sw, &args);
            assert!(want.lines().count() > 2, "{args:?} answers something: {want}");
            let mut remote = vec!["--cluster", cluster.url.as_str()];
            remote.extend(&args);
            let r = tcpfr(&sw, &remote);
            assert!(r.ok && !r.stderr.contains("panicked"), "tcpfr {remote:?} failed: {}\n{}", r.stderr, cluster.log_tails());
            let got = r.stdout;
            if let Err(diff) = same(q[0], &got, &want) {
                panic!("{args:?} differs on the cluster: {diff}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * questions.len());

    // The services map named the 10.2.0.0/24 peers on the cluster too.
    let named = ok(&sw, &["--cluster", cluster.url.as_str(), "hotspots", &sw.url("gen"), "--services", map, "--format", "csv"]);
    assert!(named.contains("\ndb-net,"), "{named}");

    // A local recording: the executors, on this machine, read it themselves.
    let local = sample("services");
    let q = ["hotspots", local.as_str(), "--format", "csv"];
    let want = ok(&sw, &q);
    let got = ok(&sw, &[&["--cluster", cluster.url.as_str()][..], &q[..]].concat());
    assert_eq!(got, want, "a local recording on the cluster");

    // Both executors ran tasks (the scheduler spreads a job's partitions).
    for e in &cluster.executors {
        let log = e.log();
        assert!(log.contains("task"), "{} ran no task:\n{log}", e.log.display());
    }
    assert!(cluster.scheduler.log().contains("job"), "the scheduler saw no job:\n{}", cluster.scheduler.log());
}

/// An executor with a small memory pool (`--memory-pool-size 32MiB`, 16 MiB per vcore):
/// a sort of every RTT sample (joined to its socket) either completes by spilling, with
/// the answer of one process, or fails with "Resources exhausted", the pool's size and
/// what to do (DataFusion's sorts can still fail when a pool is shared: both are
/// accepted, an executor killed or a panic is not); either way the executor stays up and
/// answers the next question.
#[test]
fn a_small_memory_pool_spills_or_fails_cleanly_and_the_executor_stays_up() {
    let sw = Seaweed::start("smallmem");
    let tmp = tempfile::tempdir().unwrap();
    let generated = generate(&bin_dir().join("examples"), &tmp.path().join("gen"), 4, 400_000);
    let url = sw.url("gen");
    let mut args: Vec<&str> = vec!["ship"];
    args.extend(generated.iter().map(String::as_str));
    args.push(&url);
    ok(&sw, &args);
    let mut cluster = Cluster::start_with(&sw, tmp.path(), 1, &["--memory-pool-size", "32MiB"]);
    let log = cluster.executors[0].log();
    assert!(log.contains("Executor memory pool: 32.0 MiB (configured via --memory-pool-size)"), "{log}");

    let sql = "SELECT host, time, socket_id, srtt_us, comm, laddr, raddr FROM rtt_samples ORDER BY srtt_us DESC, host, time, socket_id";
    let q = ["query", url.as_str(), sql, "--format", "csv"];
    let want = ok(&sw, &q);
    assert!(want.lines().count() > 10_000, "{} rows", want.lines().count());
    let got = tcpfr(&sw, &[&["--cluster", cluster.url.as_str()][..], &q[..]].concat());
    assert!(!got.stderr.contains("panicked"), "{}", got.stderr);
    if got.ok {
        assert_eq!(got.stdout, want, "answered as one process");
        assert!(cluster.executors[0].log().contains("spill"), "completed without spilling:\n{}", cluster.log_tails());
    } else {
        let clean = ["ResourcesExhausted", "pool_size: 32.0 MB", "--memory-pool-size"];
        assert!(clean.iter().all(|n| got.stderr.contains(n)), "{}\n{}", got.stderr, cluster.log_tails());
    }
    eprintln!("a sort of every RTT sample in a 32 MiB pool: {}", if got.ok { "completed by spilling" } else { "failed cleanly" });

    assert!(cluster.executors[0].child.try_wait().unwrap().is_none(), "the executor died:\n{}", cluster.log_tails());
    let q = ["resets", url.as_str(), "--format", "csv"];
    let want = ok(&sw, &q);
    let got = ok(&sw, &[&["--cluster", cluster.url.as_str()][..], &q[..]].concat());
    assert_eq!(got, want, "the next question on the same executor");
}

#[test]
fn a_scheduler_that_is_not_there_gets_a_clear_error() {
    let sw = Seaweed::start("nocluster");
    let dead = format!("df://127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let r = tcpfr(&sw, &["--cluster", &dead, "hotspots", &sample("refused")]);
    assert!(!r.ok, "{}", r.stdout);
    assert!(r.stderr.contains("cannot reach the Ballista scheduler") && r.stderr.contains(&dead), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(t0.elapsed() < Duration::from_secs(120), "took {:?}", t0.elapsed());
    // Not a URL; captures stay local.
    let r = tcpfr(&sw, &["--cluster", "localhost", "hotspots", &sample("refused")]);
    assert!(!r.ok && r.stderr.contains("df://HOST:PORT"), "{}", r.stderr);
    let pcap = Path::new(&sample("refused")).parent().unwrap().join("capture.pcap");
    let r = tcpfr(&sw, &["--cluster", &dead, "query", &sample("refused"), "--pcap", pcap.to_str().unwrap(), "SELECT 1"]);
    assert!(!r.ok && r.stderr.contains("leave out --cluster"), "{}", r.stderr);
}
