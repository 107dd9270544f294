//! From kernel events to rows: the state the per-kind handlers (`retransmits.rs`,
//! `state_changes.rs`, …) share — clock, addresses, sockets, filters — and the rows
//! they produce until the next flush.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::resets::Reset;
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::rtt_samples::RttSample;
use tcpfr_schema::state_changes::StateChange;
use tcpfr_schema::Str;

use crate::clock::Clock;
use crate::events::Event;
use crate::filter::Filter;
use crate::net::AddrCache;
use crate::procinfo::Owner;
use crate::sockets::SocketTable;

/// Index of each table in `tcpfr_schema::TABLES` (and in per-stream counters).
pub mod stream {
    pub const RETRANSMITS: usize = 0;
    pub const STATE_CHANGES: usize = 1;
    pub const RESETS: usize = 2;
    pub const RTT_SAMPLES: usize = 3;
    pub const FLOWS: usize = 4;
    pub const HOST_COUNTERS: usize = 5;
    pub const RECORDER_STATS: usize = 6;
}

/// Event rows produced since the last flush.
#[derive(Default)]
pub struct Rows {
    pub retransmits: Vec<Retransmit>,
    pub state_changes: Vec<StateChange>,
    pub resets: Vec<Reset>,
    pub rtt_samples: Vec<RttSample>,
    pub flows: Vec<Flow>,
}

/// Per-stream counts since the last `recorder_stats` row.
#[derive(Default, Debug, Clone, Copy)]
pub struct StreamCounts {
    pub seen: [u64; 7],
    pub filtered: [u64; 7],
}

pub struct Enricher {
    pub host: Str,
    pub clock: Clock,
    pub addrs: AddrCache,
    pub sockets: SocketTable,
    pub filter: Filter,
    /// Which tables to write (indexes of `stream`).
    pub enabled: [bool; 7],
    /// `enum sk_rst_reason` names of this kernel.
    pub reset_reasons: HashMap<u32, Str>,
    pub rows: Rows,
    pub counts: StreamCounts,
    /// Records the ring delivered that we could not decode.
    pub undecodable: u64,
    /// Network namespaces seen in events (host counters follow them).
    pub netns_seen: HashSet<u32>,
    /// Whether retransmit events carry the socket's total_retrans (BTF had it).
    pub total_retrans_known: bool,
    names: HashMap<&'static str, Str>,
}

impl Enricher {
    pub fn new(host: &str, clock: Clock, sockets: SocketTable, filter: Filter) -> Self {
        Enricher {
            host: Arc::from(host),
            clock,
            addrs: AddrCache::default(),
            sockets,
            filter,
            enabled: [true; 7],
            reset_reasons: HashMap::new(),
            rows: Rows::default(),
            counts: StreamCounts::default(),
            undecodable: 0,
            netns_seen: HashSet::new(),
            total_retrans_known: true,
            names: HashMap::new(),
        }
    }

    /// A shared string for one of our fixed names (states, kinds, …).
    pub fn name(&mut self, s: &'static str) -> Str {
        self.names.entry(s).or_insert_with(|| Arc::from(s)).clone()
    }

    /// Handles one ring-buffer record.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        match crate::events::decode(bytes) {
            Some(ev) => self.handle(&ev),
            None => self.undecodable += 1,
        }
    }

    pub fn handle(&mut self, ev: &Event) {
        let ns = ev.header().netns;
        if ns != 0 {
            self.netns_seen.insert(ns);
        }
        match ev {
            Event::Retransmit(e) => crate::retransmits::handle(self, e),
            Event::StateChange(e) => crate::state_changes::handle(self, e),
            Event::Reset(e) => crate::resets::handle(self, e),
            Event::RttSample(e) => crate::rtt_samples::handle(self, e),
            Event::FlowCounters(e) => crate::flows::handle_counters(self, e),
        }
    }

    /// Whether a row of `stream` about this socket is kept (enabled and not filtered);
    /// counts it as filtered otherwise.
    pub fn keep(&mut self, stream: usize, ends: &crate::net::Endpoints, owner: Option<&Owner>) -> bool {
        if !self.enabled[stream] {
            return false;
        }
        if self.filter.is_empty() || self.filter.keeps(ends, owner) {
            true
        } else {
            self.counts.filtered[stream] += 1;
            false
        }
    }

    /// Takes the rows produced so far.
    pub fn take_rows(&mut self) -> Rows {
        std::mem::take(&mut self.rows)
    }
}

/// The owner columns of a row.
pub struct OwnerCols {
    pub pid: Option<i32>,
    pub comm: Option<Str>,
    pub cgroup_id: Option<i64>,
    pub cgroup: Option<Str>,
    pub container_id: Option<Str>,
}

pub fn owner_cols(o: Option<&Arc<Owner>>) -> OwnerCols {
    match o {
        Some(o) => OwnerCols {
            pid: Some(o.pid),
            comm: Some(o.comm.clone()),
            cgroup_id: o.cgroup_id,
            cgroup: o.cgroup.clone(),
            container_id: o.container_id.clone(),
        },
        None => OwnerCols {
            pid: None,
            comm: None,
            cgroup_id: None,
            cgroup: None,
            container_id: None,
        },
    }
}

/// 0 means "could not read" in kernel events.
pub fn nonzero(ns: u32) -> Option<u32> {
    (ns != 0).then_some(ns)
}
