//! `tcpfr report REC… --html FILE`: one self-contained HTML incident report.
//!
//! The page opens offline anywhere: no scripts, no fonts, no external CSS or images;
//! charts are inline SVG drawn by `chart`. Its size does not grow with the recording:
//! everything is aggregated in SQL first (time buckets chosen so a chart has at most
//! [`MAX_BUCKETS`] points per series, at most [`MAX_SERIES`] series, top-N tables), and
//! no raw row is embedded.
//!
//! Time charts show the question's window padded by its own length on both sides, with
//! the window shaded, so the incident is seen against what came before and after; the
//! findings, hotspots and tables are of the window only (as `tcpfr report`).

mod chart;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;

use crate::canned;
use crate::dataset::Dataset;
use crate::report::{self, group_digits, query, Rows};
use crate::services::ServiceMap;
use crate::window::Window;
use chart::{esc, Band, BarRow, Body, Mark, Series, TimeChart, GREY, PALETTE};

/// Most points per series on a time chart.
pub const MAX_BUCKETS: i64 = 600;
/// Most series on a chart (the rest are summed as "other").
pub const MAX_SERIES: usize = 8;
/// Services with an RTT chart.
const RTT_SERVICES: usize = 4;

/// Colour per service, the same on every chart.
#[derive(Default)]
struct Colors {
    map: BTreeMap<String, String>,
}

impl Colors {
    fn get(&mut self, name: &str) -> String {
        if name == "other" {
            return GREY.into();
        }
        let n = self.map.len();
        self.map.entry(name.to_string()).or_insert_with(|| PALETTE[n % PALETTE.len()].to_string()).clone()
    }
}

/// Fixed colours for categories that are not services.
fn cause_color(cause: &str) -> &'static str {
    match cause.trim_start_matches("inbound ") {
        "timeout" => "#d62728",
        "refused" => "#ff7f0e",
        "reset" => "#9467bd",
        "unreachable" => "#8c564b",
        "abandoned" => "#7f7f7f",
        "completed late" => "#bcbd22",
        "sent" => "#1f77b4",
        "received" => "#e377c2",
        _ => "#17becf",
    }
}

struct Page {
    body: String,
    colors: Colors,
    marks: Vec<Mark>,
    range: (i64, i64),
    local_offset_s: i32,
}

impl Page {
    fn section(&mut self, id: &str, title: &str, intro: &str) {
        let _ = write!(self.body, r#"<section id="{id}"><h2>{}</h2>"#, esc(title));
        if !intro.is_empty() {
            let _ = write!(self.body, r#"<p class="intro">{intro}</p>"#);
        }
    }

    fn end(&mut self) {
        self.body.push_str("</section>");
    }

    fn nodata(&mut self, id: &str, words: &str) {
        let _ = write!(self.body, r#"<p class="nodata" id="{id}">{}</p>"#, esc(words));
    }

    fn note(&mut self, words: &str) {
        let _ = write!(self.body, r#"<p class="quality">⚠ {}</p>"#, esc(words));
    }

    fn legend(&mut self, items: &[(String, String)]) {
        self.body.push_str(r#"<div class="legend">"#);
        for (name, color) in items {
            let _ = write!(self.body, r#"<span class="legend-item" data-series="{0}" style="--c:{1}">{0}</span>"#, esc(name), color);
        }
        self.body.push_str("</div>");
    }

    fn time_chart(&mut self, id: &str, y_label: &str, bucket: i64, body: Body, log_y: bool, height: u32) {
        let svg = TimeChart { id, y_label, range: self.range, bucket_ns: bucket, body, marks: &self.marks, log_y, height, local_offset_s: self.local_offset_s }.svg();
        self.body.push_str(&svg);
    }
}

/// The start of `col`'s bucket of `ns`, as ns since the epoch (times are after 1970,
/// so integer division floors).
fn bin(ns: i64, col: &str) -> String {
    format!("(CAST({col} AS BIGINT) / {ns}) * {ns}")
}

/// Series from rows of (t, name, value), in first-seen order.
fn series_of(rows: &Rows, key: &str, value: &str, color: &mut dyn FnMut(&str) -> String, scale: f64) -> Vec<Series> {
    let mut by: Vec<Series> = Vec::new();
    for i in 0..rows.len() {
        let name = rows.str(i, key).unwrap_or_else(|| "(unknown)".into());
        let (Some(t), Some(v)) = (rows.int(i, "t"), rows.f64(i, value)) else { continue };
        match by.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((t, v * scale)),
            None => by.push(Series { color: color(&name), name, points: vec![(t, v * scale)] }),
        }
    }
    by
}

fn table(rows: &Rows, cols: &[(&str, &str)], class: &str) -> String {
    let mut s = format!(r#"<div class="scroll"><table class="{class}"><thead><tr>"#);
    for (_, h) in cols {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for i in 0..rows.len() {
        s.push_str("<tr>");
        for (c, _) in cols {
            let v = rows.str(i, c).unwrap_or_default();
            let num = !v.is_empty() && v.parse::<f64>().is_ok();
            if v.chars().count() > 40 {
                let _ = write!(s, r#"<td title="{}">{}</td>"#, esc(&v), esc(&chart::truncate(&v, 40)));
            } else {
                let _ = write!(s, r#"<td{}>{}</td>"#, if num { r#" class="num""# } else { "" }, esc(&v));
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

fn batch_rows(b: &RecordBatch) -> Rows {
    Rows::from_batches(vec![b.clone()])
}

/// Writes the report of `ds` (the `window` of it) to `out`; returns its size in bytes.
pub async fn write(ds: &Dataset, window: &Window, services: &ServiceMap, pcaps: &[PathBuf], out: &Path) -> Result<u64> {
    let html = render(ds, window, services, pcaps).await?;
    std::fs::write(out, &html).with_context(|| format!("cannot write {} (check the directory exists and is writable)", out.display()))?;
    Ok(html.len() as u64)
}

pub async fn render(ds: &Dataset, window: &Window, services: &ServiceMap, pcaps: &[PathBuf]) -> Result<String> {
    let ctx = crate::session::context(ds, window, services).await?;
    let (lo, hi) = ds.time_range.unwrap_or((0, 1_000_000_000));
    let wf = window.from.unwrap_or(lo).max(lo);
    let wt = window.to.unwrap_or(hi + 1).min(hi + 1).max(wf + 1);
    let windowed = window.from.is_some() || window.to.is_some();
    // Charts: the window with as much again on each side (within the data).
    let range = if windowed { ((wf - (wt - wf)).max(lo), (wt + (wt - wf)).min(hi + 1)) } else { (lo, hi + 1) };
    let range = (range.0.min(wf), range.1.max(wt));
    let tctx = crate::session::context(ds, &Window { from: Some(range.0), to: Some(range.1) }, services).await?;
    crate::pcap::register(&tctx, pcaps)?;
    let bucket = chart::time_step(range.1 - range.0, MAX_BUCKETS);
    let local_offset_s = chrono::DateTime::from_timestamp_nanos(wf).with_timezone(&chrono::Local).offset().local_minus_utc();

    let mut marks = Vec::new();
    if windowed {
        marks.push(Mark { from: wf, to: Some(wt), label: format!("the window asked for: {} → {}", report::fmt_ns(wf), report::fmt_ns(wt)), class: "window" });
    }
    for r in &ds.recordings {
        if let Some(sn) = &r.manifest.snapshot {
            let p = |s: &str| tcpfr_schema::manifest::parse_rfc3339(s);
            if let (Some(a), Some(b)) = (p(&sn.window_start), p(&sn.window_end)) {
                marks.push(Mark { from: a, to: Some(b), label: format!("snapshot window ({}: {})", sn.source, sn.reason), class: "snapshot" });
            }
            if let Some(t) = p(&sn.trigger) {
                marks.push(Mark { from: t, to: None, label: format!("snapshot trigger: {}", sn.reason), class: "trigger" });
            }
        }
    }
    let gaps = query(&tctx, "SELECT CAST(gap_start AS BIGINT) AS a, CAST(gap_end AS BIGINT) AS b, coalesce(note, '') AS note FROM recorder_stats WHERE gap_start IS NOT NULL ORDER BY 1 LIMIT 200").await?;
    for i in 0..gaps.len() {
        if let Some(a) = gaps.int(i, "a") {
            marks.push(Mark { from: a, to: Some(gaps.int(i, "b").unwrap_or(a)), label: format!("gap in the recording: {}", gaps.str(i, "note").unwrap_or_default()), class: "gap" });
        }
    }
    // Events lost, per stream and bucket: marked on the charts they feed.
    let lost = query(
        &tctx,
        &format!("SELECT {} AS t, stream, sum(events_lost) AS lost FROM recorder_stats WHERE events_lost > 0 GROUP BY 1, 2 ORDER BY 1 LIMIT 2000", bin(bucket, "time")),
    )
    .await?;
    let mut lost_by: BTreeMap<String, (i64, Vec<i64>)> = BTreeMap::new();
    for i in 0..lost.len() {
        let e = lost_by.entry(lost.str(i, "stream").unwrap_or_default()).or_default();
        e.0 += lost.i64(i, "lost").unwrap_or(0);
        e.1.extend(lost.int(i, "t"));
    }

    let mut page = Page { body: String::new(), colors: Colors::default(), marks, range, local_offset_s };
    let range_s = crate::range_seconds(ds, window);
    let params = canned::Params { by: None, window: None, limit: None, range_s, service: crate::session::service_sql(&ctx), several_hosts: false };

    // Hotspots first: they fix the services' colours by importance.
    let hot = report::canned_part(&ctx, "hotspots", 1, &params).await?;
    for i in 0..hot.len() {
        page.colors.get(&hot.str(i, "service").unwrap_or_default());
    }

    // Header and findings.
    let hosts = ds.hosts();
    let title = format!("tcpfr report — {}", if hosts.is_empty() { "?".to_string() } else { hosts.join(", ") });
    let _ = write!(page.body, "<header><h1>{}</h1>", esc(&title));
    let when = |ns: i64| {
        let l = chrono::DateTime::from_timestamp_nanos(ns).with_timezone(&chrono::Local);
        format!("{} (local {})", report::fmt_ns(ns), l.format("%Y-%m-%d %H:%M:%S%.3f %:z"))
    };
    let _ = write!(page.body, r#"<p class="when">{} → {} · {:.1} s</p></header>"#, esc(&when(wf)), esc(&when(wt - 1)), (wt - wf) as f64 / 1e9);
    let findings = report::findings(&ctx, ds, window).await?;
    let quality = report::data_quality(&ctx).await?;
    page.section("findings", "What stands out", "The same findings as <code>tcpfr report</code>, for the window.");
    page.body.push_str("<ul>");
    for f in &findings {
        let _ = write!(page.body, "<li>{}</li>", esc(f));
    }
    page.body.push_str("</ul>");
    page.body.push_str(r#"<h3>Data quality</h3><ul class="quality-list">"#);
    if quality.is_empty() {
        page.body.push_str("<li>Complete: no events lost, no gaps.</li>");
    }
    for q in &quality {
        let _ = write!(page.body, "<li>{}</li>", esc(q));
    }
    page.body.push_str("</ul>");
    page.end();

    let lost_note = |page: &mut Page, stream: &str| {
        if let Some((n, _)) = lost_by.get(stream) {
            page.note(&format!("{} {stream} events were lost around this time (red ticks): the counts drawn here are lower than the truth.", group_digits(*n)));
        }
    };
    // Draws with the lost-event ticks of `stream` added to the marks.
    let with_marks = |page: &mut Page, stream: &str, f: &mut dyn FnMut(&mut Page)| {
        let extra: Vec<Mark> = lost_by
            .get(stream)
            .map(|(_, ts)| ts.iter().map(|t| Mark { from: *t, to: None, label: format!("{stream} events lost"), class: "lost" }).collect())
            .unwrap_or_default();
        let keep = page.marks.len();
        page.marks.extend(extra);
        f(page);
        page.marks.truncate(keep);
    };

    // Retransmits over time.
    page.section(
        "retransmits",
        "Retransmissions over time",
        &format!("Retransmitted segments per second by service (top {MAX_SERIES}; the rest as “other”), in buckets of {}.", esc(&humantime::format_duration(std::time::Duration::from_nanos(bucket as u64)).to_string())),
    );
    let rt = query(
        &tctx,
        &format!(
            "WITH b AS (SELECT {} AS t, coalesce(service, '(unknown)') AS s, sum(segments) AS n FROM retransmits WHERE counted GROUP BY 1, 2), \
             top AS (SELECT s FROM b GROUP BY 1 ORDER BY sum(n) DESC, 1 LIMIT {MAX_SERIES}) \
             SELECT b.t, CASE WHEN top.s IS NULL THEN 'other' ELSE b.s END AS service, sum(b.n) AS n FROM b LEFT JOIN top ON b.s = top.s GROUP BY 1, 2 ORDER BY 1",
            bin(bucket, "time")
        ),
    )
    .await?;
    let per_s = 1e9 / bucket as f64;
    let colors = &mut page.colors;
    let series = series_of(&rt, "service", "n", &mut |n| colors.get(n), per_s);
    if series.is_empty() {
        page.nodata("retransmits-nodata", "No retransmitted segments in this time range.");
    } else {
        page.legend(&series.iter().map(|s| (s.name.clone(), s.color.clone())).collect::<Vec<_>>());
        let series = fill_zero(series, bucket, page.range);
        with_marks(&mut page, "retransmits", &mut |p| p.time_chart("chart-retransmits", "segments / s", bucket, Body::Lines(series.iter().map(clone_series).collect()), false, 260));
        lost_note(&mut page, "retransmits");
    }
    // Host counters: the kernel's own rate.
    let hc_interval = query(&tctx, "SELECT max(interval_ns) AS i FROM host_counters").await?.int(0, "i").unwrap_or(0);
    // Counter intervals jitter around their setting (1.0006 s for 1 s): allow 5%.
    let want = bucket.max(hc_interval - hc_interval / 20);
    let hbucket = chart::TIME_STEPS.iter().copied().find(|s| *s >= want).unwrap_or(want);
    let hr = query(
        &tctx,
        &format!(
            "WITH top AS (SELECT host || ' ' || coalesce(netns_name, CAST(netns AS VARCHAR)) AS s FROM host_counters GROUP BY 1 HAVING sum(out_segs) > 0 ORDER BY sum(retrans_segs) DESC, 1 LIMIT {MAX_SERIES}) \
             SELECT {} AS t, host || ' ' || coalesce(netns_name, CAST(netns AS VARCHAR)) AS ns, 100.0 * sum(retrans_segs) / sum(out_segs) AS pct \
             FROM host_counters WHERE host || ' ' || coalesce(netns_name, CAST(netns AS VARCHAR)) IN (SELECT s FROM top) GROUP BY 1, 2 HAVING sum(out_segs) > 0 ORDER BY 1",
            // A row is the delta over the interval before its time.
            bin(hbucket, "(CAST(time AS BIGINT) - interval_ns)")
        ),
    )
    .await?;
    let _ = write!(
        page.body,
        r#"<h3>Host retransmit rate</h3><p class="intro">ΔRetransSegs ÷ ΔOutSegs from the kernel's counters (host_counters), per host and network namespace, in buckets of {}. Above 100% means more segments were re-sent than new ones got out.</p>"#,
        esc(&humantime::format_duration(std::time::Duration::from_nanos(hbucket as u64)).to_string())
    );
    let mut i = 0;
    let hseries = series_of(&hr, "ns", "pct", &mut |_| {
        i += 1;
        PALETTE[(PALETTE.len() - i % PALETTE.len()) % PALETTE.len()].to_string()
    }, 1.0);
    if hseries.is_empty() {
        page.nodata("hostrate-nodata", "No host counters with segments sent in this time range.");
    } else {
        page.legend(&hseries.iter().map(|s| (s.name.clone(), s.color.clone())).collect::<Vec<_>>());
        page.time_chart("chart-hostrate", "retransmitted % of sent", hbucket, Body::Lines(hseries), false, 220);
    }
    page.end();

    // Hotspots.
    page.section("hotspots", "Hotspots by service", "As <code>tcpfr hotspots</code>: retransmitted segments, resets and failed handshakes per service (services map applied).");
    if hot.len() == 0 {
        page.nodata("hotspots-nodata", "No retransmits, resets or failed handshakes in this window.");
    } else {
        let rows: Vec<BarRow> = (0..hot.len())
            .map(|i| {
                let name = hot.str(i, "service").unwrap_or_default();
                BarRow {
                    color: page.colors.get(&name),
                    values: vec![hot.f64(i, "retrans_segs").unwrap_or(0.0), hot.f64(i, "resets").unwrap_or(0.0), hot.f64(i, "failed_handshakes").unwrap_or(0.0)],
                    note: format!("{name}: processes {}", hot.str(i, "processes").unwrap_or_default()),
                    label: name,
                }
            })
            .collect();
        page.body.push_str(&chart::bars("chart-hotspots", &[("retrans_segs", "retransmitted segments"), ("resets", "resets"), ("failed_handshakes", "failed handshakes")], &rows));
        let owners = query(&ctx, "SELECT count(*) FILTER (WHERE pid IS NULL) AS unknown, count(*) AS n FROM retransmits").await?;
        if owners.i64(0, "unknown").unwrap_or(0) > 0 {
            page.note(&format!(
                "{} of {} retransmit events are on sockets whose owning process is unknown: their service comes from ports and addresses only.",
                group_digits(owners.i64(0, "unknown").unwrap_or(0)),
                group_digits(owners.i64(0, "n").unwrap_or(0))
            ));
        }
    }
    page.end();

    // Handshakes.
    page.section("handshakes", "Handshake outcomes over time", "Connections whose handshake failed, by cause (from <code>flows</code>, at the connection's start), and those that completed only after SYN retransmits. “inbound” = to our listeners.");
    let hs = query(
        &tctx,
        &format!(
            "SELECT {} AS t, CASE WHEN handshake = 'completed' THEN 'completed late' WHEN role = 'server' THEN 'inbound ' || handshake ELSE handshake END AS cause, count(*) AS n \
             FROM flows WHERE handshake IS NOT NULL AND (handshake <> 'completed' OR syn_retransmits > 0) GROUP BY 1, 2 ORDER BY 1, 2",
            bin(bucket, "coalesce(open_time, time)")
        ),
    )
    .await?;
    let hseries = series_of(&hs, "cause", "n", &mut |c| cause_color(c).to_string(), 1.0);
    let completed = query(&tctx, "SELECT count(*) AS n FROM flows WHERE handshake = 'completed' AND syn_retransmits = 0").await?.i64(0, "n").unwrap_or(0);
    if hseries.is_empty() {
        page.nodata("handshakes-nodata", &format!("No failed or slow handshakes in this time range ({} completed at once).", group_digits(completed)));
    } else {
        page.legend(&hseries.iter().map(|s| (s.name.clone(), s.color.clone())).collect::<Vec<_>>());
        let _ = write!(page.body, r#"<p class="intro">{} other handshakes completed at once.</p>"#, group_digits(completed));
        with_marks(&mut page, "flows", &mut |p| p.time_chart("chart-handshakes", "connections per bucket", bucket, Body::StackedBars(hseries.iter().map(clone_series).collect()), false, 220));
        lost_note(&mut page, "flows");
    }
    page.end();

    // Resets.
    page.section("resets", "Resets over time", "TCP resets we sent and received.");
    let rs = query(&tctx, &format!("SELECT {} AS t, direction, count(*) AS n FROM resets GROUP BY 1, 2 ORDER BY 1, 2", bin(bucket, "time"))).await?;
    let rseries = series_of(&rs, "direction", "n", &mut |c| cause_color(c).to_string(), 1.0);
    if rseries.is_empty() {
        page.nodata("resets-nodata", "No resets sent or received in this time range.");
    } else {
        page.legend(&rseries.iter().map(|s| (s.name.clone(), s.color.clone())).collect::<Vec<_>>());
        with_marks(&mut page, "resets", &mut |p| p.time_chart("chart-resets", "resets per bucket", bucket, Body::StackedBars(rseries.iter().map(clone_series).collect()), false, 200));
        lost_note(&mut page, "resets");
    }
    page.end();

    // RTT.
    page.section("rtt", "Round-trip time by service", &format!("Smoothed RTT (srtt) per service, top {RTT_SERVICES} by samples: the band spans p50 to p99, the solid line is p50, the dashed one p90 (log scale)."));
    let rtt = query(
        &tctx,
        &format!(
            "WITH top AS (SELECT coalesce(service, '(unknown)') AS s FROM rtt_samples GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {RTT_SERVICES}) \
             SELECT {} AS t, coalesce(service, '(unknown)') AS service, approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY srtt_us) AS p50, \
             approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY srtt_us) AS p90, approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY srtt_us) AS p99 \
             FROM rtt_samples WHERE coalesce(service, '(unknown)') IN (SELECT s FROM top) GROUP BY 1, 2 ORDER BY 2, 1",
            bin(bucket, "time")
        ),
    )
    .await?;
    let mut bands: Vec<Band> = Vec::new();
    for i in 0..rtt.len() {
        let name = rtt.str(i, "service").unwrap_or_default();
        let (Some(t), Some(a), Some(b), Some(c)) = (rtt.int(i, "t"), rtt.f64(i, "p50"), rtt.f64(i, "p90"), rtt.f64(i, "p99")) else { continue };
        match bands.iter_mut().find(|x| x.name == name) {
            Some(x) => x.points.push((t, a, b, c)),
            None => bands.push(Band { color: page.colors.get(&name), name, points: vec![(t, a, b, c)] }),
        }
    }
    if bands.is_empty() {
        page.nodata("rtt-nodata", "No RTT samples in this time range.");
    } else {
        for (k, b) in bands.into_iter().enumerate() {
            let _ = write!(page.body, r#"<h3 class="rtt-service"><i style="background:{}"></i>{}</h3>"#, b.color, esc(&b.name));
            let id = format!("chart-rtt-{k}");
            with_marks(&mut page, "rtt_samples", &mut |p| {
                p.time_chart(&id, "srtt (µs)", bucket, Body::Band(Band { name: b.name.clone(), color: b.color.clone(), points: b.points.clone() }), true, 170)
            });
        }
        lost_note(&mut page, "rtt_samples");
    }
    page.end();

    // Top flows.
    page.section("flows", "Top connections by retransmitted segments", "As <code>tcpfr top-flows</code> (first result), for the window.");
    let top = report::canned_part(&ctx, "top-flows", 1, &params).await?;
    if top.len() == 0 {
        page.nodata("flows-nodata", "No connection retransmitted in this window.");
    } else {
        page.body.push_str(&table(
            &top,
            &[
                ("service", "service"),
                ("connection", "connection"),
                ("role", "role"),
                ("comm", "process"),
                ("pid", "pid"),
                ("cgroup", "cgroup"),
                ("retrans_segs", "retransmitted segments"),
                ("segs_out", "segments sent"),
                ("retrans_pct", "retransmitted %"),
                ("duration_s", "duration (s)"),
                ("last_state", "last state"),
                ("error", "error"),
            ],
            "flows",
        ));
        lost_note(&mut page, "flows");
    }
    page.end();

    // Wire vs kernel.
    if !pcaps.is_empty() {
        page.section("wire", "The wire's retransmissions next to the kernel's", "From <code>tcpfr xref</code>: the capture's retransmissions (tshark's labels) matched with the recording's, after estimating the clock offset between them.");
        let (flows, summary) = crate::xref::compute(&ctx, pcaps, None).await?;
        let sum = batch_rows(&summary);
        let offset = sum.int(0, "clock_offset_ns").unwrap_or(0);
        let _ = write!(
            page.body,
            r#"<p class="xref-summary">Kernel: {} retransmitted segments; matched on the wire: {}; kernel-only during the capture: {}; wire-only: {}; retransmissions received from peers: {}. Clock offset (capture − recording) {:.3} ms.</p>"#,
            group_digits(sum.i64(0, "kernel_segments").unwrap_or(0)),
            group_digits(sum.i64(0, "matched").unwrap_or(0)),
            group_digits(sum.i64(0, "kernel_only_during_capture").unwrap_or(0)),
            group_digits(sum.i64(0, "wire_only").unwrap_or(0)),
            group_digits(sum.i64(0, "wire_received").unwrap_or(0)),
            offset as f64 / 1e6
        );
        let ws = query(
            &tctx,
            &format!(
                "SELECT t, src, sum(n) AS n FROM (SELECT {} AS t, 'kernel (recording)' AS src, segments AS n FROM retransmits WHERE counted \
                 UNION ALL SELECT {} AS t, 'wire (capture)' AS src, 1 AS n FROM pcap_retransmits) GROUP BY 1, 2 ORDER BY 1, 2",
                bin(bucket, "time"),
                format!("((CAST(time AS BIGINT) - {offset}) / {bucket}) * {bucket}")
            ),
        )
        .await;
        match ws {
            Ok(ws) => {
                let wseries = series_of(&ws, "src", "n", &mut |c| if c.starts_with("kernel") { "#4e79a7".into() } else { "#e15759".into() }, per_s);
                if wseries.is_empty() {
                    page.nodata("wire-nodata", "No retransmissions in the recording or the capture in this time range.");
                } else {
                    page.legend(&wseries.iter().map(|s| (s.name.clone(), s.color.clone())).collect::<Vec<_>>());
                    let wseries = fill_zero(wseries, bucket, page.range);
                    page.time_chart("chart-wire", "segments / s", bucket, Body::Lines(wseries), false, 220);
                }
            }
            Err(e) => page.note(&format!("the capture's time series could not be computed: {e:#}")),
        }
        let fr = batch_rows(&flows.slice(0, flows.num_rows().min(20)));
        page.body.push_str(&table(
            &fr,
            &[("local", "local"), ("remote", "remote"), ("kind", "kind"), ("kernel_segments", "kernel"), ("wire_sent", "wire"), ("matched", "matched"), ("kernel_only", "kernel only"), ("wire_only", "wire only"), ("wire_received", "received"), ("note", "note")],
            "xref",
        ));
        page.end();
    }

    // Recording metadata.
    page.section("recording", "Recording", "");
    let mut meta: Vec<(String, String)> = Vec::new();
    for r in &ds.recordings {
        let m = &r.manifest;
        meta.push(("recording".into(), format!("{} ({})", m.recording_id, r.dir.display())));
        meta.push(("host".into(), m.host.clone()));
        meta.push(("kernel".into(), m.kernel.clone().unwrap_or_else(|| "?".into())));
        meta.push(("format version".into(), m.format_version.clone()));
        meta.push(("recorder".into(), m.recorder.version.clone()));
        meta.push(("recorded".into(), format!("{} → {}", m.start, m.end.clone().unwrap_or_else(|| "(still recording or stopped abruptly)".into()))));
        if let Some(sn) = &m.snapshot {
            meta.push(("snapshot".into(), format!("{} → {}, triggered at {} by {}: {} ({} trigger(s){})", sn.window_start, sn.window_end, sn.trigger, sn.source, sn.reason, sn.triggers, if sn.cut_short { ", cut short" } else { "" })));
        }
        if m.recovery.is_some() {
            meta.push(("recovery".into(), "completed after a crash (see manifest.recovery)".into()));
        }
    }
    if ds.recordings.is_empty() {
        meta.push(("files".into(), format!("{} Parquet file(s)", ds.file_count())));
    }
    if let Some((a, b)) = ds.time_range {
        meta.push(("data".into(), format!("{} → {}", when(a), when(b))));
    }
    if windowed {
        meta.push(("window".into(), format!("{} → {}", when(wf), when(wt))));
    }
    meta.push(("services map".into(), services.source.as_ref().map_or("built-in rules only".into(), |p| p.display().to_string())));
    for p in pcaps {
        meta.push(("capture".into(), p.display().to_string()));
    }
    meta.push(("local time".into(), format!("UTC{} (of the machine that made the report; second row of the time axes)", chrono::FixedOffset::east_opt(local_offset_s).map_or(String::new(), |o| o.to_string()))));
    page.body.push_str(r#"<table class="meta">"#);
    for (k, v) in &meta {
        let _ = write!(page.body, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    page.body.push_str("</table>");
    page.end();

    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{CSS}</style></head><body>{}<footer>Made by tcpfr {} with <code>tcpfr report --html</code>.</footer></body></html>\n",
        esc(&title),
        page.body,
        env!("CARGO_PKG_VERSION")
    ))
}

fn clone_series(s: &Series) -> Series {
    Series { name: s.name.clone(), color: s.color.clone(), points: s.points.clone() }
}

/// Counts are zero where a bucket has no row: give lines those zeros.
fn fill_zero(series: Vec<Series>, bucket: i64, range: (i64, i64)) -> Vec<Series> {
    let first = range.0.div_euclid(bucket) * bucket;
    series
        .into_iter()
        .map(|s| {
            let have: BTreeMap<i64, f64> = s.points.iter().copied().collect();
            let mut points = Vec::new();
            let mut t = first;
            while t < range.1 {
                points.push((t, have.get(&t).copied().unwrap_or(0.0)));
                t += bucket;
            }
            Series { points, ..s }
        })
        .collect()
}

const CSS: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;background:#fff;max-width:1000px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:14px 0 4px}
.when{color:#555;margin:0}.intro{color:#555;margin:4px 0}code{background:#f3f3f3;padding:0 3px;border-radius:3px}
.nodata{padding:18px;background:#f7f7f7;border:1px dashed #ccc;color:#555;text-align:center}
.quality{background:#fff4e5;border-left:4px solid #f0a030;padding:6px 10px;margin:6px 0}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:4px 0 2px;font-size:13px}.legend-item::before{content:"";display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px;background:var(--c)}.rtt-service i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px}
svg.chart{display:block;max-width:100%;height:auto;font-size:12px}svg text{fill:#333}.tick.local{fill:#888}.axis-label,.panel-title{font-weight:600}
.grid{stroke:#eee}.axis,.tickmark{stroke:#999}.mark.window{fill:#fde9a9;fill-opacity:.55}.mark.snapshot{fill:#cfe3ff;fill-opacity:.5}.mark.gap{fill:#bbb;fill-opacity:.5}
.mark.trigger{stroke:#1f5fbf;stroke-width:2;stroke-dasharray:5 3}.mark.lost{stroke:#d62728;stroke-width:2}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #e5e5e5;padding:3px 6px;text-align:left;vertical-align:top;white-space:nowrap}.scroll{overflow-x:auto}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.meta td{white-space:normal;word-break:break-word}table.meta th{width:150px;color:#555;font-weight:600}footer{margin-top:30px;color:#888;font-size:12px}
"#;
