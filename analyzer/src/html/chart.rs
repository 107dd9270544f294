//! Hand-written inline SVG charts for the HTML report: time series (lines, stacked
//! bars, percentile bands) and horizontal bar charts. No scripts, no fonts, no
//! external resources; every string from the data goes through [`esc`]. Written with
//! `format!`, not `maud` as the rest of the page: maud has no self-closing tags, and
//! SVG elements inside HTML need them (`<line …/>`; a `<line>` left open takes what
//! follows as its children).
//!
//! Charts take already-aggregated points (the report aggregates in SQL and caps the
//! number of buckets and series), so their size is bounded by the caller's caps.

use std::fmt::Write as _;

use super::text::esc;

/// Colours for services and series (colour-blind friendly, distinguishable on white).
pub const PALETTE: &[&str] = &["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#3b3b98"];
pub const GREY: &str = "#9d9d9d";

/// A shaded time range or an instant on every time chart (window, snapshot, gap).
#[derive(Clone)]
pub struct Mark {
    pub from: i64,
    /// None: a vertical line at `from`.
    pub to: Option<i64>,
    pub label: String,
    /// CSS class: `window`, `snapshot`, `gap`, `lost`.
    pub class: &'static str,
}

pub struct Series {
    pub name: String,
    pub color: String,
    /// (bucket start in ns, value); buckets without a point are gaps (lines) or zero (bars).
    pub points: Vec<(i64, f64)>,
}

/// p50/p90/p99 per bucket.
pub struct Band {
    pub name: String,
    pub color: String,
    pub points: Vec<(i64, f64, f64, f64)>,
}

pub enum Body {
    Lines(Vec<Series>),
    StackedBars(Vec<Series>),
    Band(Band),
}

pub struct TimeChart<'a> {
    /// DOM id (also the CSS hook of tests).
    pub id: &'a str,
    pub y_label: &'a str,
    /// (first, end) of the x axis, ns.
    pub range: (i64, i64),
    pub bucket_ns: i64,
    pub body: Body,
    pub marks: &'a [Mark],
    pub log_y: bool,
    pub height: u32,
    /// Local time zone offset (seconds east of UTC) for the second row of tick labels.
    pub local_offset_s: i32,
}

const W: f64 = 960.0;
const ML: f64 = 72.0;
const MR: f64 = 16.0;
const MT: f64 = 10.0;
const MB: f64 = 44.0;

/// Nice steps for value axes: 1, 2, 5 × 10^k at or above `raw`.
fn nice(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

/// Nice time steps, ns.
pub const TIME_STEPS: &[i64] = &[
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000, 200_000_000, 500_000_000,
    1_000_000_000, 2_000_000_000, 5_000_000_000, 10_000_000_000, 15_000_000_000, 30_000_000_000, 60_000_000_000,
    120_000_000_000, 300_000_000_000, 600_000_000_000, 900_000_000_000, 1_800_000_000_000, 3_600_000_000_000,
    7_200_000_000_000, 10_800_000_000_000, 21_600_000_000_000, 43_200_000_000_000, 86_400_000_000_000,
];

/// The smallest nice step that cuts `span` into at most `n` parts.
pub fn time_step(span: i64, n: i64) -> i64 {
    let want = (span.max(1) + n - 1) / n;
    TIME_STEPS.iter().copied().find(|s| *s >= want).unwrap_or_else(|| (want + 86_400_000_000_000 - 1) / 86_400_000_000_000 * 86_400_000_000_000)
}

pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

fn tick_label(ns: i64, step: i64, offset_s: i32) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns) + chrono::Duration::seconds(offset_s as i64);
    let f = if step < 1_000_000_000 {
        "%H:%M:%S%.3f"
    } else if step < 86_400_000_000_000 {
        "%H:%M:%S"
    } else {
        "%m-%d %H:%M"
    };
    t.format(f).to_string()
}

/// Where a time chart draws a time and a value: the plot area and the value scale.
struct Frame {
    /// (first, end) of the x axis, ns; end > first.
    x0: i64,
    x1: i64,
    /// Plot width and height.
    pw: f64,
    ph: f64,
    /// Value axis: bottom and top, log or linear, tick values.
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
    /// Width of one bucket.
    bw: f64,
}

impl Frame {
    fn x(&self, t: i64) -> f64 {
        ML + (t - self.x0) as f64 / (self.x1 - self.x0) as f64 * self.pw
    }

    fn y(&self, v: f64) -> f64 {
        let (lo, hi) = (self.lo, self.hi);
        let f = if self.log { (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()) } else { (v - lo) / (hi - lo) };
        MT + self.ph - f.clamp(0.0, 1.0) * self.ph
    }
}

/// The value axis for values up to `vmax` (smallest positive `vmin_pos`): (bottom, top,
/// ticks). Log scales span whole decades, with 2 and 5 ticks when there are few.
fn value_axis(vmin_pos: f64, vmax: f64, log: bool) -> (f64, f64, Vec<f64>) {
    if log {
        let lo = 10f64.powf(vmin_pos.log10().floor());
        let hi = 10f64.powf(vmax.log10().ceil()).max(lo * 10.0);
        let decades = (hi / lo).log10().round() as i32;
        let mut t = Vec::new();
        let mut d = lo;
        while d <= hi * 1.0001 {
            t.push(d);
            if decades <= 2 {
                for m in [2.0, 5.0] {
                    if d * m < hi {
                        t.push(d * m);
                    }
                }
            }
            d *= 10.0;
        }
        (lo, hi, t)
    } else {
        let step = nice(vmax.max(1e-9) / 4.0);
        let hi = (vmax / step).ceil().max(1.0) * step;
        let n = (hi / step).round() as i64;
        (0.0, hi, (0..=n).map(|i| i as f64 * step).collect())
    }
}

impl TimeChart<'_> {
    pub fn svg(&self) -> String {
        let f = self.frame();
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" id="{}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" xmlns="http://www.w3.org/2000/svg">"#,
            esc(self.id),
            h = self.height as f64
        );
        // Marks under everything.
        self.marks(&f, &mut s);
        self.axes(&f, &mut s);
        match &self.body {
            Body::Lines(series) => series.iter().for_each(|se| self.line(&f, se, &mut s)),
            Body::StackedBars(series) => stacked_bars(&f, series, &mut s),
            Body::Band(b) => self.band(&f, b, &mut s),
        }
        s.push_str("</svg>");
        s
    }

    fn frame(&self) -> Frame {
        let (x0, x1) = (self.range.0, self.range.1.max(self.range.0 + 1));
        let pw = W - ML - MR;
        let ph = self.height as f64 - MT - MB;
        // Value range.
        let mut vmax: f64 = 0.0;
        let mut vmin_pos = f64::INFINITY;
        let mut see = |v: f64| {
            if v.is_finite() {
                vmax = vmax.max(v);
                if v > 0.0 {
                    vmin_pos = vmin_pos.min(v);
                }
            }
        };
        match &self.body {
            Body::Lines(ss) => ss.iter().flat_map(|s| &s.points).for_each(|p| see(p.1)),
            Body::StackedBars(ss) => {
                let mut sums = std::collections::BTreeMap::<i64, f64>::new();
                for p in ss.iter().flat_map(|s| &s.points) {
                    *sums.entry(p.0).or_default() += p.1;
                }
                sums.values().for_each(|v| see(*v));
            }
            Body::Band(b) => b.points.iter().for_each(|p| {
                see(p.1);
                see(p.3)
            }),
        }
        let log = self.log_y && vmin_pos.is_finite();
        let (lo, hi, ticks) = value_axis(vmin_pos, vmax, log);
        let bw = (self.bucket_ns as f64 / (x1 - x0) as f64 * pw).max(1.0);
        Frame { x0, x1, pw, ph, lo, hi, log, ticks, bw }
    }

    fn marks(&self, f: &Frame, s: &mut String) {
        let (x0, x1) = (f.x0, f.x1);
        for m in self.marks {
            let a = f.x(m.from.clamp(x0, x1));
            match m.to {
                Some(to) => {
                    let b = f.x(to.clamp(x0, x1));
                    let _ = write!(
                        s,
                        r#"<rect class="mark {}" x="{a:.1}" y="{MT}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
                        m.class,
                        (b - a).max(1.0),
                        f.ph,
                        esc(&m.label)
                    );
                }
                None => {
                    let _ = write!(s, r#"<line class="mark {}" x1="{a:.1}" x2="{a:.1}" y1="{MT}" y2="{:.1}"><title>{}</title></line>"#, m.class, MT + f.ph, esc(&m.label));
                }
            }
        }
    }

    /// Grid and value axis; time axis in UTC, and local time below when it differs.
    fn axes(&self, f: &Frame, s: &mut String) {
        let (pw, ph) = (f.pw, f.ph);
        for v in &f.ticks {
            let yy = f.y(*v);
            let _ = write!(s, r#"<line class="grid" x1="{ML}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, ML + pw, ML - 6.0, yy + 4.0, fmt_num(*v));
        }
        let _ = write!(s, r#"<text class="axis-label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#, MT + ph / 2.0, esc(self.y_label));
        let step = time_step(f.x1 - f.x0, 8);
        let mut t = (f.x0 + step - 1).div_euclid(step) * step;
        while t <= f.x1 {
            let xx = f.x(t);
            let _ = write!(s, r#"<line class="tickmark" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"/>"#, MT + ph, MT + ph + 4.0);
            let _ = write!(s, r#"<text class="tick" x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, MT + ph + 16.0, tick_label(t, step, 0));
            if self.local_offset_s != 0 {
                let _ = write!(s, r#"<text class="tick local" x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, MT + ph + 29.0, tick_label(t, step, self.local_offset_s));
            }
            t += step;
        }
        let _ = write!(s, r#"<line class="axis" x1="{ML}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/>"#, ML + pw, MT + ph, MT + ph);
    }

    /// One series as a line, broken where a bucket is missing, with hover dots while few.
    fn line(&self, f: &Frame, se: &Series, s: &mut String) {
        let bw = f.bw;
        let mut pts: Vec<&(i64, f64)> = se.points.iter().collect();
        pts.sort_by_key(|p| p.0);
        let mut path = String::new();
        let mut prev: Option<i64> = None;
        for p in &pts {
            let cx = f.x(p.0) + bw / 2.0;
            let cmd = if prev.is_some_and(|q| p.0 - q <= self.bucket_ns) { 'L' } else { 'M' };
            let _ = write!(path, "{cmd}{cx:.1} {:.1}", f.y(p.1));
            prev = Some(p.0);
        }
        let _ = write!(s, r#"<path class="series" data-series="{}" d="{path}" fill="none" stroke="{}" stroke-width="2"/>"#, esc(&se.name), se.color);
        if pts.len() <= 80 {
            for p in &pts {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}: {} at {}</title></circle>"#,
                    f.x(p.0) + bw / 2.0,
                    f.y(p.1),
                    se.color,
                    esc(&se.name),
                    fmt_num(p.1),
                    tick_label(p.0, 1, 0)
                );
            }
        }
    }

    /// The band from p50 to p99 and the p50 and p90 lines, one polygon per run of
    /// adjacent buckets.
    fn band(&self, f: &Frame, b: &Band, s: &mut String) {
        let mut pts = b.points.clone();
        pts.sort_by_key(|p| p.0);
        let mut runs: Vec<Vec<(i64, f64, f64, f64)>> = Vec::new();
        for p in pts {
            match runs.last_mut() {
                Some(r) if p.0 - r.last().expect("non-empty").0 <= self.bucket_ns => r.push(p),
                _ => runs.push(vec![p]),
            }
        }
        for r in &runs {
            band_run(f, b, r, s);
        }
    }
}

/// Series stacked per bucket, bottom first.
fn stacked_bars(f: &Frame, series: &[Series], s: &mut String) {
    let mut base = std::collections::BTreeMap::<i64, f64>::new();
    // Hover texts only while they do not dominate the page's size.
    let titles = series.iter().map(|s| s.points.len()).sum::<usize>() <= 600;
    for se in series {
        for p in &se.points {
            let b = base.entry(p.0).or_default();
            let (ya, yb) = (f.y(*b), f.y(*b + p.1));
            let title = if titles { format!("<title>{}: {} at {}</title>", esc(&se.name), fmt_num(p.1), tick_label(p.0, 1, 0)) } else { String::new() };
            let _ = write!(
                s,
                r#"<rect class="bar" data-series="{}" x="{:.1}" y="{yb:.1}" width="{:.1}" height="{:.1}" fill="{}">{title}</rect>"#,
                esc(&se.name),
                f.x(p.0),
                (f.bw - 0.5).max(2.5),
                (ya - yb).max(0.5),
                se.color,
            );
            *b += p.1;
        }
    }
}

/// One run of adjacent buckets of a band: the polygon, the two lines and, while few,
/// hover boxes. A run of one bucket is drawn as wide as the bucket.
fn band_run(f: &Frame, b: &Band, r: &[(i64, f64, f64, f64)], s: &mut String) {
    let (x, y, bw) = (|t| f.x(t), |v| f.y(v), f.bw);
    let mut poly = String::new();
    let edge = |t: i64, left: bool| if r.len() == 1 { x(t) + if left { 0.0 } else { bw } } else { x(t) + bw / 2.0 };
    for (i, p) in r.iter().enumerate() {
        let _ = write!(poly, "{:.1},{:.1} ", edge(p.0, i == 0), y(p.3));
    }
    for (i, p) in r.iter().enumerate().rev() {
        let _ = write!(poly, "{:.1},{:.1} ", edge(p.0, i == 0), y(p.1));
    }
    if r.len() == 1 {
        let p = r[0];
        poly = format!("{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", x(p.0), y(p.3), x(p.0) + bw, y(p.3), x(p.0) + bw, y(p.1), x(p.0), y(p.1));
    }
    let _ = write!(s, r#"<polygon class="band" points="{}" fill="{}" fill-opacity="0.25"/>"#, poly.trim(), b.color);
    for (k, width, dash) in [(1usize, 2.0, ""), (2, 1.5, "4 3")] {
        let v = |p: &(i64, f64, f64, f64)| if k == 1 { p.1 } else { p.2 };
        let mut path = String::new();
        for (i, p) in r.iter().enumerate() {
            let _ = write!(path, "{}{:.1} {:.1}", if i == 0 { 'M' } else { 'L' }, x(p.0) + bw / 2.0, y(v(p)));
        }
        if r.len() == 1 {
            let p = r[0];
            path = format!("M{:.1} {:.1}L{:.1} {:.1}", x(p.0), y(v(&p)), x(p.0) + bw, y(v(&p)));
        }
        let _ = write!(s, r#"<path d="{path}" fill="none" stroke="{}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#, b.color);
    }
    if r.len() <= 80 {
        for p in r {
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="transparent"><title>{} at {}: p50 {} µs, p90 {} µs, p99 {} µs</title></rect>"#,
                x(p.0),
                y(p.3),
                bw.max(4.0),
                (y(p.1) - y(p.3)).max(4.0),
                esc(&b.name),
                tick_label(p.0, 1, 0),
                fmt_num(p.1),
                fmt_num(p.2),
                fmt_num(p.3)
            );
        }
    }
}

/// One row of a horizontal bar chart: a label and one value per panel.
pub struct BarRow {
    pub label: String,
    pub color: String,
    pub values: Vec<f64>,
    /// Hover text.
    pub note: String,
}

/// Side-by-side panels (one per measure, each with its own scale), one bar per row and
/// panel, the number written next to it.
pub fn bars(id: &str, panels: &[(&str, &str)], rows: &[BarRow]) -> String {
    let label_w = 190.0;
    let row_h = 26.0;
    let top = 28.0;
    let gap = 24.0;
    let pw = (W - label_w - gap * panels.len() as f64) / panels.len() as f64;
    let h = top + row_h * rows.len() as f64 + 8.0;
    let mut s = String::new();
    let _ = write!(s, r#"<svg class="chart" id="{}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" xmlns="http://www.w3.org/2000/svg">"#, esc(id));
    for (k, (_, title)) in panels.iter().enumerate() {
        let px = label_w + k as f64 * (pw + gap);
        let _ = write!(s, r#"<text class="panel-title" x="{px:.1}" y="16">{}</text>"#, esc(title));
    }
    for (i, r) in rows.iter().enumerate() {
        let ry = top + i as f64 * row_h;
        let _ = write!(s, r#"<g class="bar-row" data-label="{}"><title>{}</title>"#, esc(&r.label), esc(&r.note));
        let _ = write!(s, r#"<text class="row-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, label_w - 10.0, ry + 17.0, esc(&truncate(&r.label, 26)));
        for (k, (key, _)) in panels.iter().enumerate() {
            let v = r.values.get(k).copied().unwrap_or(0.0);
            let max = rows.iter().map(|r| r.values.get(k).copied().unwrap_or(0.0)).fold(0.0, f64::max);
            let px = label_w + k as f64 * (pw + gap);
            let bw = if max > 0.0 { v / max * (pw - 56.0) } else { 0.0 };
            let _ = write!(
                s,
                r#"<rect class="bar" data-metric="{key}" data-value="{v}" x="{px:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{}"/>"#,
                ry + 4.0,
                row_h - 8.0,
                r.color
            );
            let _ = write!(s, r#"<text class="value" data-metric="{key}" x="{:.1}" y="{:.1}">{}</text>"#, px + bw + 5.0, ry + 17.0, fmt_plain(v));
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// A number as the query returned it (integers without decimals).
pub fn fmt_plain(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_data() {
        let svg = bars("t", &[("n", "N")], &[BarRow { label: "<img src=x>".into(), color: GREY.into(), values: vec![1.0], note: "\"&".into() }]);
        assert!(!svg.contains("<img") && svg.contains("&lt;img src=x&gt;") && svg.contains("&quot;&amp;"), "{svg}");
    }

    #[test]
    fn steps_bound_the_number_of_buckets() {
        for span in [1i64, 999_999, 3_500_000_000, 86_400_000_000_000, 40 * 86_400_000_000_000] {
            let s = time_step(span, 600);
            assert!(span / s <= 600, "{span} / {s}");
        }
        assert_eq!(time_step(3_500_000_000, 600), 10_000_000);
        assert_eq!(nice(0.3), 0.5);
        assert_eq!(fmt_plain(169.0), "169");
        assert_eq!(fmt_plain(97.7), "97.7");
    }
}
