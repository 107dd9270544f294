//! The event families, added up live: each flush's rows (on the writer thread) into
//! counters and an RTT histogram per label set, published as a copy for scrapes.

use tcpfr_schema::TableId;
use std::sync::{Arc, Mutex};

use ahash::AHashMap as HashMap;
use arrow_array::{Array, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt16Array, UInt32Array};
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::metrics::{self as contract, MAX_BUCKETS};
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::TABLES;
use tcpfr_services::Matcher;

use super::families;
use super::text::{float, Text};
use crate::enrich::Batches;

/// Strings interned to small ids, in the order first seen.
#[derive(Default, Clone)]
struct Interner {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// Peer id 0 is `other`.
const OTHER: u32 = 0;

#[derive(Clone)]
struct Peers {
    max: usize,
    names: Interner,
}

impl Peers {
    fn new(max: usize) -> Self {
        let mut names = Interner::default();
        names.id("other");
        Peers { max, names }
    }

    /// The label of a remote address: its own for the first `max` addresses, else
    /// `other` (also for no address: empty or unspecified, as in listeners' rows).
    fn id(&mut self, raddr: &str) -> u32 {
        if raddr.is_empty() || raddr == "0.0.0.0" || raddr == "::" || raddr == "other" {
            return OTHER;
        }
        if let Some(id) = self.names.ids.get(raddr) {
            return *id;
        }
        if self.names.names.len() - 1 >= self.max {
            return OTHER;
        }
        self.names.id(raddr)
    }
}

/// The `service` label: every name the services map or a well-known port gives (a
/// set the operator chose), and the first `max` process names a connection fell back
/// to; later process names are `other`. Any local user can name a process: without
/// the cap, renaming processes would grow the series (and memory) of a root daemon.
#[derive(Clone)]
struct Services {
    max: usize,
    from_processes: usize,
    names: Interner,
}

impl Services {
    fn new(max: usize) -> Self {
        Services { max, from_processes: 0, names: Interner::default() }
    }

    fn id(&mut self, name: &str, from_process: bool) -> u32 {
        if let Some(id) = self.names.ids.get(name) {
            return *id;
        }
        if from_process {
            if self.from_processes >= self.max {
                return self.names.id("other");
            }
            self.from_processes += 1;
        }
        self.names.id(name)
    }
}

/// One label set of a histogram family; bucket `i` counts values in the family's
/// `i`-th bucket and not a lower one.
#[derive(Default, Clone, Copy)]
struct Histogram {
    buckets: [u64; MAX_BUCKETS],
    count: u64,
    sum_us: u64,
}

impl Histogram {
    fn add(&mut self, f: &contract::Family, us: u64) {
        if let Some(k) = f.buckets.iter().position(|(b, _)| us <= *b) {
            self.buckets[k] += 1;
        }
        self.count += 1;
        self.sum_us += us;
    }

    /// The series of one label set: cumulative buckets (the contract's `le` labels),
    /// `+Inf`, sum and count.
    fn render(&self, t: &mut Text, f: &contract::Family, service: &str, peer: &str) {
        let name = f.text_name();
        let bucket = format!("{name}_bucket");
        let mut cum = 0;
        for (i, (_, le)) in f.buckets.iter().enumerate() {
            cum += self.buckets[i];
            t.sample(&bucket, &[("service", service), ("peer", peer), ("le", le)], cum);
        }
        t.sample(&bucket, &[("service", service), ("peer", peer), ("le", "+Inf")], self.count);
        t.sample(&format!("{name}_sum"), &[("service", service), ("peer", peer)], float(self.sum_us as f64 / 1e6));
        t.sample(&format!("{name}_count"), &[("service", service), ("peer", peer)], self.count);
    }
}

/// A listener's label: `address:port`, the address bracketed for IPv6 (as the export
/// writes it).
fn listener_label(laddr: &str, lport: u16) -> String {
    if laddr.contains(':') { format!("[{laddr}]:{lport}") } else { format!("{laddr}:{lport}") }
}

/// Starts a family of the contract; its name in the text format.
fn family(t: &mut Text, f: &contract::Family) -> String {
    let name = f.text_name();
    t.family(&name, f.kind.name(), f.help);
    name
}

/// (service, peer, word): `word` is the third label's value (kind, role+cause, …).
type Key = (u32, u32, u32);

/// What a scrape prints. The writer's copy is updated by every flush, then cloned for
/// scrapes (a few hundred series at most: every label is bounded), so a scrape never
/// holds a lock the writer waits for.
#[derive(Clone)]
struct Series {
    services: Services,
    peers: Peers,
    /// Other label values (kinds, states, causes, directions, roles).
    words: Interner,
    retransmitted: HashMap<Key, u64>,
    /// word = cause.
    retransmit_causes: HashMap<Key, u64>,
    retransmit_failures: HashMap<Key, u64>,
    /// word = "role\0cause".
    handshake_failures: HashMap<Key, u64>,
    resets: HashMap<Key, u64>,
    /// peer unused (OTHER).
    state_changes: HashMap<Key, u64>,
    rtt: HashMap<(u32, u32), Histogram>,
    connect: HashMap<(u32, u32), Histogram>,
    /// service unused (OTHER); word = "direction\0reason".
    local_drops: HashMap<Key, u64>,
    /// Listener labels ("address:port"), bounded like peers: any local user can listen.
    listeners: Peers,
    /// The listener's id in the peer slot; service and word unused.
    listener_drops: HashMap<Key, u64>,
    host_out_segs: u64,
    host_retrans_segs: u64,
    events: [u64; TableId::COUNT],
    events_lost: [u64; TableId::COUNT],
}

struct State {
    matcher: Matcher,
    series: Series,
    /// Open sockets' labels, for `rtt_samples` (which carry only a socket id).
    sockets: HashMap<i64, (u32, u32)>,
    /// Sockets closed in the previous flush: forgotten at the next one (their last
    /// samples may arrive a flush later).
    closing: Vec<i64>,
}

/// Sockets remembered at most (a runaway table is cleared rather than grown).
const MAX_SOCKETS: usize = 1 << 20;

pub struct Metrics {
    state: Mutex<State>,
    /// The series as of the last flush, for scrapes.
    published: Mutex<Arc<Series>>,
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Option<&'a T> {
    b.column_by_name(name)?.as_any().downcast_ref::<T>()
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// The columns every event table has that name a service and a peer.
struct Ends<'a> {
    lport: &'a UInt16Array,
    rport: &'a UInt16Array,
    raddr: &'a StringArray,
    comm: &'a StringArray,
    cgroup: &'a StringArray,
}

impl<'a> Ends<'a> {
    fn of(b: &'a RecordBatch) -> Option<Self> {
        Some(Ends { lport: col(b, "lport")?, rport: col(b, "rport")?, raddr: col(b, "raddr")?, comm: col(b, "comm")?, cgroup: col(b, "cgroup")? })
    }
}

impl State {
    fn labels(&mut self, e: &Ends, i: usize) -> (u32, u32) {
        let raddr = e.raddr.value(i);
        let (name, from_process) = self.matcher.name_and_origin(e.lport.value(i), e.rport.value(i), raddr, opt(e.comm, i), opt(e.cgroup, i));
        let svc = self.series.services.id(name, from_process);
        (svc, self.series.peers.id(raddr))
    }

    fn sockets(&mut self, b: &RecordBatch) -> Option<()> {
        let (e, id) = (Ends::of(b)?, col::<Int64Array>(b, "socket_id")?);
        if self.sockets.len() + b.num_rows() > MAX_SOCKETS {
            self.sockets.clear();
        }
        for i in 0..b.num_rows() {
            let l = self.labels(&e, i);
            self.sockets.insert(id.value(i), l);
        }
        Some(())
    }

    fn retransmits(&mut self, b: &RecordBatch) -> Option<()> {
        let e = Ends::of(b)?;
        let (kind, segs, err, counted) = (col::<StringArray>(b, "kind")?, col::<Int32Array>(b, "segments")?, col::<Int32Array>(b, "err")?, col::<BooleanArray>(b, "counted")?);
        let cause = col::<StringArray>(b, "cause")?;
        for i in 0..b.num_rows() {
            let (svc, peer) = self.labels(&e, i);
            let k = self.series.words.id(kind.value(i));
            if counted.value(i) {
                let n = segs.value(i).max(0) as u64;
                *self.series.retransmitted.entry((svc, peer, k)).or_default() += n;
                if let (Some(c), "data") = (opt(cause, i), kind.value(i)) {
                    let c = self.series.words.id(c);
                    *self.series.retransmit_causes.entry((svc, peer, c)).or_default() += n;
                }
            } else if !err.is_null(i) && err.value(i) != 0 {
                *self.series.retransmit_failures.entry((svc, peer, OTHER)).or_default() += 1;
            }
        }
        Some(())
    }

    fn resets(&mut self, b: &RecordBatch) -> Option<()> {
        let (e, dir) = (Ends::of(b)?, col::<StringArray>(b, "direction")?);
        for i in 0..b.num_rows() {
            let (svc, peer) = self.labels(&e, i);
            let d = self.series.words.id(dir.value(i));
            *self.series.resets.entry((svc, peer, d)).or_default() += 1;
        }
        Some(())
    }

    fn state_changes(&mut self, b: &RecordBatch, closed: &mut Vec<i64>) -> Option<()> {
        let (e, new, id) = (Ends::of(b)?, col::<StringArray>(b, "new_state")?, col::<Int64Array>(b, "socket_id")?);
        for i in 0..b.num_rows() {
            let (svc, _) = self.labels(&e, i);
            let s = new.value(i);
            if s == "CLOSE" {
                closed.push(id.value(i));
            }
            let w = self.series.words.id(s);
            *self.series.state_changes.entry((svc, OTHER, w)).or_default() += 1;
        }
        Some(())
    }

    fn flows(&mut self, b: &RecordBatch, closed: &mut Vec<i64>) -> Option<()> {
        let e = Ends::of(b)?;
        let (hs, role, id) = (col::<StringArray>(b, "handshake")?, col::<StringArray>(b, "role")?, col::<Int64Array>(b, "socket_id")?);
        let wait = col::<Int64Array>(b, "handshake_ns")?;
        for i in 0..b.num_rows() {
            closed.push(id.value(i));
            let (Some(cause), Some(role)) = (opt(hs, i), opt(role, i)) else { continue };
            if cause == "completed" {
                if role == "client" && !wait.is_null(i) {
                    let l = self.labels(&e, i);
                    self.series.connect.entry(l).or_default().add(&contract::CONNECT_DURATION, wait.value(i).max(0) as u64 / 1000);
                }
                continue;
            }
            let (svc, peer) = self.labels(&e, i);
            let w = self.series.words.id(&format!("{role}\0{cause}"));
            *self.series.handshake_failures.entry((svc, peer, w)).or_default() += 1;
        }
        Some(())
    }

    fn rtt_samples(&mut self, b: &RecordBatch) -> Option<()> {
        let (id, srtt) = (col::<Int64Array>(b, "socket_id")?, col::<UInt32Array>(b, "srtt_us")?);
        let unknown = self.series.services.id("unknown", false);
        for i in 0..b.num_rows() {
            let l = self.sockets.get(&id.value(i)).copied().unwrap_or((unknown, OTHER));
            self.series.rtt.entry(l).or_default().add(&contract::RTT, srtt.value(i) as u64);
        }
        Some(())
    }

    fn drops(&mut self, b: &RecordBatch) -> Option<()> {
        let (raddr, dir, reason, packets) =
            (col::<StringArray>(b, "raddr")?, col::<StringArray>(b, "direction")?, col::<StringArray>(b, "reason")?, col::<Int64Array>(b, "packets")?);
        for i in 0..b.num_rows() {
            let peer = self.series.peers.id(raddr.value(i));
            let w = self.series.words.id(&format!("{}\0{}", dir.value(i), reason.value(i)));
            *self.series.local_drops.entry((OTHER, peer, w)).or_default() += packets.value(i).max(0) as u64;
        }
        Some(())
    }

    fn listeners(&mut self, b: &RecordBatch) -> Option<()> {
        let (laddr, lport, drops) = (col::<StringArray>(b, "laddr")?, col::<UInt16Array>(b, "lport")?, col::<Int64Array>(b, "drops")?);
        for i in (0..b.num_rows()).filter(|&i| drops.value(i) > 0) {
            let l = self.series.listeners.id(&listener_label(laddr.value(i), lport.value(i)));
            *self.series.listener_drops.entry((OTHER, l, OTHER)).or_default() += drops.value(i) as u64;
        }
        Some(())
    }
}

impl crate::writer::FlushObserver for Metrics {
    fn observe(&self, rows: &Batches, host_counters: &[HostCounters], recorder_stats: &[RecorderStats]) {
        Metrics::observe(self, rows, host_counters, recorder_stats);
    }
}

impl Metrics {
    pub fn new(services: &tcpfr_services::ServiceMap, max_peers: usize, max_services: usize) -> Self {
        let series = Series {
            services: Services::new(max_services),
            peers: Peers::new(max_peers),
            words: Interner::default(),
            retransmitted: HashMap::new(),
            retransmit_causes: HashMap::new(),
            retransmit_failures: HashMap::new(),
            handshake_failures: HashMap::new(),
            resets: HashMap::new(),
            state_changes: HashMap::new(),
            rtt: HashMap::new(),
            connect: HashMap::new(),
            local_drops: HashMap::new(),
            listeners: Peers::new(max_peers),
            listener_drops: HashMap::new(),
            host_out_segs: 0,
            host_retrans_segs: 0,
            events: [0; TableId::COUNT],
            events_lost: [0; TableId::COUNT],
        };
        Metrics {
            published: Mutex::new(Arc::new(series.clone())),
            state: Mutex::new(State { matcher: services.matcher(), series, sockets: HashMap::new(), closing: Vec::new() }),
        }
    }

    /// Adds one flush's rows (on the writer thread, before they are written).
    pub fn observe(&self, rows: &Batches, host_counters: &[HostCounters], recorder_stats: &[RecorderStats]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        for id in std::mem::take(&mut st.closing) {
            st.sockets.remove(&id);
        }
        let mut closed = Vec::new();
        // Sockets first: a socket's row comes in the same flush as its first sample.
        let mut ok = true;
        for b in &rows.sockets {
            ok &= st.sockets(b).is_some();
        }
        for b in &rows.retransmits {
            ok &= st.retransmits(b).is_some();
        }
        for b in &rows.resets {
            ok &= st.resets(b).is_some();
        }
        for b in &rows.state_changes {
            ok &= st.state_changes(b, &mut closed).is_some();
        }
        for b in &rows.flows {
            ok &= st.flows(b, &mut closed).is_some();
        }
        for b in &rows.rtt_samples {
            ok &= st.rtt_samples(b).is_some();
        }
        for b in &rows.drops {
            ok &= st.drops(b).is_some();
        }
        for b in &rows.listeners {
            ok &= st.listeners(b).is_some();
        }
        if !ok {
            tracing::debug!("metrics: a batch without the expected columns was skipped");
        }
        st.closing = closed;
        // All namespaces the recorder reads, as the event families cover every namespace
        // (and as `tcpfr export openmetrics` sums them).
        let series = &mut st.series;
        for h in host_counters {
            series.host_out_segs += h.out_segs.max(0) as u64;
            series.host_retrans_segs += h.retrans_segs.max(0) as u64;
        }
        for r in recorder_stats.iter().filter(|r| r.interval_ns > 0 && r.gap_start.is_none()) {
            if let Some(i) = TABLES.iter().position(|t| *t == &*r.stream) {
                series.events[i] += r.events_seen.max(0) as u64;
                series.events_lost[i] += r.events_lost.max(0) as u64;
            }
        }
        let copy = Arc::new(series.clone());
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = copy;
    }

    /// The event families (and host counters) in the text format.
    pub(super) fn render_into(&self, t: &mut Text) {
        let st: Arc<Series> = self.published.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (svc, peer, word) = (|id: u32| st.services.names.name(id), |id: u32| st.peers.names.name(id), |id: u32| st.words.name(id));
        let sorted = |m: &HashMap<Key, u64>| {
            let mut v: Vec<(Key, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
            v.sort_by(|a, b| (svc(a.0 .0), peer(a.0 .1), word(a.0 .2)).cmp(&(svc(b.0 .0), peer(b.0 .1), word(b.0 .2))));
            v
        };
        let name = family(t, &contract::RETRANSMITTED_SEGMENTS);
        for ((s, p, k), v) in sorted(&st.retransmitted) {
            t.sample(&name, &[("service", svc(s)), ("peer", peer(p)), ("kind", word(k))], v);
        }
        let name = family(t, &contract::RETRANSMIT_CAUSES);
        for ((s, p, c), v) in sorted(&st.retransmit_causes) {
            t.sample(&name, &[("service", svc(s)), ("peer", peer(p)), ("cause", word(c))], v);
        }
        let name = family(t, &contract::RETRANSMIT_FAILURES);
        for ((s, p, _), v) in sorted(&st.retransmit_failures) {
            t.sample(&name, &[("service", svc(s)), ("peer", peer(p))], v);
        }
        let name = family(t, &contract::HANDSHAKE_FAILURES);
        for ((s, p, w), v) in sorted(&st.handshake_failures) {
            let (role, cause) = word(w).split_once('\0').unwrap_or(("", ""));
            t.sample(&name, &[("service", svc(s)), ("peer", peer(p)), ("role", role), ("cause", cause)], v);
        }
        family(t, &contract::CONNECT_DURATION);
        render_histograms(t, &contract::CONNECT_DURATION, &st.connect, &svc, &peer);
        let name = family(t, &contract::RESETS);
        for ((s, p, d), v) in sorted(&st.resets) {
            t.sample(&name, &[("service", svc(s)), ("peer", peer(p)), ("direction", word(d))], v);
        }
        let name = family(t, &contract::STATE_CHANGES);
        for ((s, _, w), v) in sorted(&st.state_changes) {
            t.sample(&name, &[("service", svc(s)), ("state", word(w))], v);
        }
        family(t, &contract::RTT);
        render_histograms(t, &contract::RTT, &st.rtt, &svc, &peer);
        let name = family(t, &contract::LOCAL_DROPS);
        for ((_, p, w), v) in sorted(&st.local_drops) {
            let (dir, reason) = word(w).split_once('\0').unwrap_or(("", ""));
            t.sample(&name, &[("peer", peer(p)), ("direction", dir), ("reason", reason)], v);
        }
        let name = family(t, &contract::LISTENER_DROPS);
        let mut listeners: Vec<(&str, u64)> = st.listener_drops.iter().map(|((_, l, _), v)| (st.listeners.names.name(*l), *v)).collect();
        listeners.sort();
        for (l, v) in listeners {
            t.sample(&name, &[("listener", l)], v);
        }
        let name = family(t, &contract::HOST_OUT_SEGMENTS);
        t.sample(&name, &[], st.host_out_segs);
        let name = family(t, &contract::HOST_RETRANS_SEGMENTS);
        t.sample(&name, &[], st.host_retrans_segs);
        t.family(families::EVENTS, "counter", "Kernel events received, by kind (the table they feed).");
        for table in TableId::ALL.into_iter().filter(|t| t.is_event()) {
            t.sample(families::EVENTS, &[("kind", table.name())], st.events[table.index()]);
        }
        t.family(families::EVENTS_LOST, "counter", "Kernel events lost (ring buffer full, or skipped by the kernel), by kind.");
        for table in TableId::ALL.into_iter().filter(|t| t.is_event()) {
            t.sample(families::EVENTS_LOST, &[("kind", table.name())], st.events_lost[table.index()]);
        }
    }
}

/// A histogram family's label sets, in label order.
fn render_histograms<'a>(
    t: &mut Text,
    f: &contract::Family,
    m: &HashMap<(u32, u32), Histogram>,
    svc: &dyn Fn(u32) -> &'a str,
    peer: &dyn Fn(u32) -> &'a str,
) {
    let mut v: Vec<((u32, u32), Histogram)> = m.iter().map(|(k, v)| (*k, *v)).collect();
    v.sort_by(|a, b| (svc(a.0 .0), peer(a.0 .1)).cmp(&(svc(b.0 .0), peer(b.0 .1))));
    for ((s, p), h) in v {
        h.render(t, f, svc(s), peer(p));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn peers_are_bounded_and_stable() {
        let mut p = Peers::new(2);
        let a = p.id("10.0.0.1");
        let b = p.id("10.0.0.2");
        assert_eq!(p.id("10.0.0.3"), OTHER);
        assert_eq!(p.id("10.0.0.1"), a);
        assert_eq!(p.id("10.0.0.2"), b);
        assert_eq!(p.id(""), OTHER);
        assert_eq!(p.id("0.0.0.0"), OTHER);
        assert_eq!(p.names.name(a), "10.0.0.1");
        assert_eq!(p.names.name(OTHER), "other");
    }

    #[test]
    fn process_names_are_capped_but_the_maps_names_are_not() {
        let mut s = Services::new(2);
        let a = s.id("api", true);
        let b = s.id("worker", true);
        let other = s.id("evil-1", true);
        assert_eq!(s.names.name(other), "other");
        assert_eq!(s.id("evil-2", true), other);
        assert_eq!((s.id("api", true), s.id("worker", true)), (a, b));
        // Names from the services map or a well-known port are the operator's: kept.
        assert_ne!(s.id("postgres", false), other);
        assert_eq!(s.names.names.len(), 4);
    }

    #[test]
    fn a_scrape_does_not_wait_for_the_writer() {
        let m = Arc::new(Metrics::new(&Default::default(), 20, 20));
        let held = m.state.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let scraper = m.clone();
        std::thread::spawn(move || {
            let mut t = Text::default();
            scraper.render_into(&mut t);
            let _ = tx.send(t.out);
        });
        let out = rx.recv_timeout(Duration::from_secs(5)).expect("a scrape while the writer holds its state");
        drop(held);
        assert!(out.contains("tcpfr_retransmitted_segments_total"));
    }

    #[test]
    fn histogram_bounds_are_inclusive() {
        let st = Metrics::new(&Default::default(), 20, 20);
        let mut m = st.state.lock().unwrap();
        let unknown = m.series.services.id("unknown", false);
        m.sockets.insert(1, (unknown, OTHER));
        let batch = RecordBatch::try_from_iter([
            ("socket_id", Arc::new(Int64Array::from(vec![1, 1, 1, 2])) as _),
            ("srtt_us", Arc::new(UInt32Array::from(vec![100, 101, 3_000_000, 250])) as _),
        ])
        .unwrap();
        m.rtt_samples(&batch).unwrap();
        let h = m.series.rtt[&(unknown, OTHER)];
        assert_eq!(h.count, 4);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 2);
        assert_eq!(h.sum_us, 3_000_451);
        *st.published.lock().unwrap() = Arc::new(m.series.clone());
        drop(m);
        let mut t = Text::default();
        st.render_into(&mut t);
        assert!(t.out.contains("tcpfr_rtt_seconds_bucket{service=\"unknown\",peer=\"other\",le=\"0.0001\"} 1\n"), "{}", t.out);
        assert!(t.out.contains("tcpfr_rtt_seconds_bucket{service=\"unknown\",peer=\"other\",le=\"0.00025\"} 3\n"));
        assert!(t.out.contains("tcpfr_rtt_seconds_bucket{service=\"unknown\",peer=\"other\",le=\"2.5\"} 3\n"));
        assert!(t.out.contains("tcpfr_rtt_seconds_bucket{service=\"unknown\",peer=\"other\",le=\"+Inf\"} 4\n"));
        assert!(t.out.contains("tcpfr_rtt_seconds_sum{service=\"unknown\",peer=\"other\"} 3.000451\n"));
    }
}

#[cfg(test)]
mod cause_tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt16Array};

    use super::*;

    fn strs(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn ends(n: usize, rport: u16) -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("lport", Arc::new(UInt16Array::from(vec![40000; n])) as ArrayRef),
            ("rport", Arc::new(UInt16Array::from(vec![rport; n])) as ArrayRef),
            ("raddr", strs(&vec![Some("10.0.0.34"); n])),
            ("comm", strs(&vec![Some("api"); n])),
            ("cgroup", strs(&vec![None; n])),
        ]
    }

    /// Causes, connect times, local drops and full accept queues, from rows as the
    /// writer flushes them, by hand: 3 + 2 fast and 4 timeout data segments (a SYN and
    /// an uncounted attempt in no cause), connects of 0.8 ms and 1.2 s (a failed one in
    /// none), 7 + 3 packets dropped on arrival, 5 attempts dropped by one listener.
    #[test]
    fn the_cause_families_add_up_rows() {
        let m = Metrics::new(&Default::default(), 20, 20);
        let mut st = m.state.lock().unwrap();
        let mut cols = ends(5, 5432);
        cols.extend([
            ("kind", strs(&[Some("data"), Some("data"), Some("data"), Some("syn"), Some("data")])),
            ("segments", Arc::new(Int32Array::from(vec![3, 2, 4, 1, 9])) as ArrayRef),
            ("err", Arc::new(Int32Array::from(vec![0, 0, 0, 0, -16])) as ArrayRef),
            ("counted", Arc::new(BooleanArray::from(vec![true, true, true, true, false])) as ArrayRef),
            ("cause", strs(&[Some("fast"), Some("fast"), Some("timeout"), None, Some("fast")])),
        ]);
        st.retransmits(&RecordBatch::try_from_iter(cols).unwrap()).unwrap();
        let mut cols = ends(3, 5432);
        cols.extend([
            ("handshake", strs(&[Some("completed"), Some("completed"), Some("timeout")])),
            ("role", strs(&[Some("client"), Some("client"), Some("client")])),
            ("socket_id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("handshake_ns", Arc::new(Int64Array::from(vec![800_000, 1_200_000_000, 3_000_000_000])) as ArrayRef),
        ]);
        st.flows(&RecordBatch::try_from_iter(cols).unwrap(), &mut Vec::new()).unwrap();
        st.drops(
            &RecordBatch::try_from_iter([
                ("raddr", strs(&[Some("10.0.0.10"), Some("10.0.0.10")])),
                ("direction", strs(&[Some("in"), Some("in")])),
                ("reason", strs(&[Some("NETFILTER_DROP"), Some("NETFILTER_DROP")])),
                ("packets", Arc::new(Int64Array::from(vec![7, 3])) as ArrayRef),
            ])
            .unwrap(),
        )
        .unwrap();
        st.listeners(
            &RecordBatch::try_from_iter([
                ("laddr", strs(&[Some("0.0.0.0"), Some("0.0.0.0"), Some("::")])),
                ("lport", Arc::new(UInt16Array::from(vec![6379, 6379, 80])) as ArrayRef),
                ("drops", Arc::new(Int64Array::from(vec![2, 3, 0])) as ArrayRef),
            ])
            .unwrap(),
        )
        .unwrap();
        *m.published.lock().unwrap() = Arc::new(st.series.clone());
        drop(st);
        let mut t = Text::default();
        m.render_into(&mut t);
        for line in [
            "tcpfr_retransmitted_data_segments_total{service=\"postgres\",peer=\"10.0.0.34\",cause=\"fast\"} 5\n",
            "tcpfr_retransmitted_data_segments_total{service=\"postgres\",peer=\"10.0.0.34\",cause=\"timeout\"} 4\n",
            "tcpfr_connect_duration_seconds_bucket{service=\"postgres\",peer=\"10.0.0.34\",le=\"0.001\"} 1\n",
            "tcpfr_connect_duration_seconds_bucket{service=\"postgres\",peer=\"10.0.0.34\",le=\"1.0\"} 1\n",
            "tcpfr_connect_duration_seconds_bucket{service=\"postgres\",peer=\"10.0.0.34\",le=\"2.0\"} 2\n",
            "tcpfr_connect_duration_seconds_count{service=\"postgres\",peer=\"10.0.0.34\"} 2\n",
            "tcpfr_connect_duration_seconds_sum{service=\"postgres\",peer=\"10.0.0.34\"} 1.2008\n",
            "tcpfr_local_drop_packets_total{peer=\"10.0.0.10\",direction=\"in\",reason=\"NETFILTER_DROP\"} 10\n",
            "tcpfr_listener_drops_total{listener=\"0.0.0.0:6379\"} 5\n",
        ] {
            assert!(t.out.contains(line), "{line:?} not in:\n{}", t.out);
        }
        assert_eq!(t.out.matches("tcpfr_retransmitted_data_segments_total{").count(), 2, "{}", t.out);
        assert!(!t.out.contains("listener=\"[::]:80\""), "a listener that dropped nothing has no series");
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;

    #[test]
    fn every_family_of_the_contract_is_served_with_its_help_and_type() {
        let m = Metrics::new(&Default::default(), 20, 20);
        let mut t = Text::default();
        m.render_into(&mut t);
        for f in contract::FAMILIES {
            let name = f.text_name();
            assert!(t.out.contains(&format!("# TYPE {name} {}\n", f.kind.name())), "{name}:\n{}", t.out);
            assert!(t.out.contains(&format!("# HELP {name} {}\n", f.help)), "{name}:\n{}", t.out);
        }
    }
}
