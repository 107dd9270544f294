//! Live metrics (`--metrics-listen`): the recording's event tables as Prometheus
//! counters and an RTT histogram, labelled by service and peer, plus the recorder's own
//! health, served at `/metrics` in the text exposition format.
//!
//! The families, labels and buckets are a contract shared with `tcpfr export
//! openmetrics` (which computes the same from a recording): see [`families`].
//!
//! Nothing here runs on the thread that drains the kernel's ring buffer. The writer
//! thread hands every flush's rows (the Arrow batches it is about to write) to
//! [`Metrics::observe`], which adds them up and publishes a copy of the counters; a
//! scrape prints the latest copy on a thread of its own (`http.rs`), so a slow or
//! frequent scraper never holds up the writer. Counters start at 0 when the recorder
//! starts.
//!
//! Labels: `service` is the services map's name (`tcpfr-services`, the same decision
//! as the analyzer's `service` column), where the map and the well-known ports name
//! no service the process name for the first `--max-services` of those, `other` for
//! the rest; `peer` is the remote address, for the first `--max-peers` distinct
//! addresses seen (a series never changes its label), `other` for the rest and for
//! events without an address. So every label set is bounded whatever local users do.

pub mod http;
pub mod text;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ahash::AHashMap as HashMap;
use arrow_array::{Array, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt16Array, UInt32Array};
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::TABLES;
use tcpfr_services::Matcher;

use crate::enrich::{stream, Batches};
use crate::writer::WriterStats;
use text::{float, Text};

/// Family names (the contract with `tcpfr export openmetrics`).
pub mod families {
    pub const RETRANSMITTED_SEGMENTS: &str = "tcpfr_retransmitted_segments_total";
    pub const RETRANSMIT_FAILURES: &str = "tcpfr_retransmit_failures_total";
    pub const HANDSHAKE_FAILURES: &str = "tcpfr_handshake_failures_total";
    pub const RESETS: &str = "tcpfr_resets_total";
    pub const STATE_CHANGES: &str = "tcpfr_state_changes_total";
    pub const RTT: &str = "tcpfr_rtt_seconds";
    pub const HOST_OUT_SEGMENTS: &str = "tcpfr_host_tcp_out_segments_total";
    pub const HOST_RETRANS_SEGMENTS: &str = "tcpfr_host_tcp_retrans_segments_total";
    pub const EVENTS: &str = "tcpfr_recorder_events_total";
    pub const EVENTS_LOST: &str = "tcpfr_recorder_events_lost_total";
    pub const RINGBUF_FILL: &str = "tcpfr_recorder_ringbuf_fill_ratio";
    pub const ROWS_WRITTEN: &str = "tcpfr_recorder_rows_written_total";
    pub const ROWS_DROPPED: &str = "tcpfr_recorder_rows_dropped_total";
    pub const FILES_WRITTEN: &str = "tcpfr_recorder_files_written_total";
    pub const DISK_BYTES: &str = "tcpfr_recorder_disk_bytes";
    pub const LAST_WRITE: &str = "tcpfr_recorder_last_write_timestamp_seconds";
    pub const SEGMENTS_EVICTED: &str = "tcpfr_recorder_segments_evicted_total";
    pub const SHIP_FILES: &str = "tcpfr_ship_files_total";
    pub const SHIP_BYTES: &str = "tcpfr_ship_bytes_total";
    pub const SHIP_UNSHIPPED_FILES: &str = "tcpfr_ship_unshipped_files";
    pub const SHIP_UNSHIPPED_BYTES: &str = "tcpfr_ship_unshipped_bytes";
    pub const SHIP_ERRORS: &str = "tcpfr_ship_errors_total";
    pub const SHIP_LOST_FILES: &str = "tcpfr_ship_lost_files_total";
    pub const SHIP_LOST_BYTES: &str = "tcpfr_ship_lost_bytes_total";
    pub const SHIP_LAST_SUCCESS: &str = "tcpfr_ship_last_success_timestamp_seconds";
}

/// Upper bounds of the RTT histogram's buckets in microseconds (the contract's
/// 0.0001 … 2.5 s; +Inf is the count). Integers, so that a sample exactly on a bound
/// falls in that bucket.
pub const RTT_BUCKETS_US: [u64; 14] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000];

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

#[derive(Default, Clone, Copy)]
struct Histogram {
    buckets: [u64; RTT_BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
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
    retransmit_failures: HashMap<Key, u64>,
    /// word = "role\0cause".
    handshake_failures: HashMap<Key, u64>,
    resets: HashMap<Key, u64>,
    /// peer unused (OTHER).
    state_changes: HashMap<Key, u64>,
    rtt: HashMap<(u32, u32), Histogram>,
    host_out_segs: u64,
    host_retrans_segs: u64,
    events: [u64; stream::COUNT],
    events_lost: [u64; stream::COUNT],
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
        for i in 0..b.num_rows() {
            let (svc, peer) = self.labels(&e, i);
            let k = self.series.words.id(kind.value(i));
            if counted.value(i) {
                *self.series.retransmitted.entry((svc, peer, k)).or_default() += segs.value(i).max(0) as u64;
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
        for i in 0..b.num_rows() {
            closed.push(id.value(i));
            let (Some(cause), Some(role)) = (opt(hs, i), opt(role, i)) else { continue };
            if cause == "completed" {
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
            let h = self.series.rtt.entry(l).or_default();
            let us = srtt.value(i) as u64;
            // Cumulative buckets are made at render time; here the first that holds it.
            if let Some(k) = RTT_BUCKETS_US.iter().position(|b| us <= *b) {
                h.buckets[k] += 1;
            }
            h.count += 1;
            h.sum_us += us;
        }
        Some(())
    }
}

impl Metrics {
    pub fn new(services: &tcpfr_services::ServiceMap, max_peers: usize, max_services: usize) -> Self {
        let series = Series {
            services: Services::new(max_services),
            peers: Peers::new(max_peers),
            words: Interner::default(),
            retransmitted: HashMap::new(),
            retransmit_failures: HashMap::new(),
            handshake_failures: HashMap::new(),
            resets: HashMap::new(),
            state_changes: HashMap::new(),
            rtt: HashMap::new(),
            host_out_segs: 0,
            host_retrans_segs: 0,
            events: [0; stream::COUNT],
            events_lost: [0; stream::COUNT],
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
    fn render_into(&self, t: &mut Text) {
        use families::*;
        let st: Arc<Series> = self.published.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (svc, peer, word) = (|id: u32| st.services.names.name(id), |id: u32| st.peers.names.name(id), |id: u32| st.words.name(id));
        let sorted = |m: &HashMap<Key, u64>| {
            let mut v: Vec<(Key, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
            v.sort_by(|a, b| (svc(a.0 .0), peer(a.0 .1), word(a.0 .2)).cmp(&(svc(b.0 .0), peer(b.0 .1), word(b.0 .2))));
            v
        };
        t.family(
            RETRANSMITTED_SEGMENTS,
            "counter",
            "Segments the kernel retransmitted (and counted in RetransSegs), by service, peer and kind (data, syn, synack).",
        );
        for ((s, p, k), v) in sorted(&st.retransmitted) {
            t.sample(RETRANSMITTED_SEGMENTS, &[("service", svc(s)), ("peer", peer(p)), ("kind", word(k))], v);
        }
        t.family(RETRANSMIT_FAILURES, "counter", "Retransmission attempts the kernel could not send (err != 0, not counted in RetransSegs).");
        for ((s, p, _), v) in sorted(&st.retransmit_failures) {
            t.sample(RETRANSMIT_FAILURES, &[("service", svc(s)), ("peer", peer(p))], v);
        }
        t.family(
            HANDSHAKE_FAILURES,
            "counter",
            "Connections whose handshake did not complete, by role (client, server) and cause (timeout, refused, unreachable, abandoned, reset, failed).",
        );
        for ((s, p, w), v) in sorted(&st.handshake_failures) {
            let (role, cause) = word(w).split_once('\0').unwrap_or(("", ""));
            t.sample(HANDSHAKE_FAILURES, &[("service", svc(s)), ("peer", peer(p)), ("role", role), ("cause", cause)], v);
        }
        t.family(RESETS, "counter", "TCP resets sent to or received from the peer, by direction (sent, received).");
        for ((s, p, d), v) in sorted(&st.resets) {
            t.sample(RESETS, &[("service", svc(s)), ("peer", peer(p)), ("direction", word(d))], v);
        }
        t.family(STATE_CHANGES, "counter", "TCP state transitions, by the new state.");
        for ((s, _, w), v) in sorted(&st.state_changes) {
            t.sample(STATE_CHANGES, &[("service", svc(s)), ("state", word(w))], v);
        }
        t.family(RTT, "histogram", "Smoothed RTT (the kernel's srtt) of sampled ACKs, in seconds.");
        let mut rtt: Vec<((u32, u32), Histogram)> = st.rtt.iter().map(|(k, v)| (*k, *v)).collect();
        rtt.sort_by(|a, b| (svc(a.0 .0), peer(a.0 .1)).cmp(&(svc(b.0 .0), peer(b.0 .1))));
        let bucket = format!("{RTT}_bucket");
        for ((s, p), h) in rtt {
            let (s, p) = (svc(s), peer(p));
            let mut cum = 0;
            for (i, ub) in RTT_BUCKETS_US.iter().enumerate() {
                cum += h.buckets[i];
                // OpenMetrics' canonical form (`1.0`, not `1`), as `tcpfr export openmetrics`
                // writes it: backfilled and scraped series must carry the same label text.
                let mut le = float(*ub as f64 / 1e6);
                if !le.contains(['.', 'e']) {
                    le.push_str(".0");
                }
                t.sample(&bucket, &[("service", s), ("peer", p), ("le", &le)], cum);
            }
            t.sample(&bucket, &[("service", s), ("peer", p), ("le", "+Inf")], h.count);
            t.sample(&format!("{RTT}_sum"), &[("service", s), ("peer", p)], float(h.sum_us as f64 / 1e6));
            t.sample(&format!("{RTT}_count"), &[("service", s), ("peer", p)], h.count);
        }
        t.family(HOST_OUT_SEGMENTS, "counter", "The kernel's Tcp OutSegs since the recorder started, summed over the network namespaces it reads.");
        t.sample(HOST_OUT_SEGMENTS, &[], st.host_out_segs);
        t.family(HOST_RETRANS_SEGMENTS, "counter", "The kernel's Tcp RetransSegs since the recorder started, summed over the network namespaces it reads.");
        t.sample(HOST_RETRANS_SEGMENTS, &[], st.host_retrans_segs);
        t.family(EVENTS, "counter", "Kernel events received, by kind (the table they feed).");
        for (i, name) in TABLES.iter().enumerate().take(stream::HOST_COUNTERS) {
            t.sample(EVENTS, &[("kind", name)], st.events[i]);
        }
        t.family(EVENTS_LOST, "counter", "Kernel events lost (ring buffer full, or skipped by the kernel), by kind.");
        for (i, name) in TABLES.iter().enumerate().take(stream::HOST_COUNTERS) {
            t.sample(EVENTS_LOST, &[("kind", name)], st.events_lost[i]);
        }
    }
}

/// Read-only view of the ring buffer's positions (its first two pages: the consumer's
/// and the producer's), for the fill ratio.
pub struct RingFill {
    ptr: *mut libc::c_void,
    page: usize,
    size: u64,
}

// SAFETY: the mapping is read-only and only read with atomic loads.
unsafe impl Send for RingFill {}
unsafe impl Sync for RingFill {}

impl RingFill {
    /// Maps the positions of the ring buffer `fd` of `size` bytes; None if the kernel
    /// refuses (the gauge is then left out).
    pub fn new(fd: BorrowedFd<'_>, size: u64) -> Option<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: a fresh read-only shared mapping of the map's first two pages; the
        // kernel allows read-only mappings of a BPF ring buffer at any offset.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            tracing::warn!("metrics: cannot map the ring buffer's positions ({}); no fill ratio", std::io::Error::last_os_error());
            return None;
        }
        Some(RingFill { ptr, page, size })
    }

    /// Bytes written by the kernel and not yet read, as a fraction of the ring's size.
    pub fn ratio(&self) -> f64 {
        // SAFETY: both positions are u64s at the start of a mapped page, written by the
        // kernel and the consumer with release semantics.
        let (cons, prod) = unsafe {
            let c = &*(self.ptr as *const std::sync::atomic::AtomicU64);
            let p = &*((self.ptr as *const u8).add(self.page) as *const std::sync::atomic::AtomicU64);
            (c.load(Ordering::Acquire), p.load(Ordering::Acquire))
        };
        (prod.saturating_sub(cons) as f64 / self.size as f64).clamp(0.0, 1.0)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: our own mapping, of this length.
        unsafe { libc::munmap(self.ptr, 2 * self.page) };
    }
}

/// How long a measurement of the output directory's size is reused.
const DISK_CACHE: Duration = Duration::from_secs(5);

/// Everything a scrape prints: the event counters and the recorder's health.
pub struct Exporter {
    pub metrics: Arc<Metrics>,
    pub writer: Arc<WriterStats>,
    pub ring: Option<RingFill>,
    pub out: PathBuf,
    /// `--ship`: the uploader's counters.
    pub ship: Option<Arc<crate::ship::ShipStats>>,
    disk: Mutex<Option<(Instant, u64)>>,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>, writer: Arc<WriterStats>, ring: Option<RingFill>, out: PathBuf) -> Self {
        Exporter { metrics, writer, ring, out, ship: None, disk: Mutex::new(None) }
    }

    /// The whole `/metrics` body.
    pub fn render(&self) -> String {
        use families::*;
        let mut t = Text::default();
        self.metrics.render_into(&mut t);
        let w = &self.writer;
        if let Some(r) = &self.ring {
            t.family(RINGBUF_FILL, "gauge", "Fraction of the kernel-to-recorder ring buffer holding events not read yet, at scrape time.");
            t.sample(RINGBUF_FILL, &[], float(r.ratio()));
        }
        t.family(ROWS_WRITTEN, "counter", "Rows written to the recording's Parquet files, by table.");
        for (i, name) in TABLES.iter().enumerate() {
            t.sample(ROWS_WRITTEN, &[("table", name)], w.rows_written[i].load(Ordering::Relaxed));
        }
        t.family(ROWS_DROPPED, "counter", "Rows that could not be written (disk full, write errors).");
        t.sample(ROWS_DROPPED, &[], w.rows_dropped.iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>());
        t.family(FILES_WRITTEN, "counter", "Parquet files completed (closed at a segment rotation).");
        t.sample(FILES_WRITTEN, &[], w.files_written.load(Ordering::Relaxed));
        t.family(DISK_BYTES, "gauge", "Bytes of files under the output directory (--out), hard links counted once.");
        t.sample(DISK_BYTES, &[], self.disk_bytes());
        t.family(LAST_WRITE, "gauge", "When rows were last written to the recording (Unix time, seconds); 0 before the first write.");
        t.sample(LAST_WRITE, &[], float(w.last_write_ns.load(Ordering::Relaxed) as f64 / 1e9));
        t.family(SEGMENTS_EVICTED, "counter", "Segments deleted by the flight-recorder ring (--max-disk, --max-age).");
        t.sample(SEGMENTS_EVICTED, &[], w.evicted_segments.load(Ordering::Relaxed));
        if let Some(s) = &self.ship {
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            t.family(SHIP_FILES, "counter", "Files in the object store of --ship (uploaded, or found there after a restart).");
            t.sample(SHIP_FILES, &[], n(&s.shipped_files));
            t.family(SHIP_BYTES, "counter", "Bytes of those files.");
            t.sample(SHIP_BYTES, &[], n(&s.shipped_bytes));
            t.family(SHIP_UNSHIPPED_FILES, "gauge", "Closed files waiting for upload (they count against --max-disk).");
            t.sample(SHIP_UNSHIPPED_FILES, &[], n(&s.unshipped_files));
            t.family(SHIP_UNSHIPPED_BYTES, "gauge", "Bytes of the files waiting for upload.");
            t.sample(SHIP_UNSHIPPED_BYTES, &[], n(&s.unshipped_bytes));
            t.family(SHIP_ERRORS, "counter", "Failed upload attempts (the log and recorder_stats say why).");
            t.sample(SHIP_ERRORS, &[], n(&s.errors));
            t.family(SHIP_LOST_FILES, "counter", "Files deleted by --max-disk/--max-age before they were uploaded.");
            t.sample(SHIP_LOST_FILES, &[], n(&s.lost_files));
            t.family(SHIP_LOST_BYTES, "counter", "Bytes of those files.");
            t.sample(SHIP_LOST_BYTES, &[], n(&s.lost_bytes));
            t.family(SHIP_LAST_SUCCESS, "gauge", "When an upload round last completed without error (Unix time, seconds); 0: not yet.");
            t.sample(SHIP_LAST_SUCCESS, &[], float(n(&s.last_success_ns) as f64 / 1e9));
        }
        t.out
    }

    fn disk_bytes(&self) -> u64 {
        let mut cache = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, bytes)) = *cache {
            if at.elapsed() < DISK_CACHE {
                return bytes;
            }
        }
        let bytes = dir_bytes(&self.out);
        *cache = Some((Instant::now(), bytes));
        bytes
    }
}

/// Sizes of the files below `dir` (not following symbolic links), each inode once:
/// snapshots are hard links to the recording's files.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = ahash::AHashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
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
        assert!(out.contains(families::RETRANSMITTED_SEGMENTS));
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
