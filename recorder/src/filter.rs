//! The recorder's filters (`--port`, `--cidr`, `--cgroup`): which connections' rows are
//! written. Filtered rows are counted in `recorder_stats.events_filtered`, so a
//! filtered recording says so. Host counters are never filtered.

use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;

use crate::net::Endpoints;
use crate::procinfo::Owner;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Inclusive port ranges; a connection matches if its local or remote port is in one.
    pub ports: Vec<(u16, u16)>,
    /// A connection matches if its local or remote address is in one. A listener on
    /// every address (0.0.0.0, ::) matches any: it takes the connections the filter
    /// asks for too.
    pub cidrs: Vec<IpNet>,
    /// cgroup path prefixes (`/system.slice/api.service`); matches the socket owner's.
    pub cgroups: Vec<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.cidrs.is_empty() && self.cgroups.is_empty()
    }

    /// Whether a row about this connection is kept. Every given kind of filter must
    /// match (ports AND cidrs AND cgroups); within a kind, any one value.
    pub fn keeps(&self, ends: &Endpoints, owner: Option<&Owner>) -> bool {
        if !self.ports.is_empty()
            && !self
                .ports
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&ends.lport) || (lo..=hi).contains(&ends.rport))
        {
            return false;
        }
        let wildcard_listener = ends.lip.is_unspecified() && ends.rip.is_unspecified();
        if !self.cidrs.is_empty() && !wildcard_listener && !self.cidrs.iter().any(|n| n.contains(&ends.lip) || n.contains(&ends.rip)) {
            return false;
        }
        if !self.cgroups.is_empty() {
            let Some(path) = owner.and_then(|o| o.cgroup.as_deref()) else { return false };
            if !self.cgroups.iter().any(|p| cgroup_under(path, p)) {
                return false;
            }
        }
        true
    }
}

fn cgroup_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || prefix.is_empty() || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// `80`, `8000-8100`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let lo: u16 = lo.parse().with_context(|| format!("bad port {lo:?} in {s:?}"))?;
    let hi: u16 = hi.parse().with_context(|| format!("bad port {hi:?} in {s:?}"))?;
    if lo > hi {
        bail!("port range {s:?} is empty (start > end)");
    }
    Ok((lo, hi))
}

/// `10.0.0.0/8`, `fd00::/8`, or a single address.
pub fn parse_cidr(s: &str) -> Result<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    let ip: IpAddr = s.parse().with_context(|| format!("{s:?} is neither an address nor a CIDR like 10.0.0.0/8"))?;
    Ok(IpNet::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ends(l: &str, lp: u16, r: &str, rp: u16) -> Endpoints {
        Endpoints {
            family: Arc::from("ipv4"),
            laddr: Arc::from(l),
            lport: lp,
            raddr: Arc::from(r),
            rport: rp,
            lip: l.parse().unwrap(),
            rip: r.parse().unwrap(),
        }
    }

    #[test]
    fn ports_cidrs_and_cgroups_combine() {
        let f = Filter {
            ports: vec![parse_port_range("5432").unwrap(), parse_port_range("8000-8100").unwrap()],
            cidrs: vec![parse_cidr("10.0.0.0/8").unwrap()],
            cgroups: vec![],
        };
        assert!(f.keeps(&ends("10.0.0.1", 40000, "10.0.0.34", 5432), None));
        assert!(f.keeps(&ends("10.0.0.1", 8050, "192.168.0.1", 1), None));
        assert!(!f.keeps(&ends("10.0.0.1", 40000, "10.0.0.34", 5433), None));
        assert!(!f.keeps(&ends("192.168.0.2", 40000, "192.168.0.3", 5432), None));
        // Listeners: on every address, kept; on an address outside, not.
        assert!(f.keeps(&ends("0.0.0.0", 5432, "0.0.0.0", 0), None));
        assert!(f.keeps(&ends("::", 5432, "::", 0), None));
        assert!(!f.keeps(&ends("192.168.0.2", 5432, "0.0.0.0", 0), None));
        let g = Filter { cgroups: vec!["/system.slice/api.service".into()], ..Default::default() };
        let owner = Owner {
            pid: 1,
            comm: Arc::from("api"),
            cgroup_id: None,
            cgroup: Some(Arc::from("/system.slice/api.service/worker")),
            container_id: None,
        };
        assert!(g.keeps(&ends("1.1.1.1", 1, "2.2.2.2", 2), Some(&owner)));
        let other = Owner { cgroup: Some(Arc::from("/system.slice/api.service2")), ..owner };
        assert!(!g.keeps(&ends("1.1.1.1", 1, "2.2.2.2", 2), Some(&other)));
        assert!(!g.keeps(&ends("1.1.1.1", 1, "2.2.2.2", 2), None));
        assert!(parse_port_range("90-80").is_err());
        assert!(parse_cidr("10.0.0.300/8").is_err());
        assert_eq!(parse_cidr("fd00::1").unwrap().prefix_len(), 128);
    }
}
