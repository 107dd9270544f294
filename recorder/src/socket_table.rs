//! The socket table: turns kernel socket addresses into `socket_id`s, remembers who owns
//! each socket, and follows each connection from birth to CLOSE to produce its `flows`
//! row.
//!
//! Ownership. Retransmit timers and incoming ACKs run in softirq context, where the
//! "current task" is whoever was interrupted — which is what bcc's tcpretrans prints.
//! We learn the owner only where the kernel runs in the owner's context:
//! CLOSE→SYN_SENT runs inside `connect()`, CLOSE→LISTEN inside `listen()`; accepted
//! connections belong to the process that owns their listener (for pre-fork servers,
//! the process that called `listen()`). Sockets older than the recorder are looked up
//! once in /proc (as `ss -p` does). Anything else stays unknown (null).
//!
//! Socket ids. A kernel address is reused after a socket is freed, so an id is handed
//! out at each birth (CLOSE→SYN_SENT, CLOSE→LISTEN, LISTEN→SYN_RECV) or first sight.
//! Ids start at the recording's start time in ns and count up, so they are unique per
//! host across recordings that run one after another.

use ahash::AHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcpfr_schema::flows::{RawFlowCounters, RawFlowLimits};
use tcpfr_schema::raw::{tcp_state, RawTask, RawTuple};

use crate::net::{AddrCache, Endpoints};
use crate::procinfo::{scan_socket_owners, Cgroups, ConnKey, Owner, SocketOwners};

/// Everything known about one socket.
#[derive(Debug, Clone)]
pub struct Socket {
    pub id: i64,
    pub netns: Option<u32>,
    pub ends: Endpoints,
    pub owner: Option<Arc<Owner>>,
    /// `client` / `server`; None for listeners and sockets older than the recording.
    pub role: Option<&'static str>,
    /// UTC ns of the SYN (client) or of the child's creation (server).
    pub open_ns: Option<i64>,
    /// Current TCP state (0 = not yet seen).
    pub state: u8,
    pub listener: bool,
    /// Existed before the recorder started (first seen in mid-life).
    pub pre_existing: bool,
    pub syn_retransmits: i32,
    /// A SYN retransmit failed with EPERM: this host's firewall dropped it.
    pub syn_filtered: bool,
    pub retrans_segs_seen: i64,
    pub reset_received: bool,
    /// When it reached ESTABLISHED while we watched (the handshake completed), UTC ns.
    pub established_ns: Option<i64>,
    /// How we came to know it (`tcpfr_schema::sockets::origin`).
    pub origin: &'static str,
    /// Its `sockets` row has been written.
    pub announced: bool,
    /// `tcp_sock.total_retrans` as of the last retransmit event (None: not known, e.g.
    /// a socket older than the recording), to tell counted attempts from others.
    pub total_retrans: Option<u32>,
    /// A listener's drop count (`sk_drops`) at the last walk that saw it.
    pub listen_drops: Option<u32>,
    /// Boxed: a socket gets them only at its close, and the table holds every open
    /// socket of the host.
    pub counters: Option<Box<RawFlowCounters>>,
    /// What limited it, read as it reached CLOSE (boxed for the same reason).
    pub limits: Option<Box<RawFlowLimits>>,
    /// Time (UTC ns) of the last event, for evicting sockets whose close we missed.
    pub last_seen: i64,
}

/// How a socket came into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Birth {
    /// connect(): CLOSE → SYN_SENT, the task is the owner.
    Connect,
    /// listen(): CLOSE → LISTEN, the task is the owner.
    Listen,
    /// A connection accepted by a listener: LISTEN → SYN_RECV (softirq).
    Accept,
}

impl Socket {
    /// A socket first seen at `now_ns`, with nothing known about it yet.
    fn new(id: i64, netns: Option<u32>, ends: Endpoints, owner: Option<Arc<Owner>>, origin: &'static str, now_ns: i64) -> Socket {
        Socket {
            id,
            netns,
            ends,
            owner,
            role: None,
            open_ns: None,
            state: 0,
            listener: false,
            pre_existing: false,
            syn_retransmits: 0,
            syn_filtered: false,
            retrans_segs_seen: 0,
            reset_received: false,
            established_ns: None,
            origin,
            announced: false,
            total_retrans: None,
            listen_drops: None,
            counters: None,
            limits: None,
            last_seen: now_ns,
        }
    }
}

pub struct SocketTable {
    by_sk: HashMap<u64, Socket>,
    /// Sockets that just reached CLOSE: events that trail the close (a reset sent by
    /// close(), the last RTT sample) still belong to them, not to a new socket.
    closed: HashMap<u64, Socket>,
    closed_order: std::collections::VecDeque<(i64, u64)>,
    /// Owner of the listener on (netns, port), for accepted connections.
    listeners: HashMap<(u32, u16), Arc<Owner>>,
    /// SYN-ACK retransmits of connections not yet accepted, by connection.
    pending_synack: HashMap<ConnKey, i32>,
    next_id: i64,
    cgroups: Cgroups,
    /// Owners of sockets older than the recorder, from /proc (where the owner walk
    /// cannot run, and for sockets it missed).
    proc_owners: SocketOwners,
    /// Owners of sockets older than the recorder from the owner walk, by the socket's
    /// kernel address; an entry is taken when the socket is first seen.
    walked_owners: HashMap<u64, Arc<Owner>>,
    /// Processes met by the owner walk: one /proc read of each.
    walked_pids: HashMap<i32, Arc<Owner>>,
    last_proc_scan: Option<Instant>,
    pub max_sockets: usize,
    /// Sockets dropped from the table because it was full (their flows rows are lost).
    pub evicted: u64,
}

impl SocketTable {
    pub fn new(first_id: i64, cgroups: Cgroups) -> Self {
        SocketTable {
            by_sk: HashMap::new(),
            closed: HashMap::new(),
            closed_order: std::collections::VecDeque::new(),
            listeners: HashMap::new(),
            pending_synack: HashMap::new(),
            next_id: first_id,
            cgroups,
            proc_owners: SocketOwners::default(),
            walked_owners: HashMap::new(),
            walked_pids: HashMap::new(),
            last_proc_scan: None,
            max_sockets: 2_000_000,
            evicted: 0,
        }
    }

    /// Looks up /proc for the owners of existing sockets (at start; again on demand).
    pub fn scan_proc(&mut self) {
        self.last_proc_scan = Some(Instant::now());
        self.proc_owners = scan_socket_owners(&mut self.cgroups);
        for (k, o) in &self.proc_owners.listeners {
            self.listeners.entry(*k).or_insert_with(|| o.clone());
        }
    }

    /// The owner walk has run: it stands for a /proc scan (rescans for sockets it
    /// did not list come at most every 10 s, as after a scan).
    pub fn owners_walked(&mut self) {
        self.last_proc_scan = Some(Instant::now());
        self.walked_pids = HashMap::new();
    }

    /// One socket of the owner walk: `sk` in `netns` (local port, state) is held by
    /// process `tgid`. The first process listed for a socket is its owner.
    pub fn owner_found(&mut self, sk: u64, netns: u32, lport: u16, state: u8, tgid: i32) {
        let owner = match self.walked_pids.get(&tgid) {
            Some(o) => o.clone(),
            None => {
                let o = Arc::new(crate::procinfo::owner_of(tgid, &mut self.cgroups));
                self.walked_pids.insert(tgid, o.clone());
                o
            }
        };
        if state == tcp_state::LISTEN && netns != 0 {
            self.listeners.entry((netns, lport)).or_insert_with(|| owner.clone());
        }
        match self.by_sk.get_mut(&sk) {
            // Seen (adopted) between the attachment and the walk.
            Some(s) if s.owner.is_none() && s.pre_existing => s.owner = Some(owner),
            Some(_) => {}
            None => {
                self.walked_owners.entry(sk).or_insert(owner);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_sk.len()
    }

    /// Owner from a task seen in process context.
    pub fn owner_from_task(&mut self, task: &RawTask) -> Arc<Owner> {
        let comm_len = task.comm.iter().position(|&b| b == 0).unwrap_or(task.comm.len());
        let (cgroup, container_id) = match self.cgroups.lookup(task.cgroup_id) {
            Some((p, c)) => (Some(p), c),
            None => (None, None),
        };
        Arc::new(Owner {
            pid: task.tgid as i32,
            comm: Arc::from(String::from_utf8_lossy(&task.comm[..comm_len]).as_ref()),
            cgroup_id: Some(task.cgroup_id as i64),
            cgroup,
            container_id,
        })
    }

    fn new_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A socket is born: a new id even if the kernel reuses the address of one whose
    /// end we did not see (that one is returned so its flow can be written).
    pub fn born(
        &mut self,
        sk: u64,
        netns: Option<u32>,
        ends: Endpoints,
        birth: Birth,
        owner: Option<Arc<Owner>>,
        time_ns: i64,
    ) -> Option<Socket> {
        let previous = self.by_sk.remove(&sk);
        self.closed.remove(&sk);
        self.walked_owners.remove(&sk);
        let id = self.new_id();
        let origin = match birth {
            Birth::Connect => tcpfr_schema::sockets::origin::CONNECT,
            Birth::Listen => tcpfr_schema::sockets::origin::LISTEN,
            Birth::Accept => tcpfr_schema::sockets::origin::ACCEPT,
        };
        let (role, owner, listener) = match birth {
            Birth::Connect => (Some("client"), owner, false),
            Birth::Listen => {
                if let (Some(ns), Some(o)) = (netns, owner.as_ref()) {
                    self.listeners.insert((ns, ends.lport), o.clone());
                }
                (None, owner, true)
            }
            Birth::Accept => {
                let o = netns.and_then(|ns| self.listener_owner(ns, ends.lport));
                (Some("server"), o, false)
            }
        };
        let mut syn_retransmits = 0;
        if birth == Birth::Accept {
            if let Some(ns) = netns {
                syn_retransmits = self.pending_synack.remove(&conn_key(ns, &ends)).unwrap_or(0);
            }
        }
        self.evict_if_full();
        let mut s = Socket::new(id, netns, ends, owner, origin, time_ns);
        s.role = role;
        s.open_ns = (!listener).then_some(time_ns);
        s.listener = listener;
        s.syn_retransmits = syn_retransmits;
        // New sockets start at 0; accepted ones inherit the SYN-ACK retransmits.
        s.total_retrans = Some(syn_retransmits as u32);
        self.by_sk.insert(sk, s);
        previous.filter(|p| !p.listener)
    }

    /// The socket at `sk`, adopting it (as older than the recording) if unknown.
    pub fn get_or_adopt(&mut self, sk: u64, netns: Option<u32>, tuple: &RawTuple, addrs: &mut AddrCache, now_ns: i64) -> &mut Socket {
        if !self.by_sk.contains_key(&sk) && self.closed.contains_key(&sk) {
            return self.closed.get_mut(&sk).expect("checked");
        }
        if !self.by_sk.contains_key(&sk) {
            let ends = addrs.endpoints(tuple);
            let owner = match self.walked_owners.remove(&sk) {
                Some(o) => Some(o),
                None => netns.and_then(|ns| self.existing_owner(ns, &ends)),
            };
            let id = self.new_id();
            self.evict_if_full();
            let mut s = Socket::new(id, netns, ends, owner, tcpfr_schema::sockets::origin::EXISTING, now_ns);
            s.pre_existing = true;
            self.by_sk.insert(sk, s);
        }
        // Sockets adopted from an event without a namespace (RTT samples, flow ends)
        // could not be looked up in /proc then: look them up at the first event that
        // names it (else a connection older than the recording whose first event is an
        // RTT sample stays without owner for good).
        if let Some(ns) = netns {
            let s = &self.by_sk[&sk];
            if s.netns.is_none() && s.pre_existing && s.owner.is_none() {
                let ends = s.ends.clone();
                let owner = self.existing_owner(ns, &ends);
                self.by_sk.get_mut(&sk).expect("present").owner = owner;
            }
        }
        let s = self.by_sk.get_mut(&sk).expect("inserted above");
        s.last_seen = now_ns;
        if s.netns.is_none() {
            s.netns = netns;
        }
        // connect() enters SYN_SENT before the local port (and on some paths the
        // address) is chosen: take them from the first event that has them.
        if (s.ends.lport == 0 && tuple.lport != 0) || (s.ends.lip.is_unspecified() && tuple.laddr != [0; 16]) {
            s.ends = addrs.endpoints(tuple);
        }
        s
    }

    pub fn get_mut(&mut self, sk: u64) -> Option<&mut Socket> {
        self.by_sk.get_mut(&sk)
    }

    /// A socket by its kernel address and ends, open or closed a moment ago (rows that
    /// come after its close, like drop counts taken every interval, still find it). The
    /// ends must match: by then the kernel may have given the address to a new socket.
    pub fn find(&self, sk: u64, ends: &Endpoints) -> Option<&Socket> {
        let same = |s: &&Socket| s.ends.lport == ends.lport && s.ends.rport == ends.rport && s.ends.raddr == ends.raddr;
        self.by_sk.get(&sk).filter(same).or_else(|| self.closed.get(&sk).filter(same))
    }

    /// Removes a socket that reached CLOSE (keeping it a few seconds for trailing
    /// events).
    pub fn remove(&mut self, sk: u64, now_ns: i64) -> Option<Socket> {
        self.walked_owners.remove(&sk);
        let s = self.by_sk.remove(&sk)?;
        if s.listener {
            if let Some(ns) = s.netns {
                self.listeners.remove(&(ns, s.ends.lport));
            }
        }
        let now = now_ns;
        while let Some(&(t, old)) = self.closed_order.front() {
            if now - t < 2_000_000_000 && self.closed.len() < 100_000 {
                break;
            }
            self.closed_order.pop_front();
            if self.closed.get(&old).is_some_and(|c| c.last_seen <= t) {
                self.closed.remove(&old);
            }
        }
        let mut tomb = s.clone();
        tomb.last_seen = now;
        self.closed.insert(sk, tomb);
        self.closed_order.push_back((now, sk));
        Some(s)
    }

    /// Every socket still open (for the end of the recording).
    pub fn drain(&mut self) -> impl Iterator<Item = Socket> + '_ {
        self.by_sk.drain().map(|(_, s)| s)
    }

    /// Counts a SYN-ACK retransmit for the connection it will become.
    pub fn synack_retransmit(&mut self, netns: u32, ends: &Endpoints) {
        if self.pending_synack.len() > 100_000 {
            self.pending_synack.clear();
        }
        *self.pending_synack.entry(conn_key(netns, ends)).or_default() += 1;
    }

    /// Owner of the listener on this port (for SYN-ACK rows and accepted sockets).
    pub fn listener_owner(&mut self, netns: u32, port: u16) -> Option<Arc<Owner>> {
        if let Some(o) = self.listeners.get(&(netns, port)) {
            return Some(o.clone());
        }
        self.maybe_rescan();
        self.listeners.get(&(netns, port)).cloned()
    }

    fn existing_owner(&mut self, netns: u32, ends: &Endpoints) -> Option<Arc<Owner>> {
        let key = conn_key(netns, ends);
        if let Some(o) = self.proc_owners.connections.get(&key) {
            return Some(o.clone());
        }
        self.maybe_rescan();
        self.proc_owners.connections.get(&key).cloned()
    }

    /// /proc scans are expensive on busy hosts: at most one every 10 s.
    fn maybe_rescan(&mut self) {
        if self.last_proc_scan.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            self.scan_proc();
        }
    }

    fn evict_if_full(&mut self) {
        if self.by_sk.len() < self.max_sockets {
            return;
        }
        // Drop the sockets idle the longest: their close was most likely missed.
        let mut idle: Vec<(i64, u64)> = self.by_sk.iter().map(|(k, s)| (s.last_seen, *k)).collect();
        idle.sort();
        for (_, k) in idle.iter().take(self.max_sockets / 10 + 1) {
            self.by_sk.remove(k);
            self.evicted += 1;
        }
    }
}

pub fn conn_key(netns: u32, e: &Endpoints) -> ConnKey {
    (netns, e.lip, e.lport, e.rip, e.rport)
}

/// The kernel state names used in recordings.
pub fn state_name(state: u8) -> &'static str {
    tcp_state::name(state).unwrap_or("UNKNOWN")
}

/// errno names for the errors a TCP socket closes with.
pub fn errno_name(err: i32) -> String {
    let e = err.abs();
    match e {
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::ECONNRESET => "ECONNRESET".into(),
        libc::ECONNABORTED => "ECONNABORTED".into(),
        libc::EHOSTUNREACH => "EHOSTUNREACH".into(),
        libc::ENETUNREACH => "ENETUNREACH".into(),
        libc::ENETDOWN => "ENETDOWN".into(),
        libc::EHOSTDOWN => "EHOSTDOWN".into(),
        libc::EPIPE => "EPIPE".into(),
        libc::EPROTO => "EPROTO".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::EBUSY => "EBUSY".into(),
        libc::ENOBUFS => "ENOBUFS".into(),
        libc::EMSGSIZE => "EMSGSIZE".into(),
        libc::EINVAL => "EINVAL".into(),
        _ => format!("E{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcpfr_schema::Str;

    /// A connection older than the recording whose first event has no namespace (an
    /// RTT sample) gets its /proc owner at the first event that names the namespace.
    #[test]
    fn adopted_socket_gets_its_owner_once_the_namespace_is_known() {
        let mut t = SocketTable::new(1, Cgroups::new(None));
        // As if /proc had just been scanned (no rescan of the real /proc here).
        t.last_proc_scan = Some(Instant::now());
        let mut laddr = [0u8; 16];
        laddr[..4].copy_from_slice(&[10, 9, 0, 1]);
        let mut raddr = [0u8; 16];
        raddr[..4].copy_from_slice(&[10, 9, 0, 2]);
        let tuple = RawTuple { family: 2, lport: 40000, rport: 5009, _pad: 0, laddr, raddr };
        let mut addrs = AddrCache::default();
        let ends = addrs.endpoints(&tuple);
        let owner = Arc::new(Owner { pid: 4242, comm: Str::from("tcpfr-traffic"), cgroup_id: None, cgroup: None, container_id: None });
        t.proc_owners.connections.insert(conn_key(7, &ends), owner);

        let s = t.get_or_adopt(0xabc, None, &tuple, &mut addrs, 1);
        assert!(s.owner.is_none(), "no namespace yet: nothing to look up");
        let s = t.get_or_adopt(0xabc, Some(7), &tuple, &mut addrs, 2);
        assert_eq!(s.owner.as_ref().map(|o| o.pid), Some(4242));
        assert_eq!(s.netns, Some(7));
        // Another namespace's socket with the same addresses is not that process's.
        let s = t.get_or_adopt(0xdef, None, &tuple, &mut addrs, 3);
        assert!(s.owner.is_none());
        let s = t.get_or_adopt(0xdef, Some(8), &tuple, &mut addrs, 4);
        assert!(s.owner.is_none());
    }
}
