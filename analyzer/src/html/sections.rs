//! The report's sections, one function each, in page order. A section first queries
//! and shapes its data (plain values and chart series), then writes its markup in one
//! `html!` block; text from the data goes through [`Text`].

use maud::{html, Markup, PreEscaped};

use super::chart::{self, Band, BarRow, Body, PALETTE};
use super::parts::{bin, cause_color, duration, fill_zero, legend, nodata, note, section, series_of, table, Chart};
use super::text::Text;
use super::{Page, MAX_SERIES};
use crate::report::{self, group_digits, query, Rows};
use anyhow::Result;

/// Services with an RTT chart.
const RTT_SERVICES: usize = 4;

/// A time in UTC and in local time.
fn when(ns: i64) -> String {
    let l = chrono::DateTime::from_timestamp_nanos(ns).with_timezone(&chrono::Local);
    format!("{} (local {})", report::fmt_ns(ns), l.format("%Y-%m-%d %H:%M:%S%.3f %:z"))
}

/// The header (hosts, window) and the findings of `tcpfr report`, with data quality.
pub async fn findings(page: &Page<'_>) -> Result<Markup> {
    let findings = report::findings(&page.ctx, page.ds, page.window).await?;
    let quality = report::data_quality(&page.ctx).await?;
    let (from, to) = (page.span.from, page.span.to);
    let length = format!("{:.1}", (to - from) as f64 / 1e9);
    let intro = html! { "The same findings as " code { "tcpfr report" } ", for the window." };
    Ok(html! {
        header {
            h1 { (Text(&page.title)) }
            p class="when" { (Text(&when(from))) " → " (Text(&when(to - 1))) " · " (Text(&length)) " s" }
        }
        (section("findings", "What stands out", Some(intro), html! {
            ul { @for f in &findings { li { (Text(f)) } } }
            h3 { "Data quality" }
            ul class="quality-list" {
                @if quality.is_empty() { li { "Complete: no events lost, no gaps." } }
                @for q in &quality { li { (Text(q)) } }
            }
        }))
    })
}

/// Retransmitted segments over time by service, and the kernel's own retransmit rate
/// per host and network namespace.
pub async fn retransmits(page: &mut Page<'_>) -> Result<Markup> {
    let bucket = page.bucket;
    let rt = query(
        &page.tctx,
        &format!(
            "WITH b AS (SELECT {} AS t, coalesce(service, '(unknown)') AS s, sum(segments) AS n FROM retransmits WHERE counted GROUP BY 1, 2), \
             top AS (SELECT s FROM b GROUP BY 1 ORDER BY sum(n) DESC, 1 LIMIT {MAX_SERIES}) \
             SELECT b.t, CASE WHEN top.s IS NULL THEN 'other' ELSE b.s END AS service, sum(b.n) AS n FROM b LEFT JOIN top ON b.s = top.s GROUP BY 1, 2 ORDER BY 1",
            bin(bucket, "time")
        ),
    )
    .await?;
    let colors = &mut page.colors;
    let series = series_of(&rt, "service", "n", &mut |n| colors.get(n), 1e9 / bucket as f64);
    let host_rate = host_rate(page).await?;
    let intro = html! { "Retransmitted segments per second by service (top " (MAX_SERIES) "; the rest as “other”), in buckets of " (Text(&duration(bucket))) "." };
    Ok(section("retransmits", "Retransmissions over time", Some(intro), html! {
        @if series.is_empty() {
            (nodata("retransmits-nodata", "No retransmitted segments in this time range."))
        } @else {
            (legend(&series))
            (page.chart(Chart { id: "chart-retransmits", y_label: "segments / s", bucket, body: Body::Lines(fill_zero(series, bucket, page.range)), log_y: false, height: 260, lost: Some("retransmits") }))
            (page.lost_note("retransmits"))
        }
        (host_rate)
    }))
}

/// ΔRetransSegs ÷ ΔOutSegs from host_counters, part of [`retransmits`].
async fn host_rate(page: &Page<'_>) -> Result<Markup> {
    let hc_interval = query(&page.tctx, "SELECT max(interval_ns) AS i FROM host_counters").await?.int(0, "i").unwrap_or(0);
    // Counter intervals jitter around their setting (1.0006 s for 1 s): allow 5%.
    let want = page.bucket.max(hc_interval - hc_interval / 20);
    let bucket = chart::TIME_STEPS.iter().copied().find(|s| *s >= want).unwrap_or(want);
    let netns = "host || ' ' || coalesce(netns_name, CAST(netns AS VARCHAR))";
    let hr = query(
        &page.tctx,
        &format!(
            "WITH top AS (SELECT {netns} AS s FROM host_counters GROUP BY 1 HAVING sum(out_segs) > 0 ORDER BY sum(retrans_segs) DESC, 1 LIMIT {MAX_SERIES}) \
             SELECT {} AS t, {netns} AS ns, 100.0 * sum(retrans_segs) / sum(out_segs) AS pct \
             FROM host_counters WHERE {netns} IN (SELECT s FROM top) GROUP BY 1, 2 HAVING sum(out_segs) > 0 ORDER BY 1",
            // A row is the delta over the interval before its time.
            bin(bucket, "(CAST(time AS BIGINT) - interval_ns)")
        ),
    )
    .await?;
    // The palette backwards: hosts are not services.
    let mut i = 0;
    let series = series_of(&hr, "ns", "pct", &mut |_| {
        i += 1;
        PALETTE[(PALETTE.len() - i % PALETTE.len()) % PALETTE.len()].to_string()
    }, 1.0);
    Ok(html! {
        h3 { "Host retransmit rate" }
        p class="intro" {
            "ΔRetransSegs ÷ ΔOutSegs from the kernel's counters (host_counters), per host and network namespace, in buckets of " (Text(&duration(bucket)))
            ". Above 100% means more segments were re-sent than new ones got out."
        }
        @if series.is_empty() {
            (nodata("hostrate-nodata", "No host counters with segments sent in this time range."))
        } @else {
            (legend(&series))
            (page.chart(Chart { id: "chart-hostrate", y_label: "retransmitted % of sent", bucket, body: Body::Lines(series), log_y: false, height: 220, lost: None }))
        }
    })
}

/// TCP packets this host dropped itself, per second by the kernel's reason and direction
/// (`drops`): the local causes of retransmits, apart from the network's.
pub async fn drops(page: &Page<'_>) -> Result<Markup> {
    let bucket = page.bucket;
    let d = query(
        &page.tctx,
        &format!(
            "WITH b AS (SELECT {} AS t, reason || ' (' || direction || ')' AS s, sum(packets) AS n FROM drops GROUP BY 1, 2), \
             top AS (SELECT s FROM b GROUP BY 1 ORDER BY sum(n) DESC, 1 LIMIT {MAX_SERIES}) \
             SELECT b.t, CASE WHEN top.s IS NULL THEN 'other' ELSE b.s END AS reason, sum(b.n) AS n FROM b LEFT JOIN top ON b.s = top.s GROUP BY 1, 2 ORDER BY 1",
            bin(bucket, "time")
        ),
    )
    .await?;
    // Reasons are not services: their own colors, from the palette's middle.
    let mut i = 0;
    let series = series_of(&d, "reason", "n", &mut |_| {
        i += 1;
        PALETTE[(i + PALETTE.len() / 2) % PALETTE.len()].to_string()
    }, 1e9 / bucket as f64);
    let intro = html! {
        "TCP packets this host's kernel dropped itself (" code { "drops" } "), per second by its reason and direction (in: arrived and dropped here; out: ours, dropped before they left), in buckets of " (Text(&duration(bucket)))
        ". " code { "tcpfr causes" } " says which retransmits they caused."
    };
    Ok(section("drops", "Local drops", Some(intro), html! {
        @if series.is_empty() {
            (nodata("drops-nodata", "No TCP packets dropped by this host in this time range (or none recorded: drops are in recordings of format 1.2)."))
        } @else {
            (legend(&series))
            (page.chart(Chart { id: "chart-drops", y_label: "packets / s", bucket, body: Body::Lines(fill_zero(series, bucket, page.range)), log_y: false, height: 220, lost: Some("drops") }))
        }
    }))
}

/// The hotspots question as bars per service.
pub async fn hotspots(page: &mut Page<'_>) -> Result<Markup> {
    let hot = &page.hot;
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
    let mut unknown = None;
    if !rows.is_empty() {
        let owners = query(&page.ctx, "SELECT count(*) FILTER (WHERE pid IS NULL) AS unknown, count(*) AS n FROM retransmits").await?;
        let n = owners.i64(0, "unknown").unwrap_or(0);
        if n > 0 {
            unknown = Some(format!(
                "{} of {} retransmit events are on sockets whose owning process is unknown: their service comes from ports and addresses only.",
                group_digits(n),
                group_digits(owners.i64(0, "n").unwrap_or(0))
            ));
        }
    }
    let panels = [("retrans_segs", "retransmitted segments"), ("resets", "resets"), ("failed_handshakes", "failed handshakes")];
    let intro = html! { "As " code { "tcpfr hotspots" } ": retransmitted segments, resets and failed handshakes per service (services map applied)." };
    Ok(section("hotspots", "Hotspots by service", Some(intro), html! {
        @if rows.is_empty() {
            (nodata("hotspots-nodata", "No retransmits, resets or failed handshakes in this window."))
        } @else {
            (PreEscaped(chart::bars("chart-hotspots", &panels, &rows)))
            @if let Some(words) = &unknown { (note(words)) }
        }
    }))
}

/// Failed handshakes by cause, and those that completed only after SYN retransmits.
pub async fn handshakes(page: &Page<'_>) -> Result<Markup> {
    let hs = query(
        &page.tctx,
        &format!(
            "SELECT {} AS t, CASE WHEN handshake = 'completed' THEN 'completed late' WHEN role = 'server' THEN 'inbound ' || handshake ELSE handshake END AS cause, count(*) AS n \
             FROM flows WHERE handshake IS NOT NULL AND (handshake <> 'completed' OR syn_retransmits > 0) GROUP BY 1, 2 ORDER BY 1, 2",
            bin(page.bucket, "coalesce(open_time, time)")
        ),
    )
    .await?;
    let series = series_of(&hs, "cause", "n", &mut |c| cause_color(c).to_string(), 1.0);
    let completed = query(&page.tctx, "SELECT count(*) AS n FROM flows WHERE handshake = 'completed' AND syn_retransmits = 0").await?.i64(0, "n").unwrap_or(0);
    let completed = group_digits(completed);
    let intro = html! {
        "Connections whose handshake failed, by cause (from " code { "flows" } ", at the connection's start), and those that completed only after SYN retransmits. “inbound” = to our listeners."
    };
    Ok(section("handshakes", "Handshake outcomes over time", Some(intro), html! {
        @if series.is_empty() {
            (nodata("handshakes-nodata", &format!("No failed or slow handshakes in this time range ({completed} completed at once).")))
        } @else {
            (legend(&series))
            p class="intro" { (Text(&completed)) " other handshakes completed at once." }
            (page.chart(Chart { id: "chart-handshakes", y_label: "connections per bucket", bucket: page.bucket, body: Body::StackedBars(series), log_y: false, height: 220, lost: Some("flows") }))
            (page.lost_note("flows"))
        }
    }))
}

/// Resets sent and received over time.
pub async fn resets(page: &Page<'_>) -> Result<Markup> {
    let rs = query(&page.tctx, &format!("SELECT {} AS t, direction, count(*) AS n FROM resets GROUP BY 1, 2 ORDER BY 1, 2", bin(page.bucket, "time"))).await?;
    let series = series_of(&rs, "direction", "n", &mut |c| cause_color(c).to_string(), 1.0);
    Ok(section("resets", "Resets over time", Some(html! { "TCP resets we sent and received." }), html! {
        @if series.is_empty() {
            (nodata("resets-nodata", "No resets sent or received in this time range."))
        } @else {
            (legend(&series))
            (page.chart(Chart { id: "chart-resets", y_label: "resets per bucket", bucket: page.bucket, body: Body::StackedBars(series), log_y: false, height: 200, lost: Some("resets") }))
            (page.lost_note("resets"))
        }
    }))
}

/// srtt percentiles over time, one chart per busiest service.
pub async fn rtt(page: &mut Page<'_>) -> Result<Markup> {
    let rtt = query(
        &page.tctx,
        &format!(
            "WITH top AS (SELECT coalesce(service, '(unknown)') AS s FROM rtt_samples GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {RTT_SERVICES}) \
             SELECT {} AS t, coalesce(service, '(unknown)') AS service, approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY srtt_us) AS p50, \
             approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY srtt_us) AS p90, approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY srtt_us) AS p99 \
             FROM rtt_samples WHERE coalesce(service, '(unknown)') IN (SELECT s FROM top) GROUP BY 1, 2 ORDER BY 2, 1",
            bin(page.bucket, "time")
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
    let intro = html! {
        "Smoothed RTT (srtt) per service, top " (RTT_SERVICES) " by samples: the band spans p50 to p99, the solid line is p50, the dashed one p90 (log scale)."
    };
    Ok(section("rtt", "Round-trip time by service", Some(intro), html! {
        @if bands.is_empty() {
            (nodata("rtt-nodata", "No RTT samples in this time range."))
        } @else {
            @for (k, b) in bands.into_iter().enumerate() {
                h3 class="rtt-service" { i style={ "background:" (Text(&b.color)) } {} (Text(&b.name)) }
                (page.chart(Chart { id: &format!("chart-rtt-{k}"), y_label: "srtt (µs)", bucket: page.bucket, body: Body::Band(b), log_y: true, height: 170, lost: Some("rtt_samples") }))
            }
            (page.lost_note("rtt_samples"))
        }
    }))
}

/// The top-flows question's first table.
pub async fn top_flows(page: &Page<'_>) -> Result<Markup> {
    let top = report::canned_part(&page.ctx, "top-flows", 1, &page.params).await?;
    let cols = [
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
    ];
    let intro = html! { "As " code { "tcpfr top-flows" } " (first result), for the window." };
    Ok(section("flows", "Top connections by retransmitted segments", Some(intro), html! {
        @if top.len() == 0 {
            (nodata("flows-nodata", "No connection retransmitted in this window."))
        } @else {
            (table(&top, &cols, "flows"))
            (page.lost_note("flows"))
        }
    }))
}

/// With captures: `tcpfr xref`'s summary and flows, and both sides' retransmissions over
/// time (the capture's shifted by the estimated clock offset). Empty without captures.
pub async fn wire(page: &Page<'_>) -> Result<Markup> {
    if page.pcaps.is_empty() {
        return Ok(html! {});
    }
    let (flows, summary) = crate::xref::compute(&page.ctx, page.pcaps, None).await?;
    let sum = Rows::from_batches(vec![summary]);
    let offset = sum.int(0, "clock_offset_ns").unwrap_or(0);
    let count = |c: &str| group_digits(sum.i64(0, c).unwrap_or(0));
    let summary = format!(
        "Kernel: {} retransmitted segments; matched on the wire: {}; kernel-only during the capture: {}; wire-only: {}; retransmissions received from peers: {}. Clock offset (capture − recording) {:.3} ms.",
        count("kernel_segments"),
        count("matched"),
        count("kernel_only_during_capture"),
        count("wire_only"),
        count("wire_received"),
        offset as f64 / 1e6
    );
    let bucket = page.bucket;
    let ws = query(
        &page.tctx,
        &format!(
            "SELECT t, src, sum(n) AS n FROM (SELECT {} AS t, 'kernel (recording)' AS src, segments AS n FROM retransmits WHERE counted \
             UNION ALL SELECT {} AS t, 'wire (capture)' AS src, 1 AS n FROM pcap_retransmits) GROUP BY 1, 2 ORDER BY 1, 2",
            bin(bucket, "time"),
            bin(bucket, &format!("(CAST(time AS BIGINT) - {offset})"))
        ),
    )
    .await;
    let series = ws.map(|ws| series_of(&ws, "src", "n", &mut |c| if c.starts_with("kernel") { "#4e79a7".into() } else { "#e15759".into() }, 1e9 / bucket as f64));
    let flows = Rows::from_batches(vec![flows.slice(0, flows.num_rows().min(20))]);
    let cols = [
        ("local", "local"),
        ("remote", "remote"),
        ("kind", "kind"),
        ("kernel_segments", "kernel"),
        ("wire_sent", "wire"),
        ("matched", "matched"),
        ("kernel_only", "kernel only"),
        ("wire_only", "wire only"),
        ("wire_received", "received"),
        ("note", "note"),
    ];
    let intro = html! {
        "From " code { "tcpfr xref" } ": the capture's retransmissions (tshark's labels) matched with the recording's, after estimating the clock offset between them."
    };
    Ok(section("wire", "The wire's retransmissions next to the kernel's", Some(intro), html! {
        p class="xref-summary" { (Text(&summary)) }
        @match series {
            Ok(series) if series.is_empty() => (nodata("wire-nodata", "No retransmissions in the recording or the capture in this time range.")),
            Ok(series) => {
                (legend(&series))
                (page.chart(Chart { id: "chart-wire", y_label: "segments / s", bucket, body: Body::Lines(fill_zero(series, bucket, page.range)), log_y: false, height: 220, lost: None }))
            }
            Err(e) => (note(&format!("the capture's time series could not be computed: {e:#}"))),
        }
        (table(&flows, &cols, "xref"))
    }))
}

/// What was recorded, where and how, as (what, value) rows.
fn recording_facts(page: &Page<'_>) -> Vec<(String, String)> {
    let ds = page.ds;
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
    if page.span.windowed {
        meta.push(("window".into(), format!("{} → {}", when(page.span.from), when(page.span.to))));
    }
    meta.push(("services map".into(), page.services.source.as_ref().map_or("built-in rules only".into(), |p| p.display().to_string())));
    for p in page.pcaps {
        meta.push(("capture".into(), p.display().to_string()));
    }
    let offset = chrono::FixedOffset::east_opt(page.local_offset_s).map_or(String::new(), |o| o.to_string());
    meta.push(("local time".into(), format!("UTC{offset} (of the machine that made the report; second row of the time axes)")));
    meta
}

/// The recordings' metadata.
pub fn recording(page: &Page<'_>) -> Markup {
    let facts = recording_facts(page);
    section("recording", "Recording", None, html! {
        table class="meta" { @for (k, v) in &facts { tr { th { (Text(k)) } td { (Text(v)) } } } }
    })
}
