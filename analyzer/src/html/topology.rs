//! The topology picture: services on the left, the peers they talk to on the right, one
//! edge per (service, peer) — as wide as its traffic (log scale), as red as its share
//! of retransmitted segments, labelled with the dominant cause — the seed articles'
//! "mark the retransmit hotspots on the network topology", as self-contained SVG.
//! A two-column layout rather than a force layout: every edge runs one way, nothing
//! overlaps, and the same data draws the same picture.

use std::fmt::Write as _;

use maud::{html, Markup, PreEscaped};

use super::chart::{truncate, GREY};
use super::parts::{nodata, section};
use super::text::esc;
use super::Page;
use crate::report::{group_digits, query, Rows};
use anyhow::Result;

/// Edges drawn at most (the busiest); nodes are those they join.
const MAX_EDGES: usize = 40;

/// Per (service, peer): segments sent (flows with counters), bytes both ways, data
/// segments retransmitted and by which cause.
const EDGES_SQL: &str = "WITH f AS (\
        SELECT coalesce(service, '(unknown)') AS service, raddr AS peer, sum(coalesce(segs_out, 0)) AS segs, \
               sum(coalesce(bytes_acked, 0) + coalesce(bytes_received, 0)) AS bytes \
        FROM flows GROUP BY 1, 2), \
    r AS (\
        SELECT coalesce(service, '(unknown)') AS service, raddr AS peer, sum(segments) AS retrans, \
               sum(CASE WHEN cause = 'timeout' THEN segments ELSE 0 END) AS timeout, \
               sum(CASE WHEN cause = 'fast' THEN segments ELSE 0 END) AS fast, \
               sum(CASE WHEN cause = 'probe' THEN segments ELSE 0 END) AS probe \
        FROM retransmits WHERE counted AND kind = 'data' GROUP BY 1, 2) \
    SELECT coalesce(f.service, r.service) AS service, coalesce(f.peer, r.peer) AS peer, \
           coalesce(f.segs, 0) AS segs, coalesce(f.bytes, 0) AS bytes, coalesce(r.retrans, 0) AS retrans, \
           coalesce(r.timeout, 0) AS timeout, coalesce(r.fast, 0) AS fast, coalesce(r.probe, 0) AS probe \
    FROM f FULL JOIN r ON f.service = r.service AND f.peer = r.peer \
    WHERE coalesce(f.peer, r.peer) <> '' \
    ORDER BY bytes DESC, retrans DESC, service, peer";

struct Edge {
    service: String,
    peer: String,
    segs: f64,
    bytes: f64,
    retrans: f64,
    cause: &'static str,
}

fn edges(rows: &Rows) -> Vec<Edge> {
    (0..rows.len().min(MAX_EDGES))
        .map(|i| {
            let n = |c: &str| rows.f64(i, c).unwrap_or(0.0);
            let causes = [("timeouts (RTO)", n("timeout")), ("fast retransmits", n("fast")), ("tail loss probes", n("probe"))];
            let top = causes.iter().copied().fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
            Edge {
                service: rows.str(i, "service").unwrap_or_default(),
                peer: rows.str(i, "peer").unwrap_or_default(),
                segs: n("segs"),
                bytes: n("bytes"),
                retrans: n("retrans"),
                cause: top.0,
            }
        })
        .collect()
}

/// Retransmitted share of segments sent; 0 when nothing was sent we know of.
fn share(e: &Edge) -> f64 {
    let sent = e.segs.max(e.retrans);
    if sent > 0.0 { e.retrans / sent } else { 0.0 }
}

/// Grey without retransmits, then yellow (under 1%) to red (5% and more).
fn color(share: f64) -> &'static str {
    match share {
        s if s <= 0.0 => GREY,
        s if s < 0.01 => "#edc948",
        s if s < 0.05 => "#f28e2b",
        _ => "#d62728",
    }
}

fn title(e: &Edge) -> String {
    let mut t = format!("{} → {}: {} bytes", e.service, e.peer, group_digits(e.bytes as i64));
    if e.retrans > 0.0 {
        let _ = write!(t, ", {} of {} segments retransmitted ({:.2}%)", group_digits(e.retrans as i64), group_digits(e.segs as i64), 100.0 * share(e));
        if !e.cause.is_empty() {
            let _ = write!(t, ", mostly {}", e.cause);
        }
    }
    t
}

/// The SVG of `edges`.
fn svg(edges: &[Edge]) -> String {
    let mut services: Vec<&str> = Vec::new();
    let mut peers: Vec<&str> = Vec::new();
    for e in edges {
        if !services.contains(&e.service.as_str()) {
            services.push(&e.service);
        }
        if !peers.contains(&e.peer.as_str()) {
            peers.push(&e.peer);
        }
    }
    let (w, row, top) = (720.0, 30.0, 20.0);
    let h = top * 2.0 + row * services.len().max(peers.len()) as f64;
    let y = |i: usize, n: usize| top + (h - 2.0 * top) * (i as f64 + 0.5) / n as f64;
    let (xl, xr) = (200.0, w - 200.0);
    let max_bytes = edges.iter().map(|e| e.bytes).fold(1.0, f64::max);
    let mut s = String::new();
    let _ = write!(s, r#"<svg class="chart" id="chart-topology" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" xmlns="http://www.w3.org/2000/svg">"#);
    for e in edges {
        let (i, j) = (services.iter().position(|x| *x == e.service).unwrap_or(0), peers.iter().position(|x| *x == e.peer).unwrap_or(0));
        let width = 1.0 + 9.0 * (1.0 + e.bytes).ln() / (1.0 + max_bytes).ln();
        let _ = write!(
            s,
            r#"<path class="edge" data-service="{}" data-peer="{}" data-retrans="{}" d="M{xl},{:.1} C{:.1},{:.1} {:.1},{:.1} {xr},{:.1}" stroke="{}" stroke-width="{width:.1}" fill="none" stroke-opacity="0.8"><title>{}</title></path>"#,
            esc(&e.service),
            esc(&e.peer),
            e.retrans,
            y(i, services.len()),
            (xl + xr) / 2.0,
            y(i, services.len()),
            (xl + xr) / 2.0,
            y(j, peers.len()),
            y(j, peers.len()),
            color(share(e)),
            esc(&title(e))
        );
    }
    for (i, n) in services.iter().enumerate() {
        let _ = write!(s, r#"<circle cx="{xl}" cy="{:.1}" r="5" fill="{GREY}"/><text class="row-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, y(i, services.len()), xl - 10.0, y(i, services.len()) + 4.0, esc(&truncate(n, 26)));
    }
    for (j, n) in peers.iter().enumerate() {
        let _ = write!(s, r#"<circle cx="{xr}" cy="{:.1}" r="5" fill="{GREY}"/><text class="row-label" x="{:.1}" y="{:.1}">{}</text>"#, y(j, peers.len()), xr + 10.0, y(j, peers.len()) + 4.0, esc(&truncate(n, 26)));
    }
    s.push_str("</svg>");
    s
}

/// The section: services and peers, edges by traffic and retransmit share.
pub async fn section_markup(page: &Page<'_>) -> Result<Markup> {
    let rows = query(&page.tctx, EDGES_SQL).await?;
    let edges = edges(&rows);
    let intro = html! {
        "Services (left) and the peers they talk to (right), the " (MAX_EDGES) " busiest pairs: an edge is as wide as its bytes (log scale) and coloured by its share of retransmitted segments — grey none, yellow under 1%, orange under 5%, red above; its tooltip names the dominant cause."
    };
    Ok(section("topology", "Topology", Some(intro), html! {
        @if edges.is_empty() {
            (nodata("topology-nodata", "No connections in this time range."))
        } @else {
            (PreEscaped(svg(&edges)))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_coloured_by_share_and_escaped() {
        let e = |service: &str, segs: f64, retrans: f64| Edge { service: service.into(), peer: "10.0.0.1".into(), segs, bytes: 1e6, retrans, cause: "fast retransmits" };
        let s = svg(&[e("db", 1000.0, 60.0), e("<b>", 1000.0, 0.0)]);
        assert!(s.contains(r##"stroke="#d62728""##) && s.contains(&format!(r#"stroke="{GREY}""#)), "{s}");
        assert!(s.contains("db → 10.0.0.1: 1,000,000 bytes, 60 of 1,000 segments retransmitted (6.00%), mostly fast retransmits"), "{s}");
        assert!(!s.contains("<b>") && s.contains("&lt;b&gt;"), "{s}");
        // One peer node for two services.
        assert_eq!(s.matches("<circle").count(), 3);
    }
}
