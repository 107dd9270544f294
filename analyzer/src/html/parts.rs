//! Pieces the report's sections are made of: their markup (section frame, no-data
//! message, warning, legend, table, time chart) and the shaping of query rows into
//! chart series.

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped};

use super::chart::{self, Body, Mark, Series, TimeChart};
use super::text::Text;
use super::Page;
use crate::report::{group_digits, Rows};

/// The start of `col`'s bucket of `ns`, as ns since the epoch (times are after 1970,
/// so integer division floors).
pub fn bin(ns: i64, col: &str) -> String {
    format!("(CAST({col} AS BIGINT) / {ns}) * {ns}")
}

/// A bucket length in words ("1s 500ms").
pub fn duration(ns: i64) -> String {
    humantime::format_duration(std::time::Duration::from_nanos(ns as u64)).to_string()
}

/// Series from rows of (t, name, value), in first-seen order.
pub fn series_of(rows: &Rows, key: &str, value: &str, color: &mut dyn FnMut(&str) -> String, scale: f64) -> Vec<Series> {
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

/// Counts are zero where a bucket has no row: give lines those zeros.
pub fn fill_zero(series: Vec<Series>, bucket: i64, range: (i64, i64)) -> Vec<Series> {
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

/// Fixed colours for categories that are not services.
pub fn cause_color(cause: &str) -> &'static str {
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

/// A section of the page: its heading, an introduction (None: none) and its content.
pub fn section(id: &str, title: &str, intro: Option<Markup>, content: Markup) -> Markup {
    html! {
        section id=(Text(id)) {
            h2 { (Text(title)) }
            @if let Some(intro) = intro { p class="intro" { (intro) } }
            (content)
        }
    }
}

/// What a chart or table would have shown is not there.
pub fn nodata(id: &str, words: &str) -> Markup {
    html! { p class="nodata" id=(Text(id)) { (Text(words)) } }
}

/// A warning about what is shown.
pub fn note(words: &str) -> Markup {
    html! { p class="quality" { "⚠ " (Text(words)) } }
}

pub fn legend(series: &[Series]) -> Markup {
    html! {
        div class="legend" {
            @for s in series {
                span class="legend-item" data-series=(Text(&s.name)) style={ "--c:" (Text(&s.color)) } { (Text(&s.name)) }
            }
        }
    }
}

/// Rows as a table of the columns `cols` (column, heading); long values are cut, with
/// the whole value as hover text.
pub fn table(rows: &Rows, cols: &[(&str, &str)], class: &str) -> Markup {
    let cell = |i: usize, c: &str| {
        let v = rows.str(i, c).unwrap_or_default();
        let num = !v.is_empty() && v.parse::<f64>().is_ok();
        html! {
            @if v.chars().count() > 40 {
                td title=(Text(&v)) { (Text(&chart::truncate(&v, 40))) }
            } @else {
                td class=[num.then_some("num")] { (Text(&v)) }
            }
        }
    };
    html! {
        div class="scroll" {
            table class=(Text(class)) {
                thead { tr { @for (_, h) in cols { th { (Text(h)) } } } }
                tbody { @for i in 0..rows.len() { tr { @for (c, _) in cols { (cell(i, c)) } } } }
            }
        }
    }
}

/// A time chart of a section.
pub struct Chart<'a> {
    /// DOM id (also the CSS hook of tests).
    pub id: &'a str,
    pub y_label: &'a str,
    pub bucket: i64,
    pub body: Body,
    pub log_y: bool,
    pub height: u32,
    /// The recorder stream whose lost events are ticked on the chart, if any.
    pub lost: Option<&'a str>,
}

impl Page<'_> {
    /// `c` drawn over the page's time range, with its marks.
    pub fn chart(&self, c: Chart) -> Markup {
        let mut marks: Vec<Mark> = self.marks.clone();
        if let Some((stream, (_, ticks))) = c.lost.and_then(|s| Some((s, self.lost.get(s)?))) {
            marks.extend(ticks.iter().map(|t| Mark { from: *t, to: None, label: format!("{stream} events lost"), class: "lost" }));
        }
        let svg = TimeChart { id: c.id, y_label: c.y_label, range: self.range, bucket_ns: c.bucket, body: c.body, marks: &marks, log_y: c.log_y, height: c.height, local_offset_s: self.local_offset_s }.svg();
        PreEscaped(svg)
    }

    /// The warning that the counts of `stream` are too low, if its events were lost.
    pub fn lost_note(&self, stream: &str) -> Markup {
        html! {
            @if let Some((n, _)) = self.lost.get(stream) {
                (note(&format!("{} {stream} events were lost around this time (red ticks): the counts drawn here are lower than the truth.", group_digits(*n))))
            }
        }
    }
}
