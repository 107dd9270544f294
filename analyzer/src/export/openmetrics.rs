//! The OpenMetrics text the export writes: one family after another (HELP, TYPE, UNIT,
//! then its samples), each series' samples together in time order, `# EOF` last.
//!
//! Each family is one SQL query over the analyzer's views returning
//! `host, <labels…>, k, <values…>` per step `k` and label set, sorted by labels then
//! step; [`Series`] cumulates the values while the rows stream in and fills the steps
//! without events, so nothing but the current series is held.

use std::io::Write;

use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;
use futures::StreamExt;
use tcpfr_schema::metrics::{self as contract, Kind};

use super::Grid;

const FROM_ZERO: &str = "counted from 0 at the start of the exported window";

/// A family of the contract ([`tcpfr_schema::metrics`]: name, type, unit, help, labels,
/// shared with the recorder's live endpoint) and how the export computes it.
struct Family {
    contract: &'static contract::Family,
    /// Series start at the window's start rather than one step before their first event.
    from_start: bool,
    /// `SELECT host, <labels>, k, <values>` with `{k}` and `{peer}` to fill in, and for
    /// a histogram `{buckets}`: the count of rows at or below each of its bounds.
    sql: &'static str,
    /// A histogram's value in microseconds, as SQL (compared with its bounds).
    value_us: &'static str,
}

impl std::ops::Deref for Family {
    type Target = contract::Family;
    fn deref(&self) -> &contract::Family {
        self.contract
    }
}

const FAMILIES: &[Family] = &[
    Family {
        contract: &contract::RETRANSMITTED_SEGMENTS,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, kind, {k} AS k, sum(segments) AS v \
              FROM retransmits WHERE counted GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        value_us: "",
    },
    Family {
        contract: &contract::RETRANSMIT_CAUSES,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, cause, {k} AS k, sum(segments) AS v \
              FROM retransmits WHERE counted AND kind = 'data' AND cause IS NOT NULL GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        value_us: "",
    },
    Family {
        contract: &contract::RETRANSMIT_FAILURES,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, {k} AS k, count(*) AS v \
              FROM retransmits WHERE NOT counted GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        value_us: "",
    },
    Family {
        contract: &contract::HANDSHAKE_FAILURES,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, coalesce(role, 'unknown') AS role, handshake AS cause, {k} AS k, count(*) AS v \
              FROM flows WHERE handshake IS NOT NULL AND handshake <> 'completed' \
              GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
        value_us: "",
    },
    Family {
        contract: &contract::CONNECT_DURATION,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, {k} AS k, count(*) AS c, sum({value}) AS s, {buckets} \
              FROM flows WHERE role = 'client' AND handshake = 'completed' AND handshake_ns IS NOT NULL \
              GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        value_us: "handshake_ns / 1000",
    },
    Family {
        contract: &contract::RESETS,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, direction, {k} AS k, count(*) AS v \
              FROM resets GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        value_us: "",
    },
    Family {
        contract: &contract::STATE_CHANGES,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, new_state AS state, {k} AS k, count(*) AS v \
              FROM state_changes GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        value_us: "",
    },
    Family {
        contract: &contract::RTT,
        from_start: false,
        sql: "SELECT host, coalesce(service, 'unknown') AS service, {peer} AS peer, {k} AS k, count(*) AS c, sum({value}) AS s, {buckets} \
              FROM rtt_samples GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        value_us: "CAST(srtt_us AS BIGINT)",
    },
    Family {
        contract: &contract::LOCAL_DROPS,
        from_start: false,
        sql: "SELECT host, {peer} AS peer, direction, reason, {k} AS k, sum(packets) AS v \
              FROM drops GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        value_us: "",
    },
    Family {
        contract: &contract::LISTENER_DROPS,
        from_start: false,
        sql: "SELECT host, CASE WHEN strpos(laddr, ':') > 0 THEN '[' || laddr || ']' ELSE laddr END || ':' || CAST(lport AS VARCHAR) AS listener, \
              {k} AS k, sum(drops) AS v FROM listeners WHERE drops > 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        value_us: "",
    },
    Family {
        contract: &contract::HOST_OUT_SEGMENTS,
        from_start: true,
        sql: "SELECT host, {k} AS k, sum(out_segs) AS v FROM host_counters GROUP BY 1, 2 ORDER BY 1, 2",
        value_us: "",
    },
    Family {
        contract: &contract::HOST_RETRANS_SEGMENTS,
        from_start: true,
        sql: "SELECT host, {k} AS k, sum(retrans_segs) AS v FROM host_counters GROUP BY 1, 2 ORDER BY 1, 2",
        value_us: "",
    },
];

#[derive(Debug, Default)]
pub struct Stats {
    pub series: u64,
    pub samples: u64,
    pub host_label: bool,
}

pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes every family of the window `grid` covers (the session's views are cut to it).
pub async fn write(ctx: &SessionContext, grid: &Grid, max_peers: usize, out: &mut dyn Write) -> Result<Stats> {
    let mut stats = Stats::default();
    let hosts = column_strings(ctx, HOSTS_SQL).await.context("finding the hosts")?;
    stats.host_label = hosts.len() > 1;
    let peers = column_strings(ctx, &PEERS_SQL.replace("{limit}", &max_peers.to_string())).await.context("ranking peers")?;
    let peer_sql = if peers.is_empty() || max_peers == 0 {
        "'other'".to_string()
    } else {
        let list: Vec<String> = peers.iter().map(|p| format!("'{}'", p.replace('\'', "''"))).collect();
        format!("CASE WHEN raddr IN ({}) THEN raddr ELSE 'other' END", list.join(", "))
    };
    for f in FAMILIES {
        write_meta(out, f)?;
        let buckets: Vec<String> = f
            .buckets
            .iter()
            .enumerate()
            .map(|(i, (us, _))| format!("sum(CASE WHEN {} <= {us} THEN 1 ELSE 0 END) AS b{i}", f.value_us))
            .collect();
        let sql = f
            .sql
            .replace("{k}", &grid.k_sql())
            .replace("{peer}", &peer_sql)
            .replace("{buckets}", &buckets.join(", "))
            .replace("{value}", f.value_us);
        write_family(ctx, f, &sql, grid, stats.host_label, out, &mut stats)
            .await
            .with_context(|| format!("computing {}", f.name))?;
    }
    out.write_all(b"# EOF\n")?;
    Ok(stats)
}

/// Hosts with rows in the window.
const HOSTS_SQL: &str = "SELECT DISTINCT host FROM (\
    SELECT host FROM retransmits UNION ALL SELECT host FROM resets UNION ALL SELECT host FROM flows \
    UNION ALL SELECT host FROM state_changes UNION ALL SELECT host FROM rtt_samples UNION ALL SELECT host FROM host_counters \
    UNION ALL SELECT host FROM drops UNION ALL SELECT host FROM listeners) \
    ORDER BY 1";

/// The peers that get their own series: most trouble events, then most RTT samples.
const PEERS_SQL: &str = "SELECT peer FROM (\
    SELECT raddr AS peer, count(*) AS events, 0 AS samples FROM retransmits GROUP BY 1 \
    UNION ALL SELECT raddr, count(*), 0 FROM resets GROUP BY 1 \
    UNION ALL SELECT raddr, count(*), 0 FROM flows WHERE handshake IS NOT NULL AND handshake <> 'completed' GROUP BY 1 \
    UNION ALL SELECT raddr, sum(packets), 0 FROM drops GROUP BY 1 \
    UNION ALL SELECT raddr, 0, count(*) FROM rtt_samples GROUP BY 1) \
    WHERE peer IS NOT NULL AND peer <> '' AND peer <> 'other' \
    GROUP BY peer ORDER BY sum(events) DESC, sum(samples) DESC, peer LIMIT {limit}";

async fn column_strings(ctx: &SessionContext, sql: &str) -> Result<Vec<String>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut v = Vec::new();
    for b in batches {
        let col = strings(b.column(0))?;
        for i in 0..col.len() {
            if !col.is_null(i) {
                v.push(col.value(i).to_string());
            }
        }
    }
    Ok(v)
}

fn strings(a: &ArrayRef) -> Result<StringArray> {
    let c = cast(a, &DataType::Utf8)?;
    Ok(c.as_any().downcast_ref::<StringArray>().context("text column")?.clone())
}

fn ints(a: &ArrayRef) -> Result<Int64Array> {
    let c = cast(a, &DataType::Int64)?;
    Ok(c.as_any().downcast_ref::<Int64Array>().context("integer column")?.clone())
}

fn write_meta(out: &mut dyn Write, f: &Family) -> Result<()> {
    let (ty, help) = match f.kind {
        Kind::Counter => ("counter", format!("{}; {FROM_ZERO}.", f.help)),
        Kind::Histogram => ("histogram", format!("{}; buckets and sum {FROM_ZERO}.", f.help)),
    };
    writeln!(out, "# HELP {} {}", f.name, help.replace('\\', "\\\\").replace('\n', "\\n"))?;
    writeln!(out, "# TYPE {} {ty}", f.name)?;
    if let Some(u) = f.unit {
        writeln!(out, "# UNIT {} {u}", f.name)?;
    }
    Ok(())
}

/// One series being written: its labels, the last step written and its running totals.
struct Series {
    key: Vec<String>,
    labels: String,
    k: i64,
    values: Vec<i64>,
}

async fn write_family(
    ctx: &SessionContext,
    f: &Family,
    sql: &str,
    grid: &Grid,
    host_label: bool,
    out: &mut dyn Write,
    stats: &mut Stats,
) -> Result<()> {
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    let n_labels = 1 + f.labels.len();
    let mut current: Option<Series> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let labels = (0..n_labels).map(|i| strings(batch.column(i))).collect::<Result<Vec<_>>>()?;
        let ks = ints(batch.column(n_labels))?;
        let values = (n_labels + 1..batch.num_columns()).map(|i| ints(batch.column(i))).collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            let key: Vec<String> = labels.iter().map(|a| if a.is_null(row) { String::new() } else { a.value(row).to_string() }).collect();
            let k = ks.value(row).clamp(1, grid.steps);
            if current.as_ref().is_none_or(|s| s.key != key) {
                if let Some(s) = current.take() {
                    finish(f, grid, s, out, stats)?;
                }
                let mut s = Series {
                    labels: label_text(f, &key, host_label),
                    key,
                    k: if f.from_start { -1 } else { k - 2 },
                    values: vec![0; values.len()],
                };
                stats.series += 1;
                // The series starts at 0.
                fill(f, grid, &mut s, k - 1, out, stats)?;
                current = Some(s);
            }
            let s = current.as_mut().expect("set above");
            fill(f, grid, s, k - 1, out, stats)?;
            for (total, col) in s.values.iter_mut().zip(&values) {
                *total += if col.is_null(row) { 0 } else { col.value(row) };
            }
            fill(f, grid, s, k, out, stats)?;
        }
    }
    if let Some(s) = current.take() {
        finish(f, grid, s, out, stats)?;
    }
    Ok(())
}

/// Writes the series' current totals at every step after its last one, up to `k`.
fn fill(f: &Family, grid: &Grid, s: &mut Series, k: i64, out: &mut dyn Write, stats: &mut Stats) -> Result<()> {
    while s.k < k {
        s.k += 1;
        point(f, grid, s, out)?;
        stats.samples += match f.kind {
            Kind::Counter => 1,
            Kind::Histogram => f.buckets.len() as u64 + 3,
        };
    }
    Ok(())
}

fn finish(f: &Family, grid: &Grid, mut s: Series, out: &mut dyn Write, stats: &mut Stats) -> Result<()> {
    fill(f, grid, &mut s, grid.steps, out, stats)
}

/// The series' sample(s) at step `s.k`.
fn point(f: &Family, grid: &Grid, s: &Series, out: &mut dyn Write) -> Result<()> {
    let ts = seconds(grid.time(s.k));
    let sep = if s.labels.is_empty() { "" } else { "," };
    match f.kind {
        Kind::Counter => {
            let l = if s.labels.is_empty() { String::new() } else { format!("{{{}}}", s.labels) };
            writeln!(out, "{}_total{l} {} {ts}", f.name, s.values[0])?;
        }
        Kind::Histogram => {
            // values: count, sum (µs), then the cumulative buckets.
            for (i, (_, le)) in f.buckets.iter().enumerate() {
                writeln!(out, "{}_bucket{{{}{sep}le=\"{le}\"}} {} {ts}", f.name, s.labels, s.values[2 + i])?;
            }
            writeln!(out, "{}_bucket{{{}{sep}le=\"+Inf\"}} {} {ts}", f.name, s.labels, s.values[0])?;
            let l = if s.labels.is_empty() { String::new() } else { format!("{{{}}}", s.labels) };
            writeln!(out, "{}_count{l} {} {ts}", f.name, s.values[0])?;
            writeln!(out, "{}_sum{l} {} {ts}", f.name, micros_as_seconds(s.values[1]))?;
        }
    }
    Ok(())
}

/// Exact decimal seconds of a count of microseconds (no float rounding).
fn micros_as_seconds(us: i64) -> String {
    let (s, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

/// `host="…",service="…",…` (host only when several hosts are exported).
fn label_text(f: &Family, key: &[String], host_label: bool) -> String {
    let mut parts = Vec::new();
    if host_label {
        parts.push(format!("host=\"{}\"", escape(&key[0])));
    }
    for (name, value) in f.labels.iter().zip(&key[1..]) {
        parts.push(format!("{name}=\"{}\"", escape(value)));
    }
    parts.join(",")
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// An OpenMetrics timestamp: seconds, with milliseconds when there are any.
fn seconds(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{frac:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_labels() {
        assert_eq!(seconds(1_795_427_010_000_000_000), "1795427010");
        assert_eq!(seconds(1_795_427_010_500_000_000), "1795427010.500");
        assert_eq!(micros_as_seconds(0), "0");
        assert_eq!(micros_as_seconds(1_500_000), "1.5");
        assert_eq!(micros_as_seconds(1_234), "0.001234");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let f = &FAMILIES[0];
        let key = vec!["h".to_string(), "db".to_string(), "10.0.0.1".to_string(), "data".to_string()];
        assert_eq!(label_text(f, &key, false), "service=\"db\",peer=\"10.0.0.1\",kind=\"data\"");
        assert!(label_text(f, &key, true).starts_with("host=\"h\","));
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;

    #[test]
    fn the_export_computes_every_family_of_the_contract_in_its_order() {
        let ours: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        let theirs: Vec<&str> = contract::FAMILIES.iter().map(|f| f.name).collect();
        assert_eq!(ours, theirs);
    }
}
