//! `recorder_stats` rows: per interval and stream, what the kernel delivered, lost and
//! had filtered, and what was written — so that gaps are visible in the data.

use std::sync::atomic::Ordering;

use tcpfr_schema::raw::{counter, kind};
use tcpfr_schema::recorder_stats::{stream as rs_stream, RecorderStats};
use tcpfr_schema::{Str, TableId, UtcNanos};

use crate::enrich::StreamCounts;
use crate::writer_stats::WriterStats;

/// The table a kernel event kind feeds (for per-stream loss counts).
pub fn stream_of_kind(k: usize) -> Option<TableId> {
    Some(match k as u8 {
        kind::RETRANSMIT | kind::RETRANSMIT_SYNACK => TableId::Retransmits,
        kind::STATE_CHANGE => TableId::StateChanges,
        kind::RESET_SENT | kind::RESET_RECEIVED => TableId::Resets,
        kind::RTT_SAMPLE => TableId::RttSamples,
        kind::FLOW_COUNTERS | kind::FLOW_LIMITS => TableId::Flows,
        kind::LISTENER => TableId::Listeners,
        kind::DROP => TableId::Drops,
        _ => return None,
    })
}

/// Cumulative counters at the previous row, to turn totals into per-interval deltas.
#[derive(Default)]
pub struct StatsState {
    misses: std::collections::HashMap<String, u64>,
    lost: [u64; kind::COUNT],
    rate_limited: u64,
    walk_deferred: u64,
    written: [u64; TableId::COUNT],
    dropped: [u64; TableId::COUNT],
    last_ns: i64,
}

impl StatsState {
    pub fn new(start_ns: i64) -> Self {
        StatsState { last_ns: start_ns, ..Default::default() }
    }
}

/// What an interval's rows are made of. `lost`, `rate_limited` and `misses` are the
/// kernel's totals; [`StatsState`] turns them into this interval's share.
pub struct Inputs<'a> {
    pub host: &'a Str,
    pub now: i64,
    /// Events seen and filtered in user space during the interval.
    pub counts: &'a StreamCounts,
    /// Per event kind, the events the ring buffer had no room for.
    pub lost: [u64; kind::COUNT],
    /// RTT samples the programs did not send (rate limit).
    pub rate_limited: u64,
    /// RTT samples the socket walk put off to a later walk (the ring was crowded).
    pub walk_deferred: u64,
    /// Per program (by name), the runs the kernel skipped.
    pub misses: &'a [(String, u64)],
    pub writer: &'a WriterStats,
    /// The tables recorded (`--streams`): a row for each event table among them.
    pub enabled: &'a [bool; TableId::COUNT],
}

/// Builds this interval's rows.
pub fn rows(st: &mut StatsState, inputs: Inputs<'_>) -> Vec<RecorderStats> {
    let Inputs { host, now, counts, lost, rate_limited, walk_deferred, misses, writer, enabled } = inputs;
    let mut per_stream_lost = [0i64; TableId::COUNT];
    for (k, total) in lost.iter().enumerate() {
        if let Some(s) = stream_of_kind(k) {
            per_stream_lost[s.index()] += (total - st.lost[k]) as i64;
        }
    }
    st.lost = lost;
    // The kernel skips a program that is already running on the CPU (an interrupt
    // arrived while it ran): those events are lost too, and said so.
    let mut per_stream_missed = [0i64; TableId::COUNT];
    let mut probe_skipped = 0;
    for (name, total) in misses {
        let prev = st.misses.insert(name.clone(), *total).unwrap_or(0);
        let delta = total.saturating_sub(prev) as i64;
        for s in crate::programs::feeds(name) {
            per_stream_missed[s.index()] += delta;
        }
        if name == "tcp_probe" {
            probe_skipped += delta;
        }
    }
    let mut filtered = counts.filtered.map(|v| v as i64);
    filtered[TableId::RttSamples.index()] += (rate_limited - st.rate_limited) as i64;
    st.rate_limited = rate_limited;
    let deferred = walk_deferred.saturating_sub(st.walk_deferred) as i64;
    st.walk_deferred = walk_deferred;
    let interval = now - st.last_ns;
    st.last_ns = now;
    let mut out = Vec::new();
    for table in TableId::ALL.into_iter().filter(|t| t.is_event() && enabled[t.index()]) {
        let i = table.index();
        let written = writer.rows_written[i].load(Ordering::Relaxed);
        let dropped = writer.rows_dropped[i].load(Ordering::Relaxed);
        out.push(RecorderStats {
            host: host.clone(),
            time: UtcNanos(now),
            interval_ns: interval,
            stream: Str::from(table.name()),
            events_seen: counts.seen[i] as i64,
            events_lost: per_stream_lost[i] + per_stream_missed[i] + retrans_only(table, counts.unseen_retrans_gaps as i64),
            events_filtered: filtered[i],
            rows_written: (written - st.written[i]) as i64,
            rows_dropped: (dropped - st.dropped[i]) as i64,
            gap_start: None,
            gap_end: None,
            note: lost_note(
                per_stream_lost[i],
                per_stream_missed[i],
                rtt_only(table, probe_skipped),
                rtt_only(table, deferred),
                retrans_only(table, counts.unseen_retrans_segs as i64),
            ),
            shipped_files: None,
            shipped_bytes: None,
            unshipped_files: None,
            unshipped_bytes: None,
            ship_errors: None,
            ship_lost_files: None,
            ship_lost_bytes: None,
        });
        st.written[i] = written;
        st.dropped[i] = dropped;
    }
    out
}

fn rtt_only(table: TableId, n: i64) -> i64 {
    if table == TableId::RttSamples { n } else { 0 }
}

fn retrans_only(table: TableId, n: i64) -> i64 {
    if table == TableId::Retransmits { n } else { 0 }
}

fn lost_note(ring_full: i64, missed: i64, probe_skipped: i64, walk_deferred: i64, unseen_segments: i64) -> Option<Str> {
    let mut parts = Vec::new();
    if unseen_segments > 0 {
        parts.push(format!(
            "{unseen_segments} retransmitted segments the kernel counted came without an event (the kernel skipped the program; \
             flows.retrans_segs - retrans_segs_seen says which connections)"
        ));
    }
    if walk_deferred > 0 {
        parts.push(format!("{walk_deferred} samples put off to a later walk: the ring buffer was over half full (raise --ring-size)"));
    }
    if probe_skipped > 0 {
        parts.push(format!("{probe_skipped} ACKs not looked at: the sampling program was already running on that CPU"));
    }
    if ring_full > 0 {
        parts.push(format!("{ring_full} events lost: ring buffer full (raise --ring-size)"));
    }
    if missed > 0 {
        parts.push(format!("{missed} events skipped by the kernel: the program was already running on that CPU"));
    }
    (!parts.is_empty()).then(|| Str::from(parts.join("; ")))
}

/// A row about the recorder itself (start, stop, problems).
pub fn note(host: &Str, now: i64, text: String) -> RecorderStats {
    RecorderStats {
        host: host.clone(),
        time: UtcNanos(now),
        interval_ns: 0,
        stream: Str::from(rs_stream::RECORDER),
        events_seen: 0,
        events_lost: 0,
        events_filtered: 0,
        rows_written: 0,
        rows_dropped: 0,
        gap_start: None,
        gap_end: None,
        note: Some(Str::from(text)),
        shipped_files: None,
        shipped_bytes: None,
        unshipped_files: None,
        unshipped_bytes: None,
        ship_errors: None,
        ship_lost_files: None,
        ship_lost_bytes: None,
    }
}

/// A row saying that data may be missing from `gap_start` to `gap_end`, and why.
pub fn gap(host: &Str, gap_start: i64, gap_end: i64, text: String) -> RecorderStats {
    RecorderStats {
        gap_start: Some(UtcNanos(gap_start)),
        gap_end: Some(UtcNanos(gap_end)),
        ..note(host, gap_end, text)
    }
}

/// Index of the rate-limit counter, re-exported for the pipeline.
pub const RTT_RATE_LIMITED: u32 = counter::RTT_RATE_LIMITED;
/// Index of the counter of samples the walk put off.
pub const WALK_DEFERRED: u32 = counter::WALK_DEFERRED;

/// The `ship` row of an interval (`--ship`): the uploader's totals and what waits, the
/// last error (if any since the previous row) in `note`. `last_ns`: the previous row's time.
pub fn ship(last_ns: &mut i64, host: &Str, now: i64, s: &crate::ship::ShipStats) -> RecorderStats {
    let n = |a: &std::sync::atomic::AtomicU64| Some(a.load(Ordering::Relaxed) as i64);
    let error = s.last_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    let interval = now - *last_ns;
    *last_ns = now;
    RecorderStats {
        interval_ns: interval,
        stream: Str::from(rs_stream::SHIP),
        note: error.map(|e| Str::from(format!("upload error: {e}"))),
        shipped_files: n(&s.shipped_files),
        shipped_bytes: n(&s.shipped_bytes),
        unshipped_files: n(&s.unshipped_files),
        unshipped_bytes: n(&s.unshipped_bytes),
        ship_errors: n(&s.errors),
        ship_lost_files: n(&s.lost_files),
        ship_lost_bytes: n(&s.lost_bytes),
        ..note(host, now, String::new())
    }
}
