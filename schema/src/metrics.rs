//! The metric families computed from recordings: one contract for the recorder's live
//! `/metrics` (`tcpfr-recorder --metrics-listen`) and the analyzer's OpenMetrics export
//! (`tcpfr export openmetrics`), so that a series backfilled from a recording and the
//! same series scraped live carry the same name, type, unit, help and labels.
//!
//! Names are the OpenMetrics family names: a counter's samples add `_total` (which the
//! Prometheus text format also uses as the family's name: [`Family::text_name`]).
//! Each side computes the values its own way (live aggregation, SQL over the views);
//! only what a consumer sees is here. Families only the recorder has (its own health,
//! shipping) are the recorder's.

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
}

impl Kind {
    /// The type's name in both text formats.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    /// OpenMetrics family name (a counter's without `_total`).
    pub name: &'static str,
    pub kind: Kind,
    /// OpenMetrics unit (the name ends with it).
    pub unit: Option<&'static str>,
    pub help: &'static str,
    /// Labels, in the order series print them (`host` comes first in exports of several
    /// hosts; a scrape gets `instance` instead).
    pub labels: &'static [&'static str],
    /// A histogram's buckets: upper bounds in microseconds (integers compared with
    /// integers, so a value exactly on a bound falls in that bucket) and their `le`
    /// labels in OpenMetrics' canonical number form (`1.0`, not `1`), which both sides
    /// write: backfilled and scraped series must carry the same label text. `+Inf` is
    /// the count. Empty for counters.
    pub buckets: &'static [(u64, &'static str)],
}

impl Family {
    /// The name in the Prometheus text format: counters end in `_total` there.
    pub fn text_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Histogram => self.name.to_string(),
        }
    }
}

pub const RETRANSMITTED_SEGMENTS: Family = Family {
    name: "tcpfr_retransmitted_segments",
    kind: Kind::Counter,
    unit: Some("segments"),
    help: "Segments the kernel retransmitted and counted (as RetransSegs), by service, peer and kind (data, syn, synack)",
    labels: &["service", "peer", "kind"],
    buckets: &[],
};

pub const RETRANSMIT_CAUSES: Family = Family {
    name: "tcpfr_retransmitted_data_segments",
    kind: Kind::Counter,
    unit: Some("segments"),
    help: "Data segments the kernel retransmitted and counted, by cause: timeout (after an RTO: the connection stalled), fast (fast retransmit: duplicate ACKs, SACK), probe (tail loss probe), other",
    labels: &["service", "peer", "cause"],
    buckets: &[],
};

pub const RETRANSMIT_FAILURES: Family = Family {
    name: "tcpfr_retransmit_failures",
    kind: Kind::Counter,
    unit: None,
    help: "Retransmission attempts the kernel could not send and did not count (err != 0: EBUSY, EAGAIN, ...)",
    labels: &["service", "peer"],
    buckets: &[],
};

pub const HANDSHAKE_FAILURES: Family = Family {
    name: "tcpfr_handshake_failures",
    kind: Kind::Counter,
    unit: None,
    help: "Connections whose handshake failed, by role (client, server) and cause (timeout, refused, unreachable, abandoned, reset, failed)",
    labels: &["service", "peer", "role", "cause"],
    buckets: &[],
};

pub const CONNECT_DURATION: Family = Family {
    name: "tcpfr_connect_duration_seconds",
    kind: Kind::Histogram,
    unit: Some("seconds"),
    help: "How long our connect()s took to complete their handshake (SYN retransmits included), counted when the connection closes",
    labels: &["service", "peer"],
    buckets: &CONNECT_BUCKETS,
};

pub const RESETS: Family = Family {
    name: "tcpfr_resets",
    kind: Kind::Counter,
    unit: None,
    help: "TCP resets sent or received, by direction (sent, received)",
    labels: &["service", "peer", "direction"],
    buckets: &[],
};

pub const STATE_CHANGES: Family = Family {
    name: "tcpfr_state_changes",
    kind: Kind::Counter,
    unit: None,
    help: "TCP state transitions, by the new state (ESTABLISHED, CLOSE_WAIT, ...)",
    labels: &["service", "state"],
    buckets: &[],
};

pub const RTT: Family = Family {
    name: "tcpfr_rtt_seconds",
    kind: Kind::Histogram,
    unit: Some("seconds"),
    help: "Smoothed RTT (the kernel's srtt) of the recorded RTT samples",
    labels: &["service", "peer"],
    buckets: &RTT_BUCKETS,
};

pub const LOCAL_DROPS: Family = Family {
    name: "tcpfr_local_drop_packets",
    kind: Kind::Counter,
    unit: Some("packets"),
    help: "TCP packets this host dropped itself, by direction (in, out) and the kernel's reason (NETFILTER_DROP: a firewall rule, TCP_*: TCP's own checks, QDISC_DROP: a full queue, ...)",
    labels: &["peer", "direction", "reason"],
    buckets: &[],
};

pub const LISTENER_DROPS: Family = Family {
    name: "tcpfr_listener_drops",
    kind: Kind::Counter,
    unit: None,
    help: "Connection attempts (SYNs, final ACKs) a listener dropped because its accept queue was full, by listener (address:port)",
    labels: &["listener"],
    buckets: &[],
};

pub const HOST_OUT_SEGMENTS: Family = Family {
    name: "tcpfr_host_tcp_out_segments",
    kind: Kind::Counter,
    unit: Some("segments"),
    help: "Segments TCP sent, retransmissions excluded (the kernel's Tcp OutSegs), summed over the network namespaces recorded",
    labels: &[],
    buckets: &[],
};

pub const HOST_RETRANS_SEGMENTS: Family = Family {
    name: "tcpfr_host_tcp_retrans_segments",
    kind: Kind::Counter,
    unit: Some("segments"),
    help: "Segments TCP retransmitted (the kernel's Tcp RetransSegs), summed over the network namespaces recorded",
    labels: &[],
    buckets: &[],
};

/// Every family of the contract, in the order both sides print them.
pub const FAMILIES: [&Family; 12] = [
    &RETRANSMITTED_SEGMENTS,
    &RETRANSMIT_CAUSES,
    &RETRANSMIT_FAILURES,
    &HANDSHAKE_FAILURES,
    &CONNECT_DURATION,
    &RESETS,
    &STATE_CHANGES,
    &RTT,
    &LOCAL_DROPS,
    &LISTENER_DROPS,
    &HOST_OUT_SEGMENTS,
    &HOST_RETRANS_SEGMENTS,
];

/// The most buckets a histogram of the contract has.
pub const MAX_BUCKETS: usize = 16;

/// [`RTT`]'s buckets (see [`Family::buckets`]), compared with `srtt_us`.
pub const RTT_BUCKETS: [(u64, &str); 14] = [
    (100, "0.0001"),
    (250, "0.00025"),
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1.0"),
    (2_500_000, "2.5"),
];

/// [`CONNECT_DURATION`]'s buckets, compared with `handshake_ns / 1000`: a handshake
/// without loss takes about an RTT; one lost SYN adds the initial RTO (1 s), a second
/// one 2 s more.
pub const CONNECT_BUCKETS: [(u64, &str); 16] = [
    (250, "0.00025"),
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1.0"),
    (2_000_000, "2.0"),
    (4_000_000, "4.0"),
    (8_000_000, "8.0"),
    (16_000_000, "16.0"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_and_buckets_agree() {
        for f in FAMILIES {
            assert!(f.name.starts_with("tcpfr_") && !f.name.ends_with("_total"), "{}", f.name);
            if let Some(u) = f.unit {
                assert!(f.name.ends_with(u), "{}: unit {u} must end the name (OpenMetrics)", f.name);
            }
        }
        for f in FAMILIES {
            assert_eq!(f.kind == Kind::Histogram, !f.buckets.is_empty(), "{}", f.name);
            assert!(f.buckets.len() <= MAX_BUCKETS, "{}", f.name);
            assert!(f.buckets.windows(2).all(|w| w[0].0 < w[1].0), "{}: increasing bounds", f.name);
            for (us, le) in f.buckets {
                assert_eq!((le.parse::<f64>().unwrap() * 1e6).round(), *us as f64, "{le}");
                assert!(le.contains('.'), "{le}: canonical form");
            }
        }
    }
}
