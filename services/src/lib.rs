//! The services map: which service a connection belongs to. One crate so that the
//! analyzer (which compiles the map to SQL, applied at query time) and the recorder
//! (which labels its live metrics with it) decide the same way.
//!
//! Rules come from a TOML file, then built-in rules for well-known ports; first match
//! wins; otherwise the connection is named after its local process, else `unknown`.
//!
//! ```toml
//! [[service]]
//! name = "db"
//! rport = "5432"             # remote port or range ("8000-8100")
//! [[service]]
//! name = "api"
//! lport = "8080"             # local port or range
//! cidr = "10.0.0.0/8"        # remote address in this network
//! [[service]]
//! name = "ingress"
//! process = "nginx*"         # local process name (glob: * and ?)
//! cgroup = "/kubepods/*"     # cgroup path (glob)
//! ```
//! All conditions of a rule must hold. [`Matcher`] is the decision in Rust;
//! [`ServiceMap::sql`] (`compile`) the same as one SQL expression, which the analyzer
//! tests against it row by row; `sql` (feature `sql`) has the SQL functions that
//! expression calls.

mod compile;
#[cfg(feature = "sql")]
pub mod sql;

pub use compile::glob_to_like;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Well-known server ports → service names, checked on the remote port (we are the
/// client) and then the local port (we are the server).
pub const WELL_KNOWN: &[(u16, &str)] = &[
    (22, "ssh"),
    (25, "smtp"),
    (53, "dns"),
    (80, "http"),
    (110, "pop3"),
    (143, "imap"),
    (389, "ldap"),
    (443, "https"),
    (465, "smtps"),
    (587, "submission"),
    (636, "ldaps"),
    (993, "imaps"),
    (1433, "mssql"),
    (1521, "oracle"),
    (2181, "zookeeper"),
    (2379, "etcd"),
    (3306, "mysql"),
    (4222, "nats"),
    (5432, "postgres"),
    (5672, "amqp"),
    (6379, "redis"),
    (6443, "kubernetes-api"),
    (8080, "http-alt"),
    (8443, "https-alt"),
    (9042, "cassandra"),
    (9092, "kafka"),
    (9200, "elasticsearch"),
    (11211, "memcached"),
    (27017, "mongodb"),
];

/// The name for a port of [`WELL_KNOWN`].
pub fn well_known(port: u16) -> Option<&'static str> {
    WELL_KNOWN.iter().find(|(p, _)| *p == port).map(|(_, n)| *n)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub lport: Option<PortSpec>,
    pub rport: Option<PortSpec>,
    pub cidr: Option<String>,
    pub process: Option<String>,
    pub cgroup: Option<String>,
}

/// `5432`, `"5432"` or `"8000-8100"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PortSpec {
    One(u16),
    Text(String),
}

impl PortSpec {
    /// The inclusive range.
    pub fn range(&self) -> Result<(u16, u16)> {
        match self {
            PortSpec::One(p) => Ok((*p, *p)),
            PortSpec::Text(s) => {
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                let a: u16 = a.trim().parse().with_context(|| format!("bad port {s:?}"))?;
                let b: u16 = b.trim().parse().with_context(|| format!("bad port {s:?}"))?;
                if a > b {
                    bail!("empty port range {s:?}");
                }
                Ok((a, b))
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    service: Vec<Rule>,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceMap {
    pub rules: Vec<Rule>,
    /// Where the rules came from (for messages), None for built-ins only.
    pub source: Option<PathBuf>,
}

impl ServiceMap {
    /// `explicit` (`--services FILE`), else `$TCPFR_SERVICES`, else
    /// `~/.config/tcpfr/services.toml` if it exists, else built-ins only.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::var_os("TCPFR_SERVICES").map(PathBuf::from).or_else(|| {
                let p = PathBuf::from(std::env::var_os("HOME")?).join(".config/tcpfr/services.toml");
                p.exists().then_some(p)
            }),
        };
        match path {
            Some(path) => Self::load_file(&path),
            None => Ok(ServiceMap::default()),
        }
    }

    /// Exactly this file (no environment fallbacks).
    pub fn load_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read services map {}", path.display()))?;
        let mut map = Self::parse(&text).with_context(|| format!("in services map {}", path.display()))?;
        map.source = Some(path.to_path_buf());
        Ok(map)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let f: File = toml::from_str(text)?;
        for r in &f.service {
            if r.name.is_empty() {
                bail!("a [[service]] has an empty name");
            }
            if r.lport.is_none() && r.rport.is_none() && r.cidr.is_none() && r.process.is_none() && r.cgroup.is_none() {
                bail!("service {:?} has no condition (lport, rport, cidr, process or cgroup)", r.name);
            }
            r.lport.as_ref().map(PortSpec::range).transpose()?;
            r.rport.as_ref().map(PortSpec::range).transpose()?;
            if let Some(c) = &r.cidr {
                c.parse::<ipnet::IpNet>().with_context(|| format!("service {:?}: bad cidr {c:?}", r.name))?;
            }
        }
        Ok(ServiceMap { rules: f.service, source: None })
    }

    /// The rules compiled for matching many rows.
    pub fn matcher(&self) -> Matcher {
        Matcher::new(self)
    }

    /// The service of a connection (see [`Matcher::name`]); compiles the map on every
    /// call — use [`Self::matcher`] for many rows.
    pub fn name(&self, lport: u16, rport: u16, raddr: &str, comm: Option<&str>, cgroup: Option<&str>) -> String {
        self.matcher().name(lport, rport, raddr, comm, cgroup)
    }
}

/// A rule with its ports and network parsed. A condition that does not parse (only
/// possible for rules built by hand, [`ServiceMap::parse`] refuses them) never matches.
#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    lport: Option<Option<(u16, u16)>>,
    rport: Option<Option<(u16, u16)>>,
    cidr: Option<Option<ipnet::IpNet>>,
    process: Option<String>,
    cgroup: Option<String>,
}

/// The services map ready to name connections.
#[derive(Debug, Clone)]
pub struct Matcher {
    rules: Vec<Compiled>,
}

impl Matcher {
    pub fn new(map: &ServiceMap) -> Self {
        let rules = map
            .rules
            .iter()
            .map(|r| Compiled {
                name: r.name.clone(),
                lport: r.lport.as_ref().map(|p| p.range().ok()),
                rport: r.rport.as_ref().map(|p| p.range().ok()),
                cidr: r.cidr.as_ref().map(|c| c.parse().ok()),
                process: r.process.clone(),
                cgroup: r.cgroup.clone(),
            })
            .collect();
        Matcher { rules }
    }

    /// The service of a connection: the first user rule whose conditions all hold,
    /// then a well-known remote port, then a well-known local port, then the local
    /// process name `comm`, else `unknown`. `raddr` is the remote address as text; one
    /// that does not parse is in no network. A rule on `process`/`cgroup` never matches
    /// a connection whose owner is unknown (`None`).
    pub fn name(&self, lport: u16, rport: u16, raddr: &str, comm: Option<&str>, cgroup: Option<&str>) -> String {
        self.name_str(lport, rport, raddr, comm, cgroup).to_string()
    }

    /// [`Self::name`] without allocating: borrowed from the map or from `comm`.
    pub fn name_str<'a>(&'a self, lport: u16, rport: u16, raddr: &str, comm: Option<&'a str>, cgroup: Option<&str>) -> &'a str {
        self.name_and_origin(lport, rport, raddr, comm, cgroup).0
    }

    /// [`Self::name_str`], and whether the name is the owning process's (no rule and no
    /// well-known port named the connection). Process names are chosen by whoever
    /// starts a process, so a consumer that keeps state per name (live metrics) must
    /// bound how many of those it takes; the map's and the ports' names are bounded.
    pub fn name_and_origin<'a>(
        &'a self,
        lport: u16,
        rport: u16,
        raddr: &str,
        comm: Option<&'a str>,
        cgroup: Option<&str>,
    ) -> (&'a str, bool) {
        let port_ok = |spec: &Option<Option<(u16, u16)>>, p: u16| match spec {
            None => true,
            Some(Some((a, b))) => (*a..=*b).contains(&p),
            Some(None) => false,
        };
        let glob_ok = |pat: &Option<String>, v: Option<&str>| pat.as_ref().is_none_or(|p| v.is_some_and(|v| glob_match(p, v)));
        for r in &self.rules {
            if !port_ok(&r.lport, lport) || !port_ok(&r.rport, rport) {
                continue;
            }
            let cidr_ok = match &r.cidr {
                None => true,
                Some(Some(net)) => raddr.parse::<std::net::IpAddr>().is_ok_and(|a| net.contains(&a)),
                Some(None) => false,
            };
            if cidr_ok && glob_ok(&r.process, comm) && glob_ok(&r.cgroup, cgroup) {
                return (&r.name, false);
            }
        }
        if let Some(n) = well_known(rport).or_else(|| well_known(lport)) {
            return (n, false);
        }
        match comm {
            Some(c) => (c, true),
            None => ("unknown", false),
        }
    }
}

/// Whether `s` matches the glob `pat` (`*` any run of characters, `?` one character,
/// everything else literal) — the same as the SQL `LIKE` the analyzer compiles it to.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    // Iterative with one backtrack point (the last `*`): linear in practice, no
    // recursion on long names.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == s[si])) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const MAP: &str = r#"
        [[service]]
        name = "db"
        rport = "5432"
        [[service]]
        name = "api"
        lport = "8000-8100"
        [[service]]
        name = "internal"
        cidr = "10.64.0.0/10"
        [[service]]
        name = "ingress"
        process = "nginx*"
        [[service]]
        name = "k8s"
        cgroup = "/kubepods/*"
        rport = 9000
        [[service]]
        name = "v6net"
        cidr = "fd00:66::/32"
    "#;

    /// Checked by hand against the rules above; the analyzer checks its SQL against
    /// the same decisions.
    #[test]
    fn hand_checked_table() {
        let m = ServiceMap::parse(MAP).unwrap().matcher();
        let cases: &[(u16, u16, &str, Option<&str>, Option<&str>, &str)] = &[
            (40000, 5432, "192.168.1.1", Some("api"), None, "db"),
            (8050, 40000, "192.168.1.1", Some("x"), None, "api"),
            (8000, 1, "1.1.1.1", None, None, "api"),
            (8101, 1, "1.1.1.1", None, None, "unknown"),
            (1, 2, "10.66.0.34", None, None, "internal"),
            (1, 2, "10.128.0.1", Some("nginx-worker"), None, "ingress"),
            (1, 2, "10.128.0.1", Some("xnginx"), None, "xnginx"),
            (1, 9000, "1.2.3.4", Some("app"), Some("/kubepods/pod1/c"), "k8s"),
            (1, 9000, "1.2.3.4", Some("app"), Some("/system.slice/x"), "app"),
            (1, 9000, "1.2.3.4", Some("app"), None, "app"),
            (1, 2, "fd00:66::2", Some("app"), None, "v6net"),
            (1, 2, "fd00:67::2", Some("app"), None, "app"),
            // A v4 address is in no v6 network and the other way round.
            (1, 2, "10.66.0.1", None, None, "internal"),
            (1, 2, "::ffff:10.66.0.1", None, None, "unknown"),
            // First match wins: db (rport) before internal (cidr).
            (1, 5432, "10.66.0.1", None, None, "db"),
            // Well-known remote port before local port before the process.
            (40000, 6379, "1.2.3.4", Some("app"), None, "redis"),
            (6379, 40000, "1.2.3.4", Some("redis-server"), None, "redis"),
            (22, 443, "1.2.3.4", Some("sshd"), None, "https"),
            (40000, 40001, "1.2.3.4", Some("app"), None, "app"),
            (40000, 40001, "1.2.3.4", None, None, "unknown"),
            (40000, 40001, "not an address", None, None, "unknown"),
        ];
        for (lport, rport, raddr, comm, cgroup, want) in cases {
            assert_eq!(m.name(*lport, *rport, raddr, *comm, *cgroup), *want, "{lport} {rport} {raddr} {comm:?} {cgroup:?}");
        }
        assert_eq!(ServiceMap::default().name(1, 5432, "1.1.1.1", None, None), "postgres");
    }

    #[test]
    fn bad_maps_are_explained() {
        assert!(ServiceMap::parse("[[service]]\nname='x'").unwrap_err().to_string().contains("no condition"));
        let e = format!("{:#}", ServiceMap::parse("[[service]]\nname='x'\ncidr='10.0.0.300/8'").unwrap_err());
        assert!(e.contains("bad cidr"), "{e}");
        let e = format!("{:#}", ServiceMap::parse("[[service]]\nname='x'\nport=1").unwrap_err());
        assert!(e.contains("unknown field"), "{e}");
        assert!(ServiceMap::parse("[[service]]\nname='x'\nrport='90-80'").is_err());
        let e = format!("{:#}", ServiceMap::load_file(Path::new("/nonexistent/services.toml")).unwrap_err());
        assert!(e.contains("cannot read services map /nonexistent/services.toml"), "{e}");
    }

    #[test]
    fn rules_that_do_not_parse_never_match() {
        let map = ServiceMap {
            rules: vec![Rule { name: "bad".into(), lport: None, rport: Some(PortSpec::Text("x".into())), cidr: None, process: None, cgroup: None }],
            source: None,
        };
        assert_eq!(map.name(1, 2, "1.1.1.1", Some("p"), None), "p");
    }

    #[test]
    fn globs() {
        assert!(glob_match("/kubepods/*", "/kubepods/pod1/x"));
        assert!(!glob_match("nginx", "nginx2"));
        assert!(glob_match("ngin?", "nginx"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b", "xxaxxbxx"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a_%", "a_%"));
        assert!(!glob_match("a_%", "abc"));
        assert!(glob_match(&"*".repeat(50), &"x".repeat(50)));
    }
}
