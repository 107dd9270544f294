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
//!
//! The page is a list of sections ([`render`]), each one function in `sections` that
//! queries, shapes the rows into plain data, then writes its markup with `maud`; what
//! sections share (sessions, time range and bucket, marks, lost events, colours) is a
//! [`Page`]. Text from the data is escaped by construction ([`text::Text`]).

mod chart;
mod parts;
mod sections;
mod text;
mod topology;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use maud::{html, Markup, PreEscaped};

use crate::canned;
use crate::dataset::Dataset;
use crate::env::Env;
use crate::report::{self, query, Rows};
use crate::services::ServiceMap;
use crate::window::Window;
use chart::{Mark, GREY, PALETTE};
use parts::bin;
use text::Text;

/// Most points per series on a time chart.
pub const MAX_BUCKETS: i64 = 600;
/// Most series on a chart (the rest are summed as "other").
pub const MAX_SERIES: usize = 8;

/// Writes the report of `ds` (the `window` of it) to `out`; returns its size in bytes.
pub async fn write(env: &Env, ds: &Dataset, window: &Window, services: &ServiceMap, pcaps: &[PathBuf], out: &Path) -> Result<u64> {
    let html = render(env, ds, window, services, pcaps).await?;
    std::fs::write(out, &html).with_context(|| format!("cannot write {} (check the directory exists and is writable)", out.display()))?;
    Ok(html.len() as u64)
}

/// The report as one HTML document: its sections in order (a new section is one
/// function in `sections` and one line here).
pub async fn render(env: &Env, ds: &Dataset, window: &Window, services: &ServiceMap, pcaps: &[PathBuf]) -> Result<String> {
    let mut page = Page::new(env, ds, window, services, pcaps).await?;
    let body = [
        sections::findings(&page).await?,
        sections::retransmits(&mut page).await?,
        sections::hotspots(&mut page).await?,
        sections::drops(&page).await?,
        topology::section_markup(&page).await?,
        sections::handshakes(&page).await?,
        sections::resets(&page).await?,
        sections::rtt(&mut page).await?,
        sections::top_flows(&page).await?,
        sections::wire(&page).await?,
        sections::recording(&page),
    ];
    Ok(document(&page.title, &body))
}

/// The document around the sections.
fn document(title: &str, body: &[Markup]) -> String {
    let doc = html! {
        (PreEscaped("<!DOCTYPE html>\n"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                title { (Text(title)) }
                style { (PreEscaped(CSS)) }
            }
            body {
                @for section in body { (section) }
                footer { "Made by tcpfr " (Text(env!("CARGO_PKG_VERSION"))) " with " code { "tcpfr report --html" } "." }
            }
        }
    };
    doc.into_string() + "\n"
}

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

/// The question's window as the report shows it.
struct Span {
    /// First and end (exclusive) of the window within the data, ns.
    from: i64,
    to: i64,
    /// A window was asked for (else the window is all the data).
    windowed: bool,
}

/// What the sections share.
struct Page<'a> {
    ds: &'a Dataset,
    window: &'a Window,
    services: &'a ServiceMap,
    pcaps: &'a [PathBuf],
    /// The window's session (findings, hotspots, tables).
    ctx: SessionContext,
    /// The charts' session: the window padded by its length on both sides; with the captures.
    tctx: SessionContext,
    params: canned::Params,
    span: Span,
    /// (first, end) of the charts' time axis, ns.
    range: (i64, i64),
    /// The charts' time bucket, ns.
    bucket: i64,
    /// Local time zone offset, seconds east of UTC (at the window's start).
    local_offset_s: i32,
    title: String,
    /// Window, snapshots and gaps: drawn on every time chart.
    marks: Vec<Mark>,
    /// Events lost per stream: the total and the buckets they were lost in.
    lost: BTreeMap<String, (i64, Vec<i64>)>,
    colors: Colors,
    /// The hotspots question's answer: it fixes the services' colours by importance.
    hot: Rows,
}

impl<'a> Page<'a> {
    async fn new(env: &Env, ds: &'a Dataset, window: &'a Window, services: &'a ServiceMap, pcaps: &'a [PathBuf]) -> Result<Page<'a>> {
        let ctx = crate::session::context(env, ds, window, services).await?;
        let (lo, hi) = ds.time_range.unwrap_or((0, 1_000_000_000));
        let wf = window.from.unwrap_or(lo).max(lo);
        let wt = window.to.unwrap_or(hi + 1).min(hi + 1).max(wf + 1);
        let windowed = window.from.is_some() || window.to.is_some();
        // Charts: the window with as much again on each side (within the data).
        let range = if windowed { ((wf - (wt - wf)).max(lo), (wt + (wt - wf)).min(hi + 1)) } else { (lo, hi + 1) };
        let range = (range.0.min(wf), range.1.max(wt));
        let tctx = crate::session::context(env, ds, &Window { from: Some(range.0), to: Some(range.1) }, services).await?;
        crate::pcap::register(&tctx, pcaps)?;
        let bucket = chart::time_step(range.1 - range.0, MAX_BUCKETS);
        let local_offset_s = chrono::DateTime::from_timestamp_nanos(wf).with_timezone(&chrono::Local).offset().local_minus_utc();
        let span = Span { from: wf, to: wt, windowed };
        let mut marks = window_marks(ds, &span);
        marks.extend(gap_marks(&tctx).await?);
        let lost = lost_events(&tctx, bucket).await?;
        let range_s = window.range_seconds(ds.time_range);
        let params = canned::Params { by: None, window: None, limit: None, range_s, service: crate::session::service_sql(&ctx), several_hosts: false };
        let hot = report::canned_part(&ctx, "hotspots", 1, &params).await?;
        let mut colors = Colors::default();
        for i in 0..hot.len() {
            colors.get(&hot.str(i, "service").unwrap_or_default());
        }
        let hosts = ds.hosts();
        let title = format!("tcpfr report — {}", if hosts.is_empty() { "?".to_string() } else { hosts.join(", ") });
        Ok(Page { ds, window, services, pcaps, ctx, tctx, params, span, range, bucket, local_offset_s, title, marks, lost, colors, hot })
    }
}

/// The window asked for and the recordings' snapshot windows and triggers.
fn window_marks(ds: &Dataset, span: &Span) -> Vec<Mark> {
    let mut marks = Vec::new();
    if span.windowed {
        let label = format!("the window asked for: {} → {}", report::fmt_ns(span.from), report::fmt_ns(span.to));
        marks.push(Mark { from: span.from, to: Some(span.to), label, class: "window" });
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
    marks
}

/// The recorder's gaps.
async fn gap_marks(tctx: &SessionContext) -> Result<Vec<Mark>> {
    let gaps = query(tctx, "SELECT CAST(gap_start AS BIGINT) AS a, CAST(gap_end AS BIGINT) AS b, coalesce(note, '') AS note FROM recorder_stats WHERE gap_start IS NOT NULL ORDER BY 1 LIMIT 200").await?;
    Ok((0..gaps.len())
        .filter_map(|i| {
            let a = gaps.int(i, "a")?;
            Some(Mark { from: a, to: Some(gaps.int(i, "b").unwrap_or(a)), label: format!("gap in the recording: {}", gaps.str(i, "note").unwrap_or_default()), class: "gap" })
        })
        .collect())
}

/// Events lost, per stream: the total and the buckets (marked on the charts they feed).
async fn lost_events(tctx: &SessionContext, bucket: i64) -> Result<BTreeMap<String, (i64, Vec<i64>)>> {
    let lost = query(
        tctx,
        &format!("SELECT {} AS t, stream, sum(events_lost) AS lost FROM recorder_stats WHERE events_lost > 0 GROUP BY 1, 2 ORDER BY 1 LIMIT 2000", bin(bucket, "time")),
    )
    .await?;
    let mut by: BTreeMap<String, (i64, Vec<i64>)> = BTreeMap::new();
    for i in 0..lost.len() {
        let e = by.entry(lost.str(i, "stream").unwrap_or_default()).or_default();
        e.0 += lost.i64(i, "lost").unwrap_or(0);
        e.1.extend(lost.int(i, "t"));
    }
    Ok(by)
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
