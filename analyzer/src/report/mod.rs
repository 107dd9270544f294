//! `tcpfr report`: the canned questions answered in plain words — what stands out in a
//! recording, and how much of it can be trusted.

use std::fmt::Write as _;

use anyhow::Result;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;

use crate::canned;
use crate::dataset::Dataset;
use crate::env::Env;
use crate::print::for_terminal;
use crate::services::ServiceMap;
use crate::window::Window;

mod causes;

/// Rows of a result as strings / numbers by column name.
pub struct Rows {
    batches: Vec<RecordBatch>,
}

impl Rows {
    pub fn from_batches(batches: Vec<RecordBatch>) -> Rows {
        Rows { batches }
    }

    pub fn len(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    fn locate(&self, mut row: usize) -> Option<(&RecordBatch, usize)> {
        for b in &self.batches {
            if row < b.num_rows() {
                return Some((b, row));
            }
            row -= b.num_rows();
        }
        None
    }

    fn cell(&self, row: usize, col: &str, dt: &DataType) -> Option<std::sync::Arc<dyn Array>> {
        let (b, r) = self.locate(row)?;
        let a = b.column_by_name(col)?;
        let a = cast(&a.slice(r, 1), dt).ok()?;
        (!a.is_null(0)).then_some(a)
    }

    pub fn str(&self, row: usize, col: &str) -> Option<String> {
        let a = self.cell(row, col, &DataType::Utf8)?;
        Some(a.as_any().downcast_ref::<datafusion::arrow::array::StringArray>()?.value(0).to_string())
    }

    pub fn f64(&self, row: usize, col: &str) -> Option<f64> {
        let a = self.cell(row, col, &DataType::Float64)?;
        Some(a.as_any().downcast_ref::<datafusion::arrow::array::Float64Array>()?.value(0))
    }

    pub fn i64(&self, row: usize, col: &str) -> Option<i64> {
        self.f64(row, col).map(|v| v.round() as i64)
    }

    /// An integer column read exactly (timestamps as ns), not through f64.
    pub fn int(&self, row: usize, col: &str) -> Option<i64> {
        let a = self.cell(row, col, &DataType::Int64)?;
        Some(a.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>()?.value(0))
    }
}

pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Rows> {
    let (_, batches) = crate::exec::run(ctx, sql, "report").await?;
    Ok(Rows { batches })
}

/// Runs part `part` (1-based) of a canned question.
pub async fn canned_part(ctx: &SessionContext, name: &str, part: usize, params: &canned::Params) -> Result<Rows> {
    let q = canned::get(name).expect("built-in question");
    let stmts = q.render(params)?;
    query(ctx, &stmts[part - 1].1).await
}

pub fn fmt_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

pub(crate) fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", group_digits(n), if n == 1 { one } else { many })
}

pub fn group_digits(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn ms(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.1} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// The findings, as text (also used by the HTML report).
pub async fn findings(ctx: &SessionContext, ds: &Dataset, window: &Window) -> Result<Vec<String>> {
    let range_s = window.range_seconds(ds.time_range);
    let params = canned::Params { by: Some("service".into()), window: None, limit: Some(5), range_s, service: crate::session::service_sql(ctx), several_hosts: false };
    let mut out = Vec::new();

    // Retransmits: volume, the kernel's own rate, and where they are.
    let total = query(
        ctx,
        "SELECT sum(segments) AS segs, count(DISTINCT socket_id) AS conns FROM retransmits WHERE counted",
    )
    .await?;
    let segs = total.i64(0, "segs").unwrap_or(0);
    let host = query(
        ctx,
        "SELECT host, coalesce(netns_name, CAST(netns AS VARCHAR)) AS ns, sum(retrans_segs) AS r, sum(out_segs) AS o \
         FROM host_counters GROUP BY 1, 2 HAVING sum(retrans_segs) > 0 ORDER BY r DESC, host, ns LIMIT 3",
    )
    .await?;
    let several_hosts = ds.hosts().len() > 1;
    if segs > 0 {
        let mut s = format!(
            "{} retransmitted on {}",
            plural(segs, "segment", "segments"),
            plural(total.i64(0, "conns").unwrap_or(0), "connection", "connections")
        );
        for i in 0..host.len() {
            let (r, o) = (host.i64(i, "r").unwrap_or(0), host.i64(i, "o").unwrap_or(0));
            if o > 0 {
                let _ = write!(
                    s,
                    "; retransmit rate in {} {:.2}% (ΔRetransSegs {} ÷ ΔOutSegs {}{})",
                    // The namespace, and with several hosts whose (the root one is "host" on each).
                    if several_hosts {
                        format!("{} ({})", host.str(i, "ns").unwrap_or_default(), host.str(i, "host").unwrap_or_default())
                    } else {
                        host.str(i, "ns").unwrap_or_default()
                    },
                    100.0 * r as f64 / o as f64,
                    group_digits(r),
                    group_digits(o),
                    if r > o { ": hardly anything got through" } else { "" }
                );
            }
        }
        out.push(s + ".");
        let peers = canned_part(ctx, "hotspots", 2, &params).await?;
        for i in 0..peers.len().min(2) {
            let share = peers.f64(i, "retrans_share_pct").unwrap_or(0.0);
            let r = peers.i64(i, "retrans_segs").unwrap_or(0);
            if r == 0 || (i > 0 && share < 10.0) {
                break;
            }
            out.push(format!(
                "{share:.0}% of retransmitted segments ({}) are on connections to {} ({}) from {}.",
                group_digits(r),
                peers.str(i, "peer").unwrap_or_default(),
                peers.str(i, "service").unwrap_or_default(),
                peers.str(i, "processes").filter(|p| !p.is_empty()).unwrap_or_else(|| "unknown processes".into())
            ));
        }
        let peak = canned_part(ctx, "timeline", 1, &canned::Params { window: Some(std::time::Duration::from_secs(1)), ..params_clone(&params) }).await?;
        let mut best: Option<(i64, String)> = None;
        for i in 0..peak.len() {
            if peak.str(i, "kind").is_some_and(|k| k.starts_with("retransmit_") && k != "retransmit_failed") {
                let n = peak.i64(i, "events").unwrap_or(0);
                if best.as_ref().is_none_or(|(b, _)| n > *b) {
                    best = Some((n, peak.str(i, "window_start").unwrap_or_default()));
                }
            }
        }
        if let Some((n, at)) = best {
            out.push(format!("Busiest second: {} retransmitted segments at {at}.", group_digits(n)));
        }
        out.extend(causes::retransmits(ctx, &params).await?);
    } else {
        out.push("No retransmissions.".into());
    }
    out.extend(causes::listeners(ctx, &params).await?);
    out.extend(causes::local_drops(ctx, &params).await?);
    out.extend(causes::limits(ctx, &params).await?);

    // Handshakes.
    let failed = canned_part(ctx, "handshakes", 1, &params).await?;
    for i in 0..failed.len().min(4) {
        let n = failed.i64(i, "attempts").unwrap_or(0);
        let cause = failed.str(i, "cause").unwrap_or_default();
        let were = if n == 1 { "was" } else { "were" };
        let what = match cause.as_str() {
            "timeout" => "timed out (no answer to the SYNs)".to_string(),
            "refused" => format!("{were} refused (reset in reply to the SYN)"),
            "abandoned" => format!("{were} given up by the application while connecting"),
            "unreachable" => "failed: host or network unreachable".to_string(),
            "filtered" => format!("{were} blocked by this host's own firewall (its SYNs dropped on the way out)"),
            _ => "failed".to_string(),
        };
        out.push(format!(
            "Handshake failures: {} {what}; clients waited {} on average (up to {}), {} SYN retransmits in all.",
            attempts_to(n, &failed.str(i, "destination").unwrap_or_default(), &failed.str(i, "service").unwrap_or_default(), &failed.str(i, "processes").unwrap_or_default()),
            ms(failed.f64(i, "avg_wait_ms").unwrap_or(0.0) * 1e6),
            ms(failed.f64(i, "max_wait_ms").unwrap_or(0.0) * 1e6),
            failed.i64(i, "syn_retransmits").unwrap_or(0)
        ));
    }
    let slow = canned_part(ctx, "handshakes", 2, &params).await?;
    for i in 0..slow.len().min(2) {
        out.push(format!(
            "Slow handshakes: {} to {} ({}) needed SYN retransmits and took {} on average.",
            plural(slow.i64(i, "connections").unwrap_or(0), "connection", "connections"),
            slow.str(i, "destination").unwrap_or_default(),
            slow.str(i, "service").unwrap_or_default(),
            ms(slow.f64(i, "avg_wait_ms").unwrap_or(0.0) * 1e6)
        ));
    }
    let synack = canned_part(ctx, "handshakes", 4, &params).await?;
    for i in 0..synack.len().min(2) {
        out.push(format!(
            "Our listener {} ({}) retransmitted {} to {}.",
            synack.str(i, "listener").unwrap_or_default(),
            synack.str(i, "service").unwrap_or_default(),
            plural(synack.i64(i, "synack_retransmits").unwrap_or(0), "SYN-ACK", "SYN-ACKs"),
            plural(synack.i64(i, "clients").unwrap_or(0), "client", "clients")
        ));
    }

    // Resets.
    let resets = canned_part(ctx, "resets", 1, &params).await?;
    for i in 0..resets.len().min(3) {
        let dir = resets.str(i, "direction").unwrap_or_default();
        let n = resets.i64(i, "resets").unwrap_or(0);
        let state = resets.str(i, "state").unwrap_or_default();
        let reason = resets.str(i, "reason").filter(|r| !r.is_empty()).map(|r| format!(", reason {r}")).unwrap_or_default();
        let (local, remote) = (resets.str(i, "local").unwrap_or_default(), resets.str(i, "remote").unwrap_or_default());
        let service = resets.str(i, "service").unwrap_or_default();
        out.push(if dir == "received" {
            let meaning = if state == "SYN_SENT" { " while connecting: connection refused" } else { "" };
            // The service is ours (it may be our process's name when no rule or port names
            // one), so it goes with our side, and the peer is named by its address and port.
            format!(
                "{remote} reset {} ({service}, from {local}) in {state}{meaning}{reason}.",
                plural(n, "connection of ours", "connections of ours")
            )
        } else {
            let on = if state == "(no socket)" { "without a socket (nothing listening there)".to_string() } else { format!("in {state}") };
            format!("We sent {} from {local} ({service}) to {remote} {on}{reason}.", plural(n, "reset", "resets"))
        });
    }

    out.extend(rtt_tail(ctx).await?);
    Ok(out)
}

/// "4 connection attempts to 10.66.0.34:5432 (postgres)", or, when the service is only
/// our own process's name (no rule and no well-known port named it), "… from webapp to
/// 10.66.0.34:6380": a service in parentheses after a destination reads as the
/// destination's.
fn attempts_to(n: i64, destination: &str, service: &str, processes: &str) -> String {
    let attempts = plural(n, "connection attempt", "connection attempts");
    if processes.split(", ").any(|p| p == service) {
        format!("{attempts} from {service} to {destination}")
    } else {
        format!("{attempts} to {destination} ({service})")
    }
}

/// Samples a service needs before its p99 is called a tail: with fewer, the p99 is
/// one of a handful of values.
const RTT_TAIL_MIN_SAMPLES: i64 = 20;

/// The service with the worst RTT tail, among those with enough samples to have one.
async fn rtt_tail(ctx: &SessionContext) -> Result<Option<String>> {
    let rtt = query(
        ctx,
        &format!(
            "SELECT service, count(*) AS n, approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY srtt_us) AS p50, \
             approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY srtt_us) AS p99 FROM rtt_samples GROUP BY 1 \
             HAVING count(*) >= {RTT_TAIL_MIN_SAMPLES} ORDER BY p99 DESC, service LIMIT 1"
        ),
    )
    .await?;
    if rtt.len() > 0 {
        return Ok(Some(format!(
            "Highest RTT tail: {} at p99 {} (p50 {}, {} samples).",
            rtt.str(0, "service").unwrap_or_default(),
            us(rtt.f64(0, "p99").unwrap_or(0.0)),
            us(rtt.f64(0, "p50").unwrap_or(0.0)),
            group_digits(rtt.i64(0, "n").unwrap_or(0))
        )));
    }
    let all = query(
        ctx,
        "SELECT count(*) AS n, approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY srtt_us) AS p50, max(srtt_us) AS hi FROM rtt_samples",
    )
    .await?;
    let n = all.i64(0, "n").unwrap_or(0);
    Ok((n > 0).then(|| {
        format!(
            "RTT: {} in all (p50 {}, highest {}), too few per service for a tail.",
            plural(n, "sample", "samples"),
            us(all.f64(0, "p50").unwrap_or(0.0)),
            us(all.f64(0, "hi").unwrap_or(0.0))
        )
    }))
}

fn params_clone(p: &canned::Params) -> canned::Params {
    canned::Params { by: p.by.clone(), window: p.window, limit: p.limit, range_s: p.range_s, service: p.service.clone(), several_hosts: p.several_hosts }
}

/// What the recording itself says about its completeness.
pub async fn data_quality(ctx: &SessionContext) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let lost = query(
        ctx,
        "SELECT stream, sum(events_lost) AS lost, sum(events_seen) AS seen FROM recorder_stats \
         WHERE stream <> 'recorder' GROUP BY 1 HAVING sum(events_lost) > 0 ORDER BY 2 DESC, 1",
    )
    .await?;
    for i in 0..lost.len() {
        out.push(format!(
            "{} {} events were lost (of {} seen): counts in that table are lower than the truth.",
            group_digits(lost.i64(i, "lost").unwrap_or(0)),
            lost.str(i, "stream").unwrap_or_default(),
            group_digits(lost.i64(i, "seen").unwrap_or(0))
        ));
    }
    let gaps = query(ctx, "SELECT count(*) AS n FROM recorder_stats WHERE gap_start IS NOT NULL").await?;
    if gaps.i64(0, "n").unwrap_or(0) > 0 {
        out.push(format!(
            "{} in the recording (recorder not running or not writing); see recorder_stats.note.",
            plural(gaps.i64(0, "n").unwrap_or(0), "gap", "gaps")
        ));
    }
    let owners = query(
        ctx,
        "SELECT count(*) AS n, count(*) FILTER (WHERE pid IS NULL) AS unknown FROM retransmits",
    )
    .await?;
    let (n, unknown) = (owners.i64(0, "n").unwrap_or(0), owners.i64(0, "unknown").unwrap_or(0));
    if unknown > 0 {
        out.push(format!("{} of {} retransmits are on sockets whose owning process is unknown.", group_digits(unknown), group_digits(n)));
    }
    Ok(out)
}

pub async fn run(env: &Env, ds: &Dataset, window: &Window, services: &ServiceMap) -> Result<()> {
    let ctx = crate::session::context(env, ds, window, services).await?;
    let mut text = String::new();
    let hosts = ds.hosts();
    // Everything recorded (host and kernel names, the findings' processes, services,
    // reasons) goes through for_terminal: this text is for a terminal.
    let hosts: Vec<_> = hosts.iter().map(|h| for_terminal(h)).collect();
    let _ = writeln!(text, "tcpfr report — {} recording(s), host(s): {}", ds.recordings.len(), if hosts.is_empty() { "?".into() } else { hosts.join(", ") });
    let mut kernels: Vec<String> = ds.recordings.iter().filter_map(|r| r.manifest.kernel.clone()).collect();
    kernels.sort();
    kernels.dedup();
    if !kernels.is_empty() {
        let _ = writeln!(text, "kernel: {}", for_terminal(&kernels.join(", ")));
    }
    if let Some((a, b)) = ds.time_range {
        let from = window.from.unwrap_or(a).max(a);
        let to = window.to.map(|t| t - 1).unwrap_or(b).min(b);
        let local = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).with_timezone(&chrono::Local).format("%H:%M:%S %Z").to_string();
        let _ = writeln!(text, "time: {} → {} ({:.1} s; local {} → {})", fmt_ns(from), fmt_ns(to), (to - from) as f64 / 1e9, local(from), local(to));
    }
    if let Some(src) = &services.source {
        let _ = writeln!(text, "services map: {}", for_terminal(&src.display().to_string()));
    }
    text.push('\n');
    let quality = data_quality(&ctx).await?;
    let findings = findings(&ctx, ds, window).await?;
    text.push_str("What stands out:\n");
    for f in &findings {
        let _ = writeln!(text, "  • {}", for_terminal(f));
    }
    text.push_str("\nData quality:\n");
    if quality.is_empty() {
        text.push_str("  • Complete: no events lost, no gaps.\n");
    }
    for q in &quality {
        let _ = writeln!(text, "  • {}", for_terminal(q));
    }
    // From the list of canned questions, so a new one is named here too.
    let names: Vec<&str> = canned::all().into_iter().map(|q| q.name).collect();
    let _ = writeln!(text, "\nDetails: tcpfr <question> REC (see tcpfr --help): {}.", names.join(", "));
    out!("{text}")?;
    Ok(())
}
