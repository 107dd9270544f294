//! From kernel events to rows: the state the per-kind handlers (`retransmits.rs`,
//! `state_changes.rs`, …) share — clock, addresses, sockets, filters — and the rows
//! they produce until the next flush.

use ahash::{AHashMap as HashMap, AHashSet as HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use tcpfr_schema::{Batcher, Str, TableId};

use crate::clock::Clock;
use crate::filter::Filter;
use crate::net::AddrCache;
use crate::procinfo::Owner;
use crate::socket_table::SocketTable;

/// Rows per batch: small enough that builder memory is reused, big enough that
/// per-batch costs vanish.
const BATCH_ROWS: usize = 32 * 1024;

macro_rules! rows {
    ($($id:ident $name:ident $row:path;)*) => {
        /// Event rows produced since the last flush, appended straight into Arrow
        /// builders (no row vectors to move around: this is the hot path).
        pub struct Rows {
            $(pub $name: Batcher<$row>,)*
        }

        impl Default for Rows {
            fn default() -> Self {
                Rows { $($name: Batcher::new(BATCH_ROWS),)* }
            }
        }

        /// Rows of one flush, as batches per event table.
        #[derive(Default)]
        pub struct Batches {
            $(pub $name: Vec<RecordBatch>,)*
        }

        impl Rows {
            /// The rows so far as batches.
            pub fn finish(&mut self) -> Batches {
                Batches { $($name: self.$name.finish(),)* }
            }
        }

        impl Batches {
            /// Rows per event table, in [`TableId::ALL`] order (the others count 0).
            pub fn rows(&self) -> [u64; TableId::COUNT] {
                let n = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                let mut c = [0; TableId::COUNT];
                $(c[TableId::$id.index()] = n(&self.$name);)*
                c
            }

            /// Hands the batches to the recording writer.
            pub fn push_into(self, w: &mut tcpfr_schema::write::RecordingWriter) {
                $(self.$name.into_iter().for_each(|b| w.$name.push_batch(b));)*
            }
        }
    };
}
tcpfr_schema::for_each_event_table!(rows);

/// Per-stream counts since the last `recorder_stats` row.
#[derive(Default, Debug, Clone, Copy)]
pub struct StreamCounts {
    pub seen: [u64; TableId::COUNT],
    pub filtered: [u64; TableId::COUNT],
    /// Retransmitted segments the kernel counted (a socket's total_retrans grew by more
    /// than its events say) for which no event came, and in how many places.
    pub unseen_retrans_segs: u64,
    pub unseen_retrans_gaps: u64,
}

pub struct Enricher {
    pub host: Str,
    pub clock: Clock,
    pub addrs: AddrCache,
    pub sockets: SocketTable,
    pub filter: Filter,
    /// Which tables to write (indexes of `stream`).
    pub enabled: [bool; TableId::COUNT],
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
    /// The kernel's HZ, to turn TCP's chrono counters (jiffies) into time.
    pub hz: Option<u32>,
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
            enabled: [true; TableId::COUNT],
            reset_reasons: HashMap::new(),
            rows: Rows::default(),
            counts: StreamCounts::default(),
            undecodable: 0,
            netns_seen: HashSet::new(),
            total_retrans_known: true,
            hz: None,
            names: HashMap::new(),
        }
    }

    /// A shared string for one of our fixed names (states, kinds, …).
    pub fn name(&mut self, s: &'static str) -> Str {
        self.names.entry(s).or_insert_with(|| Arc::from(s)).clone()
    }

    /// Whether a row of `table` about this socket is kept (enabled and not filtered);
    /// counts it as filtered otherwise.
    pub fn keep(&mut self, table: TableId, ends: &crate::net::Endpoints, owner: Option<&Owner>) -> bool {
        if !self.enabled[table.index()] {
            return false;
        }
        if self.filter.is_empty() || self.filter.keeps(ends, owner) {
            true
        } else {
            self.counts.filtered[table.index()] += 1;
            false
        }
    }

    /// Takes the rows produced so far.
    pub fn take_rows(&mut self) -> Batches {
        self.rows.finish()
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
