//! Automatic snapshot triggers (`--rules FILE`), evaluated on the live stream.
//!
//! ```toml
//! [[rule]]
//! name = "retransmit-storm"
//! retransmits_per_s = 50        # retransmitted segments per second, above this …
//! for = "5s"                    # … for this long
//! port = "5432"                 # optional: local or remote port (or range "8000-8100")
//! cidr = "10.0.0.0/8"           # optional: remote address in this range
//! process = "api"               # optional: owning process name
//! before = "5m"                 # optional: snapshot window (default --snapshot-before/-after)
//! after = "1m"
//!
//! [[rule]]
//! name = "link-broken"          # retransmits and resets together: a broken path, not jitter
//! retransmits_per_s = 5
//! resets_per_s = 1
//! for = "3s"
//!
//! [[rule]]
//! name = "handshakes"
//! failed_handshakes_per_min = 20
//! ```
//! Every threshold a rule sets must be reached (≥) in the same interval; rates are per
//! recorder interval (`--counters-interval`), failed handshakes over the last minute.
//! A rule's `for` counts the way Prometheus's does: the clock starts at the first
//! evaluation that finds the condition true (the end of that interval, since the traffic
//! may have begun anywhere in it), so `for = "2s"` at 1 s intervals fires on the third
//! interval in a row; without `for` a rule fires on the first. It fires again every `for`
//! (at least one interval) while it keeps holding (the open snapshot is then extended). The
//! recorder has no services map (that is the analyzer's, applied later); `port`,
//! `cidr` and `process` select a service the way the map's rules would.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use arrow_array::{Array, BooleanArray, Int32Array, RecordBatch, StringArray, UInt16Array};
use serde::Deserialize;

use crate::enrich::Batches;
use crate::snapshot::Request;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    retransmits_per_s: Option<f64>,
    resets_per_s: Option<f64>,
    failed_handshakes_per_min: Option<f64>,
    #[serde(default, rename = "for", with = "humantime_serde_opt")]
    for_: Option<Duration>,
    port: Option<String>,
    cidr: Option<String>,
    process: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    before: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    after: Option<Duration>,
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

struct Rule {
    spec: RuleSpec,
    ports: Option<(u16, u16)>,
    cidr: Option<ipnet::IpNet>,
    /// Evaluations in a row that found the condition true (0: not holding). Counted,
    /// not timed, so a tick a few ms early does not cost a whole interval.
    held: u32,
    last_fired: Option<i64>,
    /// Failed handshakes per interval over the last minute.
    failed: VecDeque<(i64, u64)>,
}

/// The rules of one recorder.
pub struct Rules {
    rules: Vec<Rule>,
    before: Duration,
    after: Duration,
}

impl Rules {
    /// Reads and checks a rules file; `before`/`after` are the snapshot defaults.
    pub fn load(path: &Path, before: Duration, after: Duration) -> Result<Rules> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read rules file {}", path.display()))?;
        Self::parse(&text, before, after).with_context(|| format!("rules file {}", path.display()))
    }

    pub fn parse(text: &str, before: Duration, after: Duration) -> Result<Rules> {
        let f: File = toml::from_str(text)?;
        let mut rules = Vec::new();
        for spec in f.rule {
            if spec.retransmits_per_s.is_none() && spec.resets_per_s.is_none() && spec.failed_handshakes_per_min.is_none() {
                bail!("rule {:?} has no threshold (retransmits_per_s, resets_per_s, failed_handshakes_per_min)", spec.name);
            }
            let ports = spec.port.as_deref().map(crate::filter::parse_port_range).transpose().map_err(|e| anyhow::anyhow!("rule {:?}: {e}", spec.name))?;
            let cidr = spec.cidr.as_deref().map(crate::filter::parse_cidr).transpose().map_err(|e| anyhow::anyhow!("rule {:?}: {e}", spec.name))?;
            rules.push(Rule { spec, ports, cidr, held: 0, last_fired: None, failed: VecDeque::new() });
        }
        Ok(Rules { rules, before, after })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Looks at one interval's rows (ending at `now_ns`, `interval` long); returns the
    /// snapshots to take.
    pub fn observe(&mut self, rows: &Batches, now_ns: i64, interval: Duration) -> Vec<Request> {
        let secs = interval.as_secs_f64().max(1e-3);
        let mut out = Vec::new();
        for r in &mut self.rules {
            let retrans = count(&rows.retransmits, r, |b, i| {
                let counted = col::<BooleanArray>(b, "counted").is_some_and(|c| c.is_valid(i) && c.value(i));
                if counted { col::<Int32Array>(b, "segments").map_or(1, |s| s.value(i).max(0) as u64) } else { 0 }
            });
            let resets = count(&rows.resets, r, |_, _| 1);
            let failed = count(&rows.flows, r, |b, i| {
                col::<StringArray>(b, "handshake").is_some_and(|h| h.is_valid(i) && h.value(i) != "completed") as u64
            });
            r.failed.push_back((now_ns, failed));
            while r.failed.front().is_some_and(|(t, _)| *t <= now_ns - 60_000_000_000) {
                r.failed.pop_front();
            }
            let failed_min: u64 = r.failed.iter().map(|(_, n)| n).sum();
            let s = &r.spec;
            let holds = s.retransmits_per_s.is_none_or(|x| retrans as f64 / secs >= x)
                && s.resets_per_s.is_none_or(|x| resets as f64 / secs >= x)
                && s.failed_handshakes_per_min.is_none_or(|x| failed_min as f64 >= x);
            if !holds {
                r.held = 0;
                continue;
            }
            r.held = r.held.saturating_add(1);
            let tick = crate::clock::duration_ns(interval);
            let held_ns = i64::from(r.held - 1).saturating_mul(tick);
            let every = crate::clock::duration_ns(s.for_.unwrap_or(interval).max(interval));
            let due = r.last_fired.is_none_or(|t| now_ns - t + tick / 2 >= every);
            if held_ns >= s.for_.map_or(0, crate::clock::duration_ns) && due {
                r.last_fired = Some(now_ns);
                let mut what = Vec::new();
                if s.retransmits_per_s.is_some() {
                    what.push(format!("{:.0} retransmits/s", retrans as f64 / secs));
                }
                if s.resets_per_s.is_some() {
                    what.push(format!("{:.0} resets/s", resets as f64 / secs));
                }
                if s.failed_handshakes_per_min.is_some() {
                    what.push(format!("{failed_min} failed handshakes in a minute"));
                }
                out.push(Request {
                    at_ns: now_ns,
                    before: s.before.unwrap_or(self.before),
                    after: s.after.unwrap_or(self.after),
                    reason: format!("{}: {}", s.name, what.join(", ")),
                    source: format!("rule {}", s.name),
                });
            }
        }
        out
    }
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Option<&'a T> {
    b.column_by_name(name)?.as_any().downcast_ref::<T>()
}

/// Sum of `value` over the rows of `batches` that match the rule's filters.
fn count(batches: &[RecordBatch], r: &Rule, value: impl Fn(&RecordBatch, usize) -> u64) -> u64 {
    let mut n = 0;
    for b in batches {
        let lport = col::<UInt16Array>(b, "lport");
        let rport = col::<UInt16Array>(b, "rport");
        let raddr = col::<StringArray>(b, "raddr");
        let comm = col::<StringArray>(b, "comm");
        for i in 0..b.num_rows() {
            if let Some((lo, hi)) = r.ports {
                let hit = |p: Option<&UInt16Array>| p.is_some_and(|p| p.is_valid(i) && (lo..=hi).contains(&p.value(i)));
                if !hit(lport) && !hit(rport) {
                    continue;
                }
            }
            if let Some(net) = &r.cidr {
                let ok = raddr.is_some_and(|a| a.is_valid(i) && a.value(i).parse::<std::net::IpAddr>().is_ok_and(|ip| net.contains(&ip)));
                if !ok {
                    continue;
                }
            }
            if let Some(p) = &r.spec.process {
                if !comm.is_some_and(|c| c.is_valid(i) && c.value(i) == p) {
                    continue;
                }
            }
            n += value(b, i);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The intervals (1 s each, seconds 1..=n) at which a rule that always holds fires.
    fn fires(rule: &str, n: i64) -> Vec<i64> {
        let text = format!("[[rule]]\nname = \"r\"\nfailed_handshakes_per_min = 0\n{rule}");
        let mut rules = Rules::parse(&text, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
        let sec = 1_000_000_000;
        // Ticks a few ms early or late, as a busy recorder's are.
        (1..=n).filter(|i| !rules.observe(&Batches::default(), i * sec + (i % 3 - 1) * 3_000_000, Duration::from_secs(1)).is_empty()).collect()
    }

    #[test]
    fn for_starts_at_the_first_evaluation_that_holds() {
        assert_eq!(fires("", 3), [1, 2, 3]);
        assert_eq!(fires("for = \"2s\"", 7), [3, 5, 7]);
        assert_eq!(fires("for = \"1s\"", 4), [2, 3, 4]);
        assert_eq!(fires("for = \"500ms\"", 3), [2, 3]);
    }
}
