//! The canned questions: the SQL files in `queries/`, compiled in, each run as
//! `tcpfr <name> REC…`. A file starts with `-- about:` and optional defaults
//! (`-- by:`, `-- window:`, `-- limit:`); each statement is introduced by a
//! `-- title:` line. Placeholders:
//!
//! | placeholder | value |
//! |---|---|
//! | `{by}` / `{by_name}` | grouping expression / its column name (`--by`) |
//! | `{window}` / `{window_s}` / `{window_name}` | `INTERVAL '10 seconds'` / `10.0` / `10s` (`--window`) |
//! | `{range_s}` | length of the question's time range in seconds |
//! | `{limit}` | `--limit` |
//! | `{host}` | `host, ` when the data holds several hosts (or may: lone files), else nothing: a list prefix for rows that are connections, peers or listeners, so that fleet answers name the host |
//! | `{service}` | the services map as an SQL expression over a connection's columns (`lport`, `rport`, `raddr`, `family`, `comm`, `cgroup`): the views' `service` column, for evaluating it late (after a `LIMIT`, on the rows shown) |

use std::time::Duration;

use anyhow::{bail, Result};

pub struct Query {
    pub name: &'static str,
    pub about: String,
    pub default_by: Option<String>,
    pub default_window: Option<String>,
    pub default_limit: Option<u64>,
    /// (title, SQL template)
    pub statements: Vec<(String, String)>,
}

const FILES: &[(&str, &str)] = &[
    ("retransmit-rate", include_str!("../../queries/retransmit-rate.sql")),
    ("hotspots", include_str!("../../queries/hotspots.sql")),
    ("handshakes", include_str!("../../queries/handshakes.sql")),
    ("resets", include_str!("../../queries/resets.sql")),
    ("causes", include_str!("../../queries/causes.sql")),
    ("rtt", include_str!("../../queries/rtt.sql")),
    ("timeline", include_str!("../../queries/timeline.sql")),
    ("top-flows", include_str!("../../queries/top-flows.sql")),
];

pub fn all() -> Vec<Query> {
    FILES.iter().map(|(name, text)| parse(name, text)).collect()
}

pub fn get(name: &str) -> Option<Query> {
    all().into_iter().find(|q| q.name == name)
}

fn parse(name: &'static str, text: &str) -> Query {
    let mut q = Query {
        name,
        about: String::new(),
        default_by: None,
        default_window: None,
        default_limit: None,
        statements: Vec::new(),
    };
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let header = |key: &str| line.strip_prefix(&format!("-- {key}:")).map(|v| v.trim().to_string());
        if let Some(t) = header("title") {
            if let Some(s) = current.take() {
                q.statements.push(s);
            }
            current = Some((t, String::new()));
        } else if let Some((_, sql)) = current.as_mut() {
            sql.push_str(line);
            sql.push('\n');
        } else if let Some(v) = header("about") {
            q.about = v;
        } else if let Some(v) = header("by") {
            q.default_by = Some(v);
        } else if let Some(v) = header("window") {
            q.default_window = Some(v);
        } else if let Some(v) = header("limit") {
            q.default_limit = v.parse().ok();
        }
    }
    if let Some(s) = current {
        q.statements.push(s);
    }
    for (_, sql) in &mut q.statements {
        let trimmed = sql.trim().trim_end_matches(';').trim().to_string();
        *sql = trimmed;
    }
    q
}

/// Groupings `--by` accepts: (name, column name in results, SQL expression).
pub const GROUPINGS: &[(&str, &str, &str)] = &[
    ("service", "service", "service"),
    ("peer", "peer", "raddr || ':' || CAST(rport AS VARCHAR)"),
    ("raddr", "raddr", "raddr"),
    ("lport", "lport", "lport"),
    ("process", "process", "comm"),
    ("host", "host", "host"),
    (
        "flow",
        "flow",
        "laddr || ':' || CAST(lport AS VARCHAR) || ' > ' || raddr || ':' || CAST(rport AS VARCHAR)",
    ),
];

/// Values for a query's placeholders.
pub struct Params {
    pub by: Option<String>,
    pub window: Option<Duration>,
    pub limit: Option<u64>,
    pub range_s: f64,
    /// The services map's SQL ([`crate::session::service_sql`]).
    pub service: String,
    /// The data holds several hosts: rows naming connections or peers name the host.
    pub several_hosts: bool,
}

impl Query {
    /// Whether `--by` changes the answer (a statement groups by `{by}`); the others have
    /// groupings of their own.
    pub fn takes_by(&self) -> bool {
        self.statements.iter().any(|(_, sql)| sql.contains("{by}"))
    }

    /// The statements with placeholders filled in.
    pub fn render(&self, p: &Params) -> Result<Vec<(String, String)>> {
        let by = p.by.clone().or_else(|| self.default_by.clone()).unwrap_or_else(|| "service".into());
        let Some((_, by_name, by_expr)) = GROUPINGS.iter().find(|(n, _, _)| *n == by) else {
            let names: Vec<&str> = GROUPINGS.iter().map(|g| g.0).collect();
            bail!("--by {by}: not a grouping; use one of {}", names.join(", "));
        };
        let window = match p.window {
            Some(w) => w,
            None => humantime::parse_duration(self.default_window.as_deref().unwrap_or("10s")).expect("valid default"),
        };
        if window < Duration::from_millis(1) {
            bail!("--window must be at least 1ms");
        }
        let ms = window.as_millis();
        let interval = if ms % 1000 == 0 { format!("INTERVAL '{} seconds'", ms / 1000) } else { format!("INTERVAL '{ms} milliseconds'") };
        let limit = p.limit.or(self.default_limit).unwrap_or(20);
        let vars = [
            ("{by}", by_expr.to_string()),
            ("{by_name}", by_name.to_string()),
            ("{window}", interval),
            ("{window_s}", format!("{:.3}", window.as_secs_f64())),
            ("{window_name}", humantime::format_duration(window).to_string()),
            ("{range_s}", format!("{:.9}", p.range_s.max(1e-9))),
            ("{limit}", limit.to_string()),
            ("{service}", format!("({})", p.service)),
            ("{host}", if p.several_hosts { "host, ".to_string() } else { String::new() }),
        ];
        Ok(self
            .statements
            .iter()
            .map(|(title, sql)| {
                let mut t = title.clone();
                let mut s = sql.clone();
                for (k, v) in &vars {
                    t = t.replace(k, v);
                    s = s.replace(k, v);
                }
                (t, s)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canned_query_parses_and_renders() {
        for q in all() {
            assert!(!q.about.is_empty(), "{} has no -- about:", q.name);
            assert!(!q.statements.is_empty(), "{} has no statement", q.name);
            let r = q.render(&Params { by: None, window: None, limit: None, range_s: 60.0, service: "'s'".into(), several_hosts: false }).unwrap();
            for (title, sql) in r {
                assert!(!title.contains('{') && !sql.contains("{by") && !sql.contains("{window") && !sql.contains("{limit") && !sql.contains("{host"), "{}: {sql}", q.name);
            }
        }
        let q = get("retransmit-rate").unwrap();
        let r = q.render(&Params { by: Some("peer".into()), window: Some(Duration::from_millis(1500)), limit: None, range_s: 1.0, service: "'s'".into(), several_hosts: false }).unwrap();
        assert!(r[1].1.contains("INTERVAL '1500 milliseconds'") && r[1].1.contains("AS peer"), "{}", r[1].1);
        assert!(q.render(&Params { by: Some("nope".into()), window: None, limit: None, range_s: 1.0, service: "'s'".into(), several_hosts: false }).is_err());
    }
}
