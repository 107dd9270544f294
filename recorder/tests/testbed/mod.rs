//! A test bed made of real kernel objects: two network namespaces joined by a veth
//! pair, faults made with iptables, traffic from `tcpfr-traffic` processes, the
//! recorder running for real, and the kernel's own counters to check against.
//!
//! Every bed has unique namespace names (test tag + our pid) and its own address
//! range, is torn down on drop (also when the test panics), and leftovers of killed
//! test runs are removed when the next bed is made.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tcpfr_schema::read::{discover, Recording, Source};

/// Real-kernel tests run one at a time: they load programs, count packets, and share
/// two CPUs.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn run(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if !out.status.success() {
        panic!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// One network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn inode(&self) -> u32 {
        std::fs::metadata(format!("/run/netns/{}", self.name)).unwrap().ino() as u32
    }

    /// Runs a command inside the namespace and waits for it.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        run(&full)
    }

    /// Starts a command inside the namespace; it is killed when the handle drops.
    pub fn spawn(&self, cmd: &[&str]) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Proc { child: Some(child) }
    }

    /// `Tcp:` and `TcpExt:` counters of this namespace, read by the kernel's own /proc.
    pub fn counters(&self) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for f in ["/proc/net/snmp", "/proc/net/netstat"] {
            let text = String::from_utf8(self.exec(&["cat", f]).stdout).unwrap();
            let mut lines = text.lines();
            while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
                let (sec, names) = names.split_once(':').unwrap();
                let (_, values) = values.split_once(':').unwrap();
                for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                    if let Ok(v) = v.parse() {
                        out.insert(format!("{sec}.{n}"), v);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes started with `ip netns exec` keep running otherwise.
        let _ = Command::new("ip").args(["netns", "pids", &self.name]).output().map(|o| {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        });
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Counter deltas between two readings.
pub fn delta(before: &HashMap<String, i64>, after: &HashMap<String, i64>, key: &str) -> i64 {
    after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)
}

/// A child process killed on drop.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for a line on stdout that starts with `prefix` (bounded). Later output is
    /// read and dropped (the child must not die of a closed pipe).
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let stdout = self.child.as_mut().unwrap().stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = prefix.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(&prefix) {
                    let _ = tx.send(line);
                }
            }
        });
        rx.recv_timeout(timeout).unwrap_or_else(|_| panic!("no expected line on stdout within {timeout:?}"))
    }

    /// Waits for exit (bounded) and returns stdout.
    pub fn finish(mut self, timeout: Duration) -> String {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                assert!(status.success(), "exit {status}: {}", String::from_utf8_lossy(&out.stderr));
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("process did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes namespaces left by test processes that no longer exist (killed runs).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("tfr-") else { continue };
        let Some(pid) = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Two namespaces, `client` and `server`, joined by a veth pair.
pub struct Bed {
    pub client: Netns,
    pub server: Netns,
    pub client_ip: String,
    pub server_ip: String,
    pub v6: bool,
}

impl Bed {
    /// `tag`: a short unique name for the test; `index`: picks the address range.
    pub fn new(tag: &str, index: u8, v6: bool) -> Bed {
        remove_stale_namespaces();
        let pid = std::process::id();
        let client = Netns { name: format!("tfr-{tag}-{pid}-c") };
        let server = Netns { name: format!("tfr-{tag}-{pid}-s") };
        run(&["ip", "netns", "add", &client.name]);
        run(&["ip", "netns", "add", &server.name]);
        run(&["ip", "link", "add", "veth0", "netns", &client.name, "type", "veth", "peer", "name", "veth0", "netns", &server.name]);
        // Per-bed ranges: 10.77.<index>.0/24 and fd00:77:<index>::/64.
        let (client_ip, server_ip, plen) = if v6 {
            (format!("fd00:77:{index}::1"), format!("fd00:77:{index}::2"), "64")
        } else {
            (format!("10.77.{index}.1"), format!("10.77.{index}.2"), "24")
        };
        for (ns, ip) in [(&client, &client_ip), (&server, &server_ip)] {
            ns.exec(&["ip", "link", "set", "lo", "up"]);
            ns.exec(&["ip", "addr", "add", &format!("{ip}/{plen}"), "dev", "veth0", "nodad"]);
            ns.exec(&["ip", "link", "set", "veth0", "up"]);
        }
        Bed { client, server, client_ip, server_ip, v6 }
    }

    /// `iptables` or `ip6tables` in a namespace, rule given as words.
    pub fn iptables(&self, ns: &Netns, rule: &str) {
        let tool = if self.v6 { "ip6tables" } else { "iptables" };
        let mut cmd = vec![tool];
        cmd.extend(rule.split_whitespace());
        ns.exec(&cmd);
    }

    /// Turns off segmentation offloads so every packet on the veth is wire-sized.
    pub fn offloads_off(&self) {
        for ns in [&self.client, &self.server] {
            ns.exec(&["ethtool", "-K", "veth0", "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"]);
        }
    }

    /// `ADDR:PORT` of the server, bracketed for IPv6.
    pub fn server_addr(&self, port: u16) -> String {
        if self.v6 {
            format!("[{}]:{port}", self.server_ip)
        } else {
            format!("{}:{port}", self.server_ip)
        }
    }

    pub fn serve(&self, port: u16, extra: &[&str]) -> Proc {
        let listen = if self.v6 { format!("[::]:{port}") } else { format!("0.0.0.0:{port}") };
        let mut args = vec![traffic_bin(), "serve", "--listen", &listen];
        args.extend_from_slice(extra);
        let mut p = self.server.spawn(&args);
        p.wait_for_line("listening", Duration::from_secs(10));
        p
    }

    /// A bulk transfer to `port` that runs until the returned processes drop, with
    /// `loss` of the segments to the server dropped at random (retransmits, RTT samples).
    pub fn lossy_bulk(&self, port: u16, loss: f64) -> (Proc, Proc) {
        self.iptables(
            &self.server,
            &format!("-A INPUT -p tcp --dport {port} -m statistic --mode random --probability {loss} -j DROP"),
        );
        let server = self.serve(port, &[]);
        let client = self.client.spawn(&[traffic_bin(), "send", "--to", &self.server_addr(port), "--bytes", "1000000000000"]);
        (server, client)
    }

    /// Runs the client to completion; returns its per-connection result lines.
    pub fn send(&self, port: u16, bytes: u64, conns: u32, extra: &[&str], timeout: Duration) -> (u32, Vec<String>) {
        let to = self.server_addr(port);
        let (b, c) = (bytes.to_string(), conns.to_string());
        let mut args = vec![traffic_bin(), "send", "--to", &to, "--bytes", &b, "--conns", &c];
        args.extend_from_slice(extra);
        let p = self.client.spawn(&args);
        let pid = p.pid();
        let out = p.finish(timeout);
        (pid, out.lines().map(|l| l.to_string()).collect())
    }
}

pub fn traffic_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpfr-traffic")
}

/// `ip netns exec` runs our command as a child of `ip`: the traffic process's own pid
/// is that of `ip` after exec (ip execs, it does not fork), so `Proc::pid` is right.
pub fn recorder_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpfr-recorder")
}

/// Starts the recorder writing to `out` and waits (bounded) until it records: it logs
/// where it records once its programs are attached. Its log goes to ours.
pub fn spawn_recorder(out: &Path, extra: &[&str]) -> Child {
    let mut cmd = Command::new(recorder_bin());
    cmd.arg("--out").arg(out).args(extra);
    start_recorder(cmd)
}

/// Starts a command that runs the recorder and waits (bounded) until it records.
pub fn start_recorder(mut cmd: Command) -> Child {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpfr-recorder starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[recorder] {line}");
            if !ready && line.contains("recording to") {
                ready = true;
                let _ = tx.send(Ok(()));
            }
            if line.contains("tcpfr-recorder:") {
                let _ = tx.send(Err(line));
            }
        }
        let _ = tx.send(Err("recorder exited".into()));
    });
    let failed = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => return child,
        Ok(Err(e)) => format!("recorder failed to start: {e}"),
        Err(_) => "recorder did not start within 30 s".to_string(),
    };
    let _ = child.kill();
    let _ = child.wait();
    panic!("{failed}");
}

/// A running recorder writing into a temporary directory.
pub struct Recorder {
    child: Option<Child>,
    pub out: tempfile::TempDir,
}

impl Recorder {
    pub fn start(extra: &[&str]) -> Recorder {
        let out = tempfile::tempdir().unwrap();
        let child = spawn_recorder(out.path(), extra);
        Recorder { child: Some(child), out }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGINT, then waits (bounded) for a clean exit and opens the recording.
    pub fn stop(mut self) -> (Recording, tempfile::TempDir) {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("recorder did not stop within 30 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "recorder exited with {status}");
        let sources = discover(&[self.out.path().to_path_buf()]).unwrap();
        assert_eq!(sources.len(), 1, "one recording per run");
        let Source::Recording(rec) = sources.into_iter().next().unwrap() else { panic!("a recording") };
        let problems = rec.verify(tcpfr_schema::read::Verify::Full);
        assert!(problems.is_empty(), "recording verifies: {problems:?}");
        let out = std::mem::replace(&mut self.out, tempfile::tempdir().unwrap());
        (rec, out)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A tcpdump capture inside a namespace.
pub struct Capture {
    child: Option<Child>,
    stderr: std::sync::mpsc::Receiver<String>,
    pub file: PathBuf,
}

impl Capture {
    pub fn start(ns: &Netns, iface: &str, filter: &str, file: &Path) -> Capture {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "tcpdump", "-i", iface, "-s", "128", "-B", "65536", "-U", "--immediate-mode", "-w"])
            .arg(file)
            .args(filter.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(String::new());
                }
                lines.push(line);
            }
            let _ = tx.send(lines.join("\n"));
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("tcpdump listening");
        Capture { child: Some(child), stderr: rx, file: file.to_path_buf() }
    }

    /// Stops tcpdump once it has caught up (its file stops growing: packets still in
    /// the kernel's capture buffer at SIGINT would be neither written nor counted as
    /// dropped); panics if the capture is incomplete.
    pub fn stop(mut self) -> PathBuf {
        let mut child = self.child.take().unwrap();
        let size = || std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = (size(), Instant::now());
        while Instant::now() < deadline && last.1.elapsed() < Duration::from_millis(700) {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        // SAFETY: signalling our own child (ip execs tcpdump, same pid).
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let _ = child.wait();
        let summary = self.stderr.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let number = |what: &str| -> Option<u64> {
            summary.lines().find(|l| l.contains(what)).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok())
        };
        let (captured, received, dropped) = (number("captured"), number("received by filter"), number("dropped by kernel"));
        assert!(
            captured.is_some() && captured == received && dropped == Some(0),
            "tcpdump did not capture everything, the comparison would be wrong: {summary:?} {captured:?} {received:?} {dropped:?}"
        );
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A system user (and its group) made for one test, deleted on drop; users left by
/// killed test runs are deleted when the next one is made.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// `tag`: a few letters unique to the test (names are at most 32 characters).
    pub fn new(tag: &str) -> TestUser {
        remove_stale_users();
        let name = format!("tfru-{tag}-{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        run(&["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", &name]);
        let id = |flag: &str| -> u32 { String::from_utf8(run(&["id", flag, &name]).stdout).unwrap().trim().parse().unwrap() };
        TestUser { uid: id("-u"), gid: id("-g"), name }
    }

    /// `program args…` as this user with exactly `caps` (see [`capsh`]).
    pub fn command_with_caps(&self, caps: &[String], program: &Path, args: &[&str]) -> Command {
        capsh(&self.name, caps, program, args)
    }
}

/// `program args…` as `user`, with exactly `caps` (e.g. `cap_bpf`), permitted, effective
/// and ambient (so they survive the exec), as the README does it.
pub fn capsh(user: &str, caps: &[String], program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("capsh");
    cmd.arg(format!("--user={user}"));
    if !caps.is_empty() {
        cmd.arg(format!("--caps={}+eip", caps.join(","))).arg(format!("--addamb={}", caps.join(",")));
    }
    cmd.args(["--", "-c", "exec \"$0\" \"$@\""]).arg(program).args(args);
    cmd
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

fn remove_stale_users() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in passwd.lines().filter_map(|l| l.split(':').next()) {
        let Some(pid) = name.strip_prefix("tfru-").and_then(|r| r.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("userdel").arg(name).status();
            let _ = Command::new("groupdel").arg(name).output();
        }
    }
}

/// A temporary directory any user can enter (tempdir's are 0700): a copy of a binary
/// there runs as another user wherever the build is (CI's may be under /root).
pub fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// Copies `bin` into `dir` (mode 0755) and returns the copy's path.
pub fn copy_exe(bin: &str, dir: &Path) -> PathBuf {
    let to = dir.join(Path::new(bin).file_name().unwrap());
    std::fs::copy(bin, &to).unwrap();
    std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    to
}

/// A directory owned by `uid:gid`, mode 0750 (what the recorder accepts as --out).
pub fn owned_dir(path: &Path, uid: u32, gid: u32) {
    std::fs::create_dir(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
}

/// Capability sets of every thread of `pid`, by thread name: (effective, permitted,
/// inheritable, ambient) as bit masks, from /proc/<pid>/task/*/status.
pub fn thread_caps(pid: u32) -> Vec<(String, [u64; 4])> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap_or_else(|| panic!("{name} in /proc/{pid}/task/…/status"))
        };
        out.push((comm, [field("CapEff:"), field("CapPrm:"), field("CapInh:"), field("CapAmb:")]));
    }
    out.sort();
    out
}

/// SIGINT, then waits (bounded) for the exit; kills it if it does not stop in time.
pub fn interrupt_and_wait(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not stop within {timeout:?} of SIGINT", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one recording under `out`, checked in full.
pub fn only_recording(out: &Path) -> Recording {
    let sources = discover(&[out.to_path_buf()]).unwrap();
    assert_eq!(sources.len(), 1, "one recording in {}", out.display());
    let Source::Recording(rec) = sources.into_iter().next().unwrap() else { panic!("a recording") };
    let problems = rec.verify(tcpfr_schema::read::Verify::Full);
    assert!(problems.is_empty(), "recording verifies: {problems:?}");
    rec
}

/// Bytes of the regular files below `dir`, each inode once (snapshots are hard links).
pub fn du(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert(m.ino()) {
                n += m.len();
            }
        }
    }
    n
}

/// Bytes of the hidden files (being written, sidecars) under a recording's tables.
pub fn hidden(rec: &Path) -> u64 {
    let mut n = 0;
    for t in tcpfr_schema::TABLES {
        for e in std::fs::read_dir(rec.join(t)).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    n
}

/// The snapshots in `out/snapshots` (directories with a manifest), sorted.
pub fn snapshots(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    v.sort();
    v
}

/// Waits (bounded) until the snapshot's manifest has an end.
pub fn wait_snapshot_complete(dir: &Path, timeout: Duration) -> tcpfr_schema::manifest::Manifest {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(m) = tcpfr_schema::manifest::Manifest::load(&dir.join("manifest.json")) {
            if m.end.is_some() {
                return m;
            }
        }
        assert!(Instant::now() < deadline, "snapshot {} not complete within {timeout:?}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The recordings of an output directory, oldest first.
pub fn recordings_in(found: Vec<Source>) -> Vec<Recording> {
    let mut recs: Vec<Recording> = found
        .into_iter()
        .map(|s| match s {
            Source::Recording(r) => r,
            other => panic!("not a recording: {other:?}"),
        })
        .collect();
    recs.sort_by(|a, b| a.manifest.start.cmp(&b.manifest.start));
    recs
}

