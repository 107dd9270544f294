//! `host_counters`: the kernel's TCP counters (`/proc/net/snmp`, `/proc/net/netstat`)
//! per network namespace, as deltas per interval.
//!
//! Counters are per namespace, and /proc shows those of the reading thread's namespace,
//! so a dedicated thread enters each namespace (`setns`) to read them and returns to its
//! own. Which namespaces: `host` (ours), `auto` (ours, every `ip netns` name, and every
//! namespace seen in events), or `all` (every namespace any process is in).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::{Str, UtcNanos};

use crate::procinfo::ns_inode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum NetnsMode {
    Host,
    Auto,
    All,
}

/// The counters we keep, as (file section, kernel name, column).
const COUNTERS: &[(&str, &str)] = &[
    ("Tcp", "ActiveOpens"),
    ("Tcp", "PassiveOpens"),
    ("Tcp", "AttemptFails"),
    ("Tcp", "EstabResets"),
    ("Tcp", "CurrEstab"),
    ("Tcp", "InSegs"),
    ("Tcp", "OutSegs"),
    ("Tcp", "RetransSegs"),
    ("Tcp", "InErrs"),
    ("Tcp", "OutRsts"),
    ("TcpExt", "TCPSynRetrans"),
    ("TcpExt", "TCPTimeouts"),
    ("TcpExt", "TCPLossProbes"),
    ("TcpExt", "TCPLostRetransmit"),
    ("TcpExt", "TCPFastRetrans"),
    ("TcpExt", "TCPSlowStartRetrans"),
    ("TcpExt", "TCPRetransFail"),
    ("TcpExt", "TCPSpuriousRTOs"),
    ("TcpExt", "TCPAbortOnTimeout"),
    ("TcpExt", "TCPAbortOnData"),
    ("TcpExt", "TCPAbortOnClose"),
    ("TcpExt", "TCPAbortOnMemory"),
    ("TcpExt", "TCPAbortOnLinger"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
];

/// Values of [`COUNTERS`], in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot(pub Vec<i64>);

/// Parses the two-line-per-section format of /proc/net/snmp and /proc/net/netstat
/// ("Tcp: Name1 Name2…" then "Tcp: 1 2…") into `(section, name) → value`.
pub fn parse_proc_counters(text: &str, into: &mut HashMap<(String, String), i64>) {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((sec, names)), Some((sec2, values))) = (names.split_once(':'), values.split_once(':')) else {
            continue;
        };
        if sec != sec2 {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                into.insert((sec.to_string(), n.to_string()), v);
            }
        }
    }
}

/// Reads the counters of the calling thread's network namespace.
pub fn read_current() -> Result<Snapshot> {
    let mut all = HashMap::new();
    for f in ["snmp", "netstat"] {
        let path = format!("/proc/thread-self/net/{f}");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_proc_counters(&text, &mut all);
    }
    Ok(Snapshot(
        COUNTERS
            .iter()
            .map(|(s, n)| all.get(&(s.to_string(), n.to_string())).copied().unwrap_or(0))
            .collect(),
    ))
}

/// The calling thread's namespace's TCP segments received, sent and retransmitted
/// (`Tcp: InSegs OutSegs RetransSegs`). No TCP socket in the namespace acknowledged or
/// received a byte, retransmitted or changed state without one of these moving.
pub fn segment_counts() -> Option<[i64; 3]> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
    let mut all = HashMap::new();
    parse_proc_counters(&text, &mut all);
    let get = |n: &str| all.get(&("Tcp".to_string(), n.to_string())).copied();
    Some([get("InSegs")?, get("OutSegs")?, get("RetransSegs")?])
}

struct Target {
    name: Option<String>,
    /// A path that enters the namespace (/run/netns/NAME or /proc/PID/ns/net).
    path: PathBuf,
}

pub struct CounterReader {
    mode: NetnsMode,
    ticks: u64,
    own_ns: File,
    own_inode: u32,
    targets: HashMap<u32, Target>,
    wanted: HashSet<u32>,
    prev: HashMap<u32, (Snapshot, i64)>,
}

impl CounterReader {
    /// Must be created on the thread that will call [`CounterReader::sample`].
    pub fn new(mode: NetnsMode) -> Result<Self> {
        let own_ns = File::open("/proc/thread-self/ns/net").context("opening our network namespace")?;
        let own_inode = ns_inode(std::path::Path::new("/proc/thread-self/ns/net")).context("reading our netns inode")?;
        let mut r = CounterReader {
            mode,
            ticks: 0,
            own_ns,
            own_inode,
            targets: HashMap::new(),
            wanted: HashSet::new(),
            prev: HashMap::new(),
        };
        r.discover(&[]);
        Ok(r)
    }

    /// Refreshes the set of namespaces; `seen` are namespaces events came from.
    pub fn discover(&mut self, seen: &[u32]) {
        self.wanted.insert(self.own_inode);
        if self.mode == NetnsMode::Host {
            return;
        }
        self.targets.retain(|_, t| t.path.exists());
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let path = e.path();
                if let Ok(meta) = std::fs::metadata(&path) {
                    let ino = std::os::unix::fs::MetadataExt::ino(&meta) as u32;
                    self.wanted.insert(ino);
                    self.targets.insert(
                        ino,
                        Target { name: Some(e.file_name().to_string_lossy().into_owned()), path },
                    );
                }
            }
        }
        self.wanted.extend(seen.iter().copied());
        let missing = self.wanted.iter().any(|ns| *ns != self.own_inode && !self.targets.contains_key(ns));
        if self.mode == NetnsMode::All || missing {
            // Find a process in each namespace to enter it through.
            if let Ok(rd) = std::fs::read_dir("/proc") {
                for e in rd.flatten() {
                    if !e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    let link = e.path().join("ns/net");
                    let Some(ino) = ns_inode(&link) else { continue };
                    if self.mode == NetnsMode::All {
                        self.wanted.insert(ino);
                    }
                    if self.wanted.contains(&ino) && ino != self.own_inode {
                        self.targets.entry(ino).or_insert(Target { name: None, path: link });
                    }
                }
            }
        }
    }

    /// Looks for new namespaces every tenth call (named ones appear without events).
    pub fn tick_discover(&mut self) {
        self.ticks += 1;
        if self.ticks % 10 == 0 {
            self.discover(&[]);
        }
    }

    /// One row per namespace with the deltas since the previous call (none the first
    /// time a namespace is read: that is its baseline).
    pub fn sample(&mut self, now_utc: i64, host: &Str) -> Vec<HostCounters> {
        let mut rows = Vec::new();
        let mut namespaces: Vec<u32> = self.wanted.iter().copied().collect();
        namespaces.sort();
        for ns in namespaces {
            let snap = if ns == self.own_inode {
                read_current().ok()
            } else {
                self.read_in(ns)
            };
            let Some(snap) = snap else {
                // Namespace gone (or unreachable): stop following it.
                self.wanted.remove(&ns);
                self.targets.remove(&ns);
                self.prev.remove(&ns);
                continue;
            };
            let name = if ns == self.own_inode {
                Some("host".to_string())
            } else {
                self.targets.get(&ns).and_then(|t| t.name.clone())
            };
            if let Some((prev, prev_t)) = self.prev.get(&ns) {
                rows.push(row(host, now_utc, now_utc - prev_t, ns, name, prev, &snap));
            }
            self.prev.insert(ns, (snap, now_utc));
        }
        rows
    }

    fn read_in(&self, ns: u32) -> Option<Snapshot> {
        self.within(ns, || read_current().ok()).flatten()
    }

    /// Runs `f` inside each namespace followed (ours first), for what the kernel
    /// scopes to the caller's namespace (the socket walk's iterators see only the
    /// sockets of the namespace they were created in).
    pub fn in_each_namespace(&self, mut f: impl FnMut(u32)) {
        let mut namespaces: Vec<u32> = self.wanted.iter().copied().collect();
        namespaces.sort_by_key(|ns| (*ns != self.own_inode, *ns));
        for ns in namespaces {
            self.within(ns, || f(ns));
        }
    }

    /// Runs `f` inside namespace `ns` and returns to ours; `None` if it cannot be entered.
    fn within<T>(&self, ns: u32, f: impl FnOnce() -> T) -> Option<T> {
        if ns == self.own_inode {
            return Some(f());
        }
        let target = self.targets.get(&ns)?;
        let file = File::open(&target.path).ok()?;
        // The file may now be another namespace (pid reused): check before trusting it.
        if ns_inode_of_fd(&file) != Some(ns) {
            return None;
        }
        // SAFETY: setns on the calling thread only; we switch back right after.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let out = f();
        // SAFETY: as above. Failing to return would leave this thread in the wrong
        // namespace; it only reads counters and runs walks, and the next one re-enters.
        unsafe { libc::setns(self.own_ns.as_raw_fd(), libc::CLONE_NEWNET) };
        Some(out)
    }
}

fn ns_inode_of_fd(f: &File) -> Option<u32> {
    f.metadata().ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m) as u32)
}

fn row(host: &Str, now: i64, interval: i64, ns: u32, name: Option<String>, a: &Snapshot, b: &Snapshot) -> HostCounters {
    let d = |i: usize| b.0[i] - a.0[i];
    HostCounters {
        host: host.clone(),
        time: UtcNanos(now),
        interval_ns: interval,
        netns: ns,
        netns_name: name.map(Str::from),
        active_opens: d(0),
        passive_opens: d(1),
        attempt_fails: d(2),
        estab_resets: d(3),
        curr_estab: b.0[4],
        in_segs: d(5),
        out_segs: d(6),
        retrans_segs: d(7),
        in_errs: d(8),
        out_rsts: d(9),
        syn_retrans: d(10),
        timeouts: d(11),
        loss_probes: d(12),
        lost_retransmit: d(13),
        fast_retrans: d(14),
        slow_start_retrans: d(15),
        retrans_fail: d(16),
        spurious_rtos: d(17),
        abort_on_timeout: d(18),
        aborts_other: d(19) + d(20) + d(21) + d(22),
        listen_overflows: d(23),
        listen_drops: d(24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_snmp_sections() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm ActiveOpens RetransSegs\nTcp: 1 42 7\n";
        let mut m = HashMap::new();
        parse_proc_counters(text, &mut m);
        assert_eq!(m[&("Tcp".into(), "ActiveOpens".into())], 42);
        assert_eq!(m[&("Tcp".into(), "RetransSegs".into())], 7);
        assert_eq!(m[&("Ip".into(), "DefaultTTL".into())], 64);
    }

    #[test]
    fn reads_own_namespace_and_sees_a_connection() {
        let before = read_current().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let after = read_current().unwrap();
        assert_eq!(COUNTERS[0].1, "ActiveOpens");
        assert!(after.0[0] > before.0[0], "ActiveOpens grew: {:?} -> {:?}", before.0[0], after.0[0]);
    }
}
