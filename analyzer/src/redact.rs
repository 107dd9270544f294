//! Redaction for `tcpfr bundle --redact`: recordings hold addresses, process names,
//! cgroup paths and host names that a bug report should not have to give away, while
//! the report must still show the problem. So addresses are anonymized
//! prefix-preservingly (Crypto-PAn style: bit i of the output is bit i of the input
//! XOR a keyed PRF of the first i input bits, here HMAC-SHA256), which keeps equal
//! addresses equal and subnets subnets (two pseudonyms share exactly as many leading
//! bits as the originals), and names become stable pseudonyms (`proc-1`, `host-1`).
//!
//! The key is random per bundle and never stored: pseudonyms cannot be reversed, and
//! two bundles of the same data do not share them.
//!
//! `--keep CIDR` ranges (and the unspecified addresses `0.0.0.0`/`::`, which name
//! nobody) map to themselves. So that no other address collides with a kept one, the
//! anonymizing permutation is "cycle-walked": applied again until its result leaves
//! the kept ranges. That is still a bijection on the addresses outside them (so no
//! collisions ever), and exact prefix preservation only fails for the rare address
//! whose first pseudonym fell into a kept range (about |kept| / 2^32 of IPv4 addresses).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

/// What to redact besides addresses.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Ranges left as they are.
    pub keep: Vec<IpNet>,
    /// Pseudonyms for `comm`, `cgroup`, `container_id`, `netns_name`.
    pub scrub_names: bool,
    /// Pseudonyms for host names (the `host` column, the manifest, and the name
    /// wherever else it appears in text).
    pub scrub_host: bool,
}

/// Columns holding a textual IP address.
const ADDRESS_COLUMNS: [&str; 2] = ["laddr", "raddr"];

/// Name-like columns scrubbed by `--scrub-names`, with their pseudonym prefix.
const NAME_COLUMNS: [(&str, &str); 4] = [("comm", "proc"), ("cgroup", "cgroup"), ("container_id", "container"), ("netns_name", "netns")];

/// One bundle's redaction state: the key, and the pseudonyms handed out so far (the
/// same value gets the same pseudonym in every table and recording of the bundle).
pub struct Redactor {
    opts: Options,
    mac: Hmac<Sha256>,
    addrs: HashMap<IpAddr, IpAddr>,
    /// (prefix, original) → pseudonym.
    names: HashMap<(&'static str, String), String>,
    counters: HashMap<&'static str, usize>,
    /// Original host names and their pseudonyms, longest first (for replacing them in text).
    hosts: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor with a fresh random key.
    pub fn new(opts: Options) -> Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("cannot get random bytes for the redaction key: {e}"))?;
        Ok(Self::with_key(opts, &key))
    }

    /// A redactor with a given key (tests).
    pub fn with_key(mut opts: Options, key: &[u8]) -> Self {
        // Unspecified addresses mean "none" and identify nobody.
        opts.keep.push("0.0.0.0/32".parse().expect("valid"));
        opts.keep.push("::/128".parse().expect("valid"));
        Redactor {
            opts,
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"),
            addrs: HashMap::new(),
            names: HashMap::new(),
            counters: HashMap::new(),
            hosts: Vec::new(),
        }
    }

    fn kept(&self, ip: IpAddr) -> bool {
        self.opts.keep.iter().any(|n| n.contains(&ip))
    }

    /// Output bit for position `i` given the first `i` bits of the input (`prefix`,
    /// other bits zero), as bytes of the address family.
    fn prf(&self, family: u8, i: u32, prefix: &[u8]) -> u8 {
        let mut m = self.mac.clone();
        m.update(&[family, i as u8]);
        m.update(prefix);
        m.finalize().into_bytes()[0] & 1
    }

    /// The Crypto-PAn permutation of the whole address space of `ip`'s family.
    fn pan(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let mut out = 0u32;
                for i in 0..32 {
                    let prefix = if i == 0 { 0 } else { a & (u32::MAX << (32 - i)) };
                    let bit = (a >> (31 - i)) & 1 ^ u32::from(self.prf(4, i, &prefix.to_be_bytes()));
                    out |= bit << (31 - i);
                }
                IpAddr::V4(Ipv4Addr::from(out))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                let mut out = 0u128;
                for i in 0..128 {
                    let prefix = if i == 0 { 0 } else { a & (u128::MAX << (128 - i)) };
                    let bit = (a >> (127 - i)) & 1 ^ u128::from(self.prf(6, i, &prefix.to_be_bytes()));
                    out |= bit << (127 - i);
                }
                IpAddr::V6(Ipv6Addr::from(out))
            }
        }
    }

    /// The pseudonym of an address (itself when kept).
    pub fn address(&mut self, ip: IpAddr) -> Result<IpAddr> {
        if self.kept(ip) {
            return Ok(ip);
        }
        if let Some(p) = self.addrs.get(&ip) {
            return Ok(*p);
        }
        // Cycle-walking: a bijection on the addresses outside the kept ranges.
        let mut x = ip;
        for _ in 0..100_000 {
            x = self.pan(x);
            if !self.kept(x) {
                self.addrs.insert(ip, x);
                return Ok(x);
            }
        }
        bail!("the --keep ranges cover nearly all addresses of {ip}'s family; keep smaller ranges")
    }

    /// Pseudonym of a textual address; text that is not an address becomes `invalid`.
    fn address_text(&mut self, s: &str) -> Result<String> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(self.address(ip)?.to_string()),
            Err(_) => Ok("invalid".to_string()),
        }
    }

    fn name(&mut self, prefix: &'static str, value: &str) -> String {
        if let Some(p) = self.names.get(&(prefix, value.to_string())) {
            return p.clone();
        }
        let n = self.counters.entry(prefix).or_insert(0);
        *n += 1;
        let p = format!("{prefix}-{n}");
        self.names.insert((prefix, value.to_string()), p.clone());
        p
    }

    /// The host name to write (a pseudonym with `--scrub-host`).
    pub fn host(&mut self, host: &str) -> String {
        if !self.opts.scrub_host {
            return host.to_string();
        }
        let p = self.name("host", host);
        if !host.is_empty() && !self.hosts.iter().any(|(h, _)| h == host) {
            self.hosts.push((host.to_string(), p.clone()));
            self.hosts.sort_by_key(|(h, _)| std::cmp::Reverse(h.len()));
        }
        p
    }

    /// The kernel release to write: only its version numbers (`6.18.0-13-cloud-amd64`
    /// → `6.18`); the rest (build, flavour, distribution) narrows down the machine.
    /// The full string is replaced in text too.
    pub fn kernel(&mut self, release: &str) -> String {
        let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
        let short = match (parts.next(), parts.next()) {
            (Some(a), Some(b)) => format!("{a}.{b}"),
            _ => "unknown".to_string(),
        };
        if !release.is_empty() && !self.hosts.iter().any(|(h, _)| h == release) {
            self.hosts.push((release.to_string(), short.clone()));
            self.hosts.sort_by_key(|(h, _)| std::cmp::Reverse(h.len()));
        }
        short
    }

    /// Free text (notes, errors): URLs (object-store endpoints and buckets) cut to their
    /// scheme, host names and kernel releases replaced, and every IP address found
    /// inside the text replaced by its pseudonym — also where it is glued to other
    /// text (`10.0.0.5:9000`, `ed:10.0.0.5`, `[fd00::1]:80`).
    pub fn text(&mut self, s: &str) -> Result<String> {
        let s = redact_urls(s);
        let mut out = String::with_capacity(s.len());
        let mut run = String::new();
        let is_addr_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
        for c in s.chars().chain(std::iter::once('\u{0}')) {
            if is_addr_char(c) {
                run.push(c);
                continue;
            }
            if !run.is_empty() {
                let r = std::mem::take(&mut run);
                out.push_str(&self.addresses_in(&r)?);
            }
            if c != '\u{0}' {
                out.push(c);
            }
        }
        for (h, p) in &self.hosts {
            if out.contains(h.as_str()) {
                out = out.replace(h.as_str(), p);
            }
        }
        Ok(out)
    }

    /// A run of address characters (hex digits, `.`, `:`) with every IPv6 address
    /// (at least two colons) and then every dotted IPv4 address in it replaced.
    fn addresses_in(&mut self, run: &str) -> Result<String> {
        if let Some((i, j, ip)) = find_ipv6(run) {
            let mut out = self.addresses_in(&run[..i])?;
            out.push_str(&self.address(IpAddr::V6(ip))?.to_string());
            out.push_str(&self.addresses_in(&run[j..])?);
            return Ok(out);
        }
        let mut out = String::with_capacity(run.len());
        let mut rest = run;
        while let Some((i, j, ip)) = find_ipv4(rest) {
            out.push_str(&rest[..i]);
            out.push_str(&self.address(IpAddr::V4(ip))?.to_string());
            rest = &rest[j..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A batch with every sensitive string column rewritten.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (field, col) in schema.fields().iter().zip(batch.columns()) {
            if field.data_type() != &DataType::Utf8 {
                columns.push(col.clone());
                continue;
            }
            let arr = col.as_any().downcast_ref::<StringArray>().context("Utf8 column")?;
            let name = field.name().as_str();
            let scrub_as = NAME_COLUMNS.iter().find(|(c, _)| *c == name).map(|(_, p)| *p);
            let mut out: Vec<Option<String>> = Vec::with_capacity(arr.len());
            for v in arr.iter() {
                let Some(v) = v else {
                    out.push(None);
                    continue;
                };
                let new = if ADDRESS_COLUMNS.contains(&name) {
                    self.address_text(v)?
                } else if name == "host" {
                    self.host(v)
                } else if let (Some(prefix), true) = (scrub_as, self.opts.scrub_names) {
                    // `host` names the recorder's own network namespace, not a machine.
                    if name == "netns_name" && v == "host" {
                        v.to_string()
                    } else {
                        self.name(prefix, v)
                    }
                } else {
                    self.text(v)?
                };
                out.push(Some(new));
            }
            columns.push(Arc::new(StringArray::from(out)) as ArrayRef);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// The first, longest IPv6 address in `run` (byte range and value): a substring with at
/// least two colons and three hex digits (so `std::io` is not `d::`) that parses as
/// one. Textual IPv6 is at most 45 characters, which bounds the search.
fn find_ipv6(run: &str) -> Option<(usize, usize, Ipv6Addr)> {
    if run.matches(':').count() < 2 {
        return None;
    }
    let plausible = |c: &str| c.matches(':').count() >= 2 && c.chars().filter(char::is_ascii_hexdigit).count() >= 3;
    for i in 0..run.len() {
        for j in (i + 2..=run.len().min(i + 45)).rev() {
            let c = &run[i..j];
            if plausible(c) {
                if let Ok(ip) = c.parse::<Ipv6Addr>() {
                    return Some((i, j, ip));
                }
            }
        }
    }
    None
}

/// The first dotted-quad IPv4 address in `s` (byte range and value): a maximal run of
/// digits and dots, its edge dots trimmed, that parses as one.
fn find_ipv4(s: &str) -> Option<(usize, usize, Ipv4Addr)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
            j += 1;
        }
        let cand = s[i..j].trim_end_matches('.');
        if let Ok(ip) = cand.parse::<Ipv4Addr>() {
            return Some((i, i + cand.len(), ip));
        }
        i = j;
    }
    None
}

/// Text with every URL (`scheme://…` up to white space) cut to `scheme://…`: object
/// stores' endpoints, buckets and prefixes name the organisation.
fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(k) = rest.find("://") {
        let scheme_start = rest[..k].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '.' || c == '-')).map_or(0, |p| p + 1);
        let end = rest[k + 3..].find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ')').map_or(rest.len(), |e| k + 3 + e);
        out.push_str(&rest[..k + 3]);
        if scheme_start == k {
            // Not a URL after all ("://" alone): keep the text after it.
            rest = &rest[k + 3..];
            continue;
        }
        out.push('…');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `--keep` values: a CIDR, or a single address.
pub fn parse_keep(s: &str) -> std::result::Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not a CIDR (10.0.0.0/8, fd00::/8) or an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common_prefix(a: IpAddr, b: IpAddr) -> u32 {
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros(),
            _ => panic!("mixed families"),
        }
    }

    #[test]
    fn prefix_preserving_and_keyed() {
        let addrs: Vec<IpAddr> = ["10.66.0.10", "10.66.0.34", "10.66.1.1", "192.168.1.1", "8.8.8.8", "fd00::1", "fd00::2", "fd00:1::1", "2001:db8::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut r = Redactor::with_key(Options::default(), b"k1");
        let mut r2 = Redactor::with_key(Options::default(), b"k2");
        for &a in &addrs {
            let p = r.address(a).unwrap();
            assert_ne!(p, a);
            assert_eq!(r.address(a).unwrap(), p, "stable");
            assert_ne!(r2.address(a).unwrap(), p, "keyed");
            for &b in &addrs {
                if a.is_ipv4() == b.is_ipv4() {
                    assert_eq!(common_prefix(p, r.address(b).unwrap()), common_prefix(a, b), "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn kept_ranges_are_fixed_and_never_hit() {
        // Keeping half of IPv4 forces frequent cycle-walks.
        let keep = vec!["0.0.0.0/1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let mut r = Redactor::with_key(Options { keep, ..Default::default() }, b"k");
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x8000_0000 | i.wrapping_mul(2654435761) >> 1));
            let p = r.address(a).unwrap();
            assert!(u32::from(match p { IpAddr::V4(v) => v, _ => unreachable!() }) >= 0x8000_0000, "{a} → {p} is in a kept range");
            assert!(seen.insert(p) || r.address(a).unwrap() == p);
        }
        let k: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(r.address(k).unwrap(), k);
    }

    #[test]
    fn addresses_glued_to_other_text_are_found() {
        let mut r = Redactor::with_key(Options::default(), b"k");
        for (text, secret) in [
            ("upload failed: error sending request for url (http://10.0.0.5:9000/bucket/key)", "10.0.0.5"),
            ("connect 10.0.0.5:9000 refused", "10.0.0.5"),
            ("seen:10.0.0.5", "10.0.0.5"),
            ("ed:10.0.0.5", "10.0.0.5"),
            ("peer=[fd00::1]:80", "fd00::1"),
            ("via fe80::1:2 and ::ffff:10.1.2.3,", "fe80::1:2"),
            ("id abc10.9.8.7.", "10.9.8.7"),
        ] {
            let t = r.text(text).unwrap();
            assert!(!t.contains(secret), "{text:?} → {t:?}");
        }
        // The same address gets the same pseudonym wherever it stands.
        let a = r.text("10.0.0.5").unwrap();
        assert!(r.text("x:10.0.0.5:9000").unwrap().contains(&a));
        // What only looks like an address part stays.
        let plain = "at 12:43, 1.5 s, version 0.1.0, ratio 3:1, std::io::Error";
        assert_eq!(r.text(plain).unwrap(), plain);
    }

    #[test]
    fn urls_and_kernels_are_cut() {
        let mut r = Redactor::with_key(Options::default(), b"k");
        let t = r.text("shipping to s3://acme-prod-traces/tcpfr (endpoint https://minio.acme.internal:9000) failed").unwrap();
        assert!(!t.contains("acme") && t.contains("s3://…") && t.contains("https://…"), "{t}");
        assert_eq!(r.kernel("6.18.0-13-cloud-amd64"), "6.18");
        let t = r.text("recorder started on kernel 6.18.0-13-cloud-amd64").unwrap();
        assert_eq!(t, "recorder started on kernel 6.18");
    }

    #[test]
    fn text_replaces_addresses_and_hosts() {
        let mut r = Redactor::with_key(Options { scrub_host: true, ..Default::default() }, b"k");
        assert_eq!(r.host("web1.example"), "host-1");
        let t = r.text("connect to 10.1.2.3: refused on web1.example at 12:43, 1.5 s").unwrap();
        assert!(!t.contains("10.1.2.3") && !t.contains("web1.example"), "{t}");
        assert!(t.contains("host-1") && t.contains("12:43, 1.5 s"), "{t}");
    }
}
