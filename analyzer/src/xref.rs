//! `tcpfr xref REC --pcap FILE`: the kernel's retransmits next to the wire's.
//!
//! A kernel event (`retransmits`, counted) stands for `segments` packets on the wire
//! from its local end to its remote end, of its kind: data (FIN included, as the
//! kernel counts it), SYN, or SYN-ACK from a listener; wire packets are matched only
//! with kernel events of the same kind. Wire retransmissions are tshark's
//! (`tcp.analysis.retransmission`) plus its out-of-order label, which at LAN RTTs it
//! gives to real retransmissions that follow the original closely. Retransmissions
//! the wire shows in the other direction were *received* from the peer: sender-side
//! tracepoints cannot see those, so they are labelled, not counted as misses.
//!
//! The capture's clock and the recording's are different clocks (even on one host the
//! recording's is the kernel's monotonic clock mapped to UTC at start): the offset is
//! estimated as the median difference between each kernel event and its nearest wire
//! retransmission on the same flow, then events are matched within a tolerance.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{Int32Type, TimestampNanosecondType, UInt16Type};
use datafusion::prelude::SessionContext;
use tcpfr_wire::analysis::label;

use crate::pcap::{addr, scan, segment_kind};
use crate::print::Output;

type End = (String, u16);
/// local, remote, kind (`data`, `syn`, `synack`).
type Key = (End, End, &'static str);

struct KernelEvent {
    t: i64,
    segments: u64,
    matched: u64,
}

struct WireEvent {
    t: i64,
    matched: bool,
}

#[derive(Default)]
struct Flow {
    kernel: Vec<KernelEvent>,
    sent: Vec<WireEvent>,
    received: u64,
    on_wire: bool,
}

pub async fn run(ctx: &SessionContext, pcaps: &[PathBuf], tolerance_ns: Option<i64>, out: &Output) -> Result<()> {
    let (batch, summary) = compute(ctx, pcaps, tolerance_ns).await?;
    out.write(Some("Retransmitted segments per flow and kind: kernel (recording) vs wire (capture)"), &batch.schema(), std::slice::from_ref(&batch))?;
    if out.format == crate::print::Format::Table {
        outln!()?;
    }
    out.write(
        Some("Clock offset (capture − recording, median over nearest pairs) and totals; kernel-only during the capture means capture drops or another capture point"),
        &summary.schema(),
        std::slice::from_ref(&summary),
    )?;
    Ok(())
}

/// The per-flow comparison and the one-row summary (also shown by the HTML report).
pub async fn compute(ctx: &SessionContext, pcaps: &[PathBuf], tolerance_ns: Option<i64>) -> Result<(RecordBatch, RecordBatch)> {
    let mut flows = kernel_events(ctx).await?;
    let span = add_wire_events(pcaps, crate::env::Env::of(ctx).progress, &mut flows)?;
    let clock = Clock::estimate(&flows, tolerance_ns);
    match_events(&mut flows, &clock);
    let (rows, missed) = flow_rows(&flows, span, clock.offset);
    Ok((flow_batch(&rows)?, summary_batch(&rows, &clock, missed)?))
}

/// The recording's counted retransmits, by flow and kind.
async fn kernel_events(ctx: &SessionContext) -> Result<BTreeMap<Key, Flow>> {
    let (_, batches) = crate::exec::run(
        ctx,
        "SELECT time, laddr, lport, raddr, rport, segments, kind FROM retransmits WHERE counted ORDER BY time",
        "kernel retransmits",
    )
    .await?;
    let mut flows: BTreeMap<Key, Flow> = BTreeMap::new();
    for b in &batches {
        let t = b.column(0).as_primitive::<TimestampNanosecondType>();
        // Strings come as views from the recording's tables.
        let text = |i: usize| datafusion::arrow::compute::cast(b.column(i), &datafusion::arrow::datatypes::DataType::Utf8);
        let (la, ra, kind) = (text(1)?, text(3)?, text(6)?);
        let (la, ra, kind) = (la.as_string::<i32>(), ra.as_string::<i32>(), kind.as_string::<i32>());
        let lp = b.column(2).as_primitive::<UInt16Type>();
        let rp = b.column(4).as_primitive::<UInt16Type>();
        let seg = b.column(5).as_primitive::<Int32Type>();
        for i in 0..b.num_rows() {
            let kind = match kind.value(i) {
                "syn" => "syn",
                "synack" => "synack",
                _ => "data",
            };
            flows
                .entry(((la.value(i).to_string(), lp.value(i)), (ra.value(i).to_string(), rp.value(i)), kind))
                .or_default()
                .kernel
                .push(KernelEvent { t: t.value(i), segments: seg.value(i).max(0) as u64, matched: 0 });
        }
    }
    Ok(flows)
}

/// Adds the captures' retransmissions to `flows` (sent ones by their flow, received
/// ones counted on the reverse flow) and marks which flows the captures saw at all;
/// returns the captures' time span.
fn add_wire_events(pcaps: &[PathBuf], progress: crate::progress::Progress, flows: &mut BTreeMap<Key, Flow>) -> Result<Option<(i64, i64)>> {
    let mut span: Option<(i64, i64)> = None;
    let mut wire: Vec<(Key, WireEvent)> = Vec::new();
    let mut seen: std::collections::HashSet<(End, End)> = Default::default();
    for p in pcaps {
        let (_, st) = scan(p, progress, |fr, s, l| {
            let src = (addr(s.src).0, s.sport);
            let dst = (addr(s.dst).0, s.dport);
            if seen.len() < 1_000_000 {
                seen.insert((src.clone(), dst.clone()));
            }
            let kind = match segment_kind(s.flags) {
                "data" | "fin" => "data",
                "syn" => "syn",
                "synack" => "synack",
                _ => return,
            };
            if l.is_retransmission() || l.bits & label::OUT_OF_ORDER != 0 {
                wire.push(((src, dst, kind), WireEvent { t: fr.ts_ns, matched: false }));
            }
        })
        .with_context(|| format!("reading capture {}", p.display()))?;
        if let (Some(a), Some(b)) = (st.first_ns, st.last_ns) {
            span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
    }
    for ((l, r, _), f) in flows.iter_mut() {
        f.on_wire = seen.contains(&(l.clone(), r.clone())) || seen.contains(&(r.clone(), l.clone()));
    }
    for (key, ev) in wire {
        let reversed = (key.1.clone(), key.0.clone(), key.2);
        if !flows.contains_key(&key) && flows.contains_key(&reversed) {
            flows.get_mut(&reversed).expect("checked").received += 1;
        } else {
            let f = flows.entry(key).or_default();
            f.on_wire = true;
            f.sent.push(ev);
        }
    }
    for f in flows.values_mut() {
        f.sent.sort_by_key(|e| e.t);
    }
    Ok(span)
}

/// The capture's clock against the recording's, and the tolerance of matching.
struct Clock {
    /// capture − recording, ns.
    offset: i64,
    /// Median absolute deviation of the differences, ns.
    spread: i64,
    samples: usize,
    tolerance: i64,
}

impl Clock {
    /// Offset: median of (wire − kernel) to the nearest wire retransmission within 2 s.
    fn estimate(flows: &BTreeMap<Key, Flow>, tolerance_ns: Option<i64>) -> Clock {
        let mut diffs: Vec<i64> = Vec::new();
        for f in flows.values() {
            for k in &f.kernel {
                let i = f.sent.partition_point(|w| w.t < k.t);
                let near = [i.checked_sub(1), Some(i)]
                    .into_iter()
                    .flatten()
                    .filter_map(|j| f.sent.get(j))
                    .map(|w| w.t - k.t)
                    .min_by_key(|d| d.abs());
                if let Some(d) = near.filter(|d| d.abs() < 2_000_000_000) {
                    diffs.push(d);
                }
            }
        }
        diffs.sort();
        let offset = diffs.get(diffs.len() / 2).copied().unwrap_or(0);
        let mut dev: Vec<i64> = diffs.iter().map(|d| (d - offset).abs()).collect();
        dev.sort();
        let spread = dev.get(dev.len() / 2).copied().unwrap_or(0);
        let tolerance = tolerance_ns.unwrap_or_else(|| (5 * spread).clamp(1_000_000, 100_000_000));
        Clock { offset, spread, samples: diffs.len(), tolerance }
    }
}

/// Each kernel event claims up to `segments` unclaimed wire packets nearest in time.
fn match_events(flows: &mut BTreeMap<Key, Flow>, clock: &Clock) {
    let tol = clock.tolerance;
    for f in flows.values_mut() {
        for k in f.kernel.iter_mut() {
            let t = k.t + clock.offset;
            let lo = f.sent.partition_point(|w| w.t < t - tol);
            let mut cands: Vec<usize> = (lo..f.sent.len()).take_while(|&j| f.sent[j].t <= t + tol).filter(|&j| !f.sent[j].matched).collect();
            cands.sort_by_key(|&j| (f.sent[j].t - t).abs());
            for j in cands.into_iter().take(k.segments as usize) {
                f.sent[j].matched = true;
                k.matched += 1;
            }
        }
    }
}

/// One row of the per-flow table.
struct FlowRow<'a> {
    key: &'a Key,
    kernel: u64,
    wire: u64,
    matched: u64,
    wire_only: u64,
    received: u64,
    note: String,
}

/// Unmatched kernel segments before, after and during the captures' span.
#[derive(Default)]
struct Missed {
    before: u64,
    after: u64,
    during: u64,
}

/// The per-flow rows, most retransmissions first, and where the unmatched kernel
/// segments fall against the captures' span.
fn flow_rows(flows: &BTreeMap<Key, Flow>, span: Option<(i64, i64)>, offset: i64) -> (Vec<FlowRow<'_>>, Missed) {
    let mut missed = Missed::default();
    let mut flows_sorted: Vec<(&Key, &Flow)> = flows.iter().collect();
    flows_sorted.sort_by_key(|(_, f)| std::cmp::Reverse(f.kernel.iter().map(|k| k.segments).sum::<u64>() + f.sent.len() as u64));
    let mut rows = Vec::new();
    for (key, f) in flows_sorted {
        let k: u64 = f.kernel.iter().map(|k| k.segments).sum();
        let m: u64 = f.kernel.iter().map(|k| k.matched).sum();
        let ws = f.sent.len() as u64;
        for e in f.kernel.iter().filter(|e| e.matched < e.segments) {
            let n = e.segments - e.matched;
            match span {
                Some((a, _)) if e.t + offset < a => missed.before += n,
                Some((_, b)) if e.t + offset > b => missed.after += n,
                _ => missed.during += n,
            }
        }
        let mut why = Vec::new();
        if k > 0 && !f.on_wire {
            why.push("flow not in the capture");
        }
        if f.received > 0 {
            why.push("received retransmissions: the peer's, invisible to sender-side tracepoints");
        }
        if k == 0 && ws > 0 {
            why.push("not in the recording (another host's flow, or outside the recording)");
        }
        let wire_only = ws - f.sent.iter().filter(|w| w.matched).count() as u64;
        rows.push(FlowRow { key, kernel: k, wire: ws, matched: m, wire_only, received: f.received, note: why.join("; ") });
    }
    (rows, missed)
}

fn counts(v: impl Iterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(v))
}

fn flow_batch(rows: &[FlowRow]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&FlowRow) -> String| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    Ok(RecordBatch::try_from_iter(vec![
        ("local", text(&|r| format!("{}:{}", r.key.0 .0, r.key.0 .1))),
        ("remote", text(&|r| format!("{}:{}", r.key.1 .0, r.key.1 .1))),
        ("kind", text(&|r| r.key.2.to_string())),
        ("kernel_segments", counts(rows.iter().map(|r| r.kernel))),
        ("wire_sent", counts(rows.iter().map(|r| r.wire))),
        ("matched", counts(rows.iter().map(|r| r.matched))),
        ("kernel_only", counts(rows.iter().map(|r| r.kernel - r.matched))),
        ("wire_only", counts(rows.iter().map(|r| r.wire_only))),
        ("wire_received", counts(rows.iter().map(|r| r.received))),
        ("note", text(&|r| r.note.clone())),
    ])?)
}

fn summary_batch(rows: &[FlowRow], clock: &Clock, missed: Missed) -> Result<RecordBatch> {
    let int = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
    let total = |f: fn(&FlowRow) -> u64| counts(std::iter::once(rows.iter().map(f).sum()));
    Ok(RecordBatch::try_from_iter(vec![
        ("clock_offset_ns", int(clock.offset)),
        ("offset_spread_ns", int(clock.spread)),
        ("offset_samples", counts(std::iter::once(clock.samples as u64))),
        ("tolerance_ns", int(clock.tolerance)),
        ("kernel_segments", total(|r| r.kernel)),
        ("matched", total(|r| r.matched)),
        ("kernel_only_before_capture", counts(std::iter::once(missed.before))),
        ("kernel_only_after_capture", counts(std::iter::once(missed.after))),
        ("kernel_only_during_capture", counts(std::iter::once(missed.during))),
        ("wire_only", total(|r| r.wire_only)),
        ("wire_received", total(|r| r.received)),
    ])?)
}
