//! The report's sentences on causes (`tcpfr causes`): why segments were retransmitted,
//! which retransmits followed this host's own drops, full accept queues, local drops,
//! and what limited connections.

use std::fmt::Write as _;

use anyhow::Result;
use datafusion::execution::context::SessionContext;

use super::{canned_part, group_digits, plural, query};
use crate::canned;

/// Why segments were retransmitted, per service (`tcpfr causes`): the share of each
/// cause, and the longest RTO stall of the service.
pub async fn retransmits(ctx: &SessionContext, params: &canned::Params) -> Result<Vec<String>> {
    let by = canned_part(ctx, "causes", 1, params).await?;
    let stalls = canned_part(ctx, "causes", 2, params).await?;
    let dropped = canned_part(ctx, "causes", 6, params).await?;
    // Matching needs retransmits with sequence numbers (format 1.2) and drops recorded
    // (a recorder that recorded them has stats rows of that stream).
    let count = |sql: &'static str| async move { Ok::<_, anyhow::Error>(query(ctx, sql).await?.i64(0, "n").unwrap_or(0)) };
    let matchable = count("SELECT count(*) AS n FROM retransmits WHERE seq IS NOT NULL").await? > 0
        && count("SELECT count(*) AS n FROM recorder_stats WHERE stream = 'drops'").await? > 0;
    let mut out = Vec::new();
    for i in 0..by.len().min(3) {
        let total = by.i64(i, "retrans_segs").unwrap_or(0);
        // Recordings before format 1.2 have no causes.
        if total == 0 || by.i64(i, "unknown").unwrap_or(0) == total {
            continue;
        }
        let service = by.str(i, "service").unwrap_or_default();
        let pct = |col: &str| 100.0 * by.i64(i, col).unwrap_or(0) as f64 / total as f64;
        let causes = [
            ("timeout", "after RTO timeouts"),
            ("fast", "fast retransmits"),
            ("probe", "tail loss probes"),
            ("other", "other causes"),
            ("unknown", "of unknown cause"),
        ];
        // The counts add up to the total: one share at least is shown.
        let shares: Vec<String> =
            causes.iter().filter(|(col, _)| pct(col) >= 0.5).map(|(col, words)| format!("{:.0}% {words}", pct(col))).collect();
        let mut s = format!("{service}: of {}, {}", plural(total, "retransmitted segment", "retransmitted segments"), shares.join(", "));
        if let Some(j) = (0..stalls.len()).find(|&j| stalls.str(j, "service").as_deref() == Some(service.as_str())) {
            let peer = stalls.str(j, "peer").unwrap_or_default();
            // A lone timeout is a stall of one RTO, which the rows do not time.
            if stalls.i64(j, "timeouts").unwrap_or(0) > 1 {
                let _ = write!(
                    s,
                    "; the longest RTO stall lasted {} s (backoff up to {}) toward {peer}",
                    stalls.f64(j, "stalled_s").unwrap_or(0.0),
                    stalls.i64(j, "max_backoff").unwrap_or(0),
                );
            } else {
                let _ = write!(s, "; no stall longer than one RTO (toward {peer})");
            }
        }
        if matchable {
            s += &dropped_here(ctx, &dropped, &service).await?;
        }
        out.push(s + ".");
    }
    Ok(out)
}

/// "; 6 of them resent because this host dropped the original (NETFILTER_DROP as it
/// left)", or, when none were, where the loss must have been: on the path, unless the
/// peer reported most of them as duplicates (DSACK), then nothing was lost.
async fn dropped_here(ctx: &SessionContext, dropped: &super::Rows, service: &str) -> Result<String> {
    let rows: Vec<usize> = (0..dropped.len()).filter(|&j| dropped.str(j, "service").as_deref() == Some(service)).collect();
    if rows.is_empty() {
        let svc = service.replace('\'', "''");
        let r = query(
            ctx,
            &format!(
                "SELECT raddr, sum(segments) AS n FROM retransmits WHERE counted AND kind = 'data' AND service = '{svc}' \
                 GROUP BY raddr ORDER BY sum(segments) DESC, raddr"
            ),
        )
        .await?;
        let total: i64 = (0..r.len()).map(|i| r.i64(i, "n").unwrap_or(0)).sum();
        let dsack = query(ctx, &format!("SELECT sum(dsack_dups) AS n FROM flows WHERE service = '{svc}'")).await?.i64(0, "n").unwrap_or(0);
        return Ok(match r.str(0, "raddr") {
            Some(_) if 2 * dsack >= total => "; none after a drop on this host, and most were not needed (DSACK)".to_string(),
            Some(p) => format!("; none after a drop on this host: lost on the path toward {p}"),
            None => String::new(),
        });
    }
    let n: i64 = rows.iter().map(|&j| dropped.i64(j, "retrans_segs").unwrap_or(0)).sum();
    let why: Vec<String> = rows
        .iter()
        .take(3)
        .map(|&j| {
            let place = if dropped.str(j, "direction").as_deref() == Some("in") { "on arrival" } else { "as it left" };
            format!("{} {place}", dropped.str(j, "reason").unwrap_or_default())
        })
        .collect();
    Ok(format!("; {} of them resent because this host dropped the original ({})", group_digits(n), why.join(", ")))
}

/// What limited connections (`tcpfr causes`, part 5): services whose senders the
/// receiver's window or their own send buffer held back for a fifth of their busy time
/// or more (of a second at least), and those with many retransmissions the peer did not
/// need (DSACK).
pub async fn limits(ctx: &SessionContext, params: &canned::Params) -> Result<Vec<String>> {
    let l = canned_part(ctx, "causes", 5, params).await?;
    let mut out = Vec::new();
    for i in 0..l.len().min(5) {
        let busy = l.f64(i, "busy_s").unwrap_or(0.0);
        let mut parts = Vec::new();
        for (col, words) in [
            ("receiver_window_pct", ("the receiver's window", "the peer reads slowly or its receive buffer is small")),
            ("send_buffer_pct", ("its own send buffer", "SO_SNDBUF or tcp_wmem too small for the path")),
        ] {
            let pct = l.f64(i, col).unwrap_or(0.0);
            // A fifth of a few milliseconds is no finding.
            if pct >= 20.0 && busy >= 1.0 {
                parts.push(format!("{} held the sender back {pct:.0}% of its {busy} s busy time ({})", words.0, words.1));
            }
        }
        let (spurious, share) = (l.i64(i, "spurious_segs").unwrap_or(0), l.f64(i, "spurious_pct").unwrap_or(0.0));
        if spurious > 0 && share >= 10.0 {
            parts.push(format!(
                "{} ({share:.0}%) were not needed: the peer already had them (DSACK)",
                plural(spurious, "retransmitted segment", "retransmitted segments")
            ));
        }
        if !parts.is_empty() {
            out.push(format!("{}: {}.", l.str(i, "service").unwrap_or_default(), parts.join("; ")));
        }
    }
    Ok(out)
}

/// Listeners that dropped connection attempts (`tcpfr causes`, part 3).
pub async fn listeners(ctx: &SessionContext, params: &canned::Params) -> Result<Vec<String>> {
    let l = canned_part(ctx, "causes", 3, params).await?;
    Ok((0..l.len().min(3))
        .map(|i| {
            format!(
                "Listener {} ({}) dropped {}: accept queue full (limit {}, up to {} waiting).",
                l.str(i, "listener").unwrap_or_default(),
                l.str(i, "process").filter(|p| !p.is_empty()).unwrap_or_else(|| "unknown process".into()),
                plural(l.i64(i, "drops").unwrap_or(0), "connection attempt", "connection attempts"),
                l.i64(i, "queue_limit").unwrap_or(0),
                l.i64(i, "max_waiting").unwrap_or(0)
            )
        })
        .collect())
}

/// TCP packets this host dropped itself (`tcpfr causes`, part 4): one sentence, the
/// three largest (reason, direction, peer) groups.
pub async fn local_drops(ctx: &SessionContext, params: &canned::Params) -> Result<Vec<String>> {
    let d = canned_part(ctx, "causes", 4, params).await?;
    let total = query(ctx, "SELECT sum(packets) AS p FROM drops").await?.i64(0, "p").unwrap_or(0);
    if total == 0 {
        return Ok(Vec::new());
    }
    let groups: Vec<String> = (0..d.len().min(3))
        .map(|i| {
            let out = d.str(i, "direction").as_deref() == Some("out");
            format!(
                "{} {} {} {} port {}",
                group_digits(d.i64(i, "packets").unwrap_or(0)),
                d.str(i, "reason").unwrap_or_default(),
                if out { "sent to" } else { "received from" },
                d.str(i, "peer").unwrap_or_default(),
                d.i64(i, "port").unwrap_or(0)
            )
        })
        .collect();
    Ok(vec![format!("This host dropped {} itself: {}.", plural(total, "TCP packet", "TCP packets"), groups.join("; "))])
}

