//! The services map as one SQL expression over the columns every event table has
//! (`lport`, `rport`, `raddr`, `family`, `comm`, `cgroup`): `CASE`s chained with
//! `coalesce`, so any engine can apply it — the `service` column of the analyzer's
//! views, DuckDB in the benchmark, Ballista's executors. The same decision as
//! [`crate::Matcher`]; the analyzer tests the two against each other row by row.

use anyhow::{Context, Result};

use crate::{ServiceMap, WELL_KNOWN};

impl ServiceMap {
    /// The SQL expression naming the service of a row of an event table.
    pub fn sql(&self) -> Result<String> {
        let mut arms = Vec::new();
        for r in &self.rules {
            let mut conds = Vec::new();
            if let Some(p) = &r.lport {
                let (a, b) = p.range()?;
                conds.push(format!("lport BETWEEN {a} AND {b}"));
            }
            if let Some(p) = &r.rport {
                let (a, b) = p.range()?;
                conds.push(format!("rport BETWEEN {a} AND {b}"));
            }
            if let Some(c) = &r.cidr {
                conds.push(cidr_sql(c)?);
            }
            if let Some(p) = &r.process {
                conds.push(format!("comm LIKE {}", glob_to_like(p)));
            }
            if let Some(c) = &r.cgroup {
                conds.push(format!("cgroup LIKE {}", glob_to_like(c)));
            }
            arms.push(format!("WHEN {} THEN {}", conds.join(" AND "), quote(&r.name)));
        }
        // First match wins: the user's rules, then well-known remote ports, then local
        // ones, then the process. Each stage yields NULL when nothing matches (names are
        // never NULL), so the stages chain with coalesce; the port stages are simple
        // CASEs (`CASE rport WHEN 22 …`), which DataFusion evaluates as one lookup per
        // row instead of one comparison per arm.
        let mut stages = Vec::new();
        if !arms.is_empty() {
            stages.push(format!("CASE {} END", arms.join(" ")));
        }
        for col in ["rport", "lport"] {
            let whens: Vec<String> = WELL_KNOWN.iter().map(|(port, name)| format!("WHEN {port} THEN '{name}'")).collect();
            stages.push(format!("CASE {col} {} END", whens.join(" ")));
        }
        stages.push("coalesce(comm, 'unknown')".into());
        Ok(format!("coalesce({})", stages.join(", ")))
    }

}

pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `nginx*` → `'nginx%'` (with `%`, `_` escaped).
pub fn glob_to_like(g: &str) -> String {
    let mut out = String::new();
    for c in g.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    format!("'{out}' ESCAPE '\\'")
}

/// A CIDR test on `raddr` in plain SQL. IPv4: the address as a number, compared with
/// the network's range (any prefix length). IPv6: the `cidr_contains` function (an
/// analyzer UDF; other engines need it registered too).
fn cidr_sql(c: &str) -> Result<String> {
    let net: ipnet::IpNet = c.parse().with_context(|| format!("bad cidr {c:?}"))?;
    Ok(match net {
        ipnet::IpNet::V4(n) => {
            let lo = u32::from(n.network());
            let hi = u32::from(n.broadcast());
            format!(
                "(family = 'ipv4' AND (TRY_CAST(split_part(raddr, '.', 1) AS BIGINT) * 16777216 + TRY_CAST(split_part(raddr, '.', 2) AS BIGINT) * 65536 \
                 + TRY_CAST(split_part(raddr, '.', 3) AS BIGINT) * 256 + TRY_CAST(split_part(raddr, '.', 4) AS BIGINT)) BETWEEN {lo} AND {hi})"
            )
        }
        ipnet::IpNet::V6(_) => format!("(family = 'ipv6' AND cidr_contains({}, raddr))", quote(c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(glob_to_like("ngin_x*"), r"'ngin\_x%' ESCAPE '\'");
        assert!(crate::glob_match("/kubepods/*", "/kubepods/pod1/x"));
        assert!(!crate::glob_match("nginx", "nginx2"));
    }
}
