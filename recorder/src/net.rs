//! Addresses as they appear in recordings: text, with IPv4-mapped IPv6 addresses
//! written as IPv4, and shared strings so repeated addresses cost one allocation.

use ahash::AHashMap as HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use tcpfr_schema::raw::{RawTuple, AF_INET, AF_INET6};
use tcpfr_schema::Str;

/// Address family and both endpoints of a connection, ready for rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub family: Str,
    pub laddr: Str,
    pub lport: u16,
    pub raddr: Str,
    pub rport: u16,
    /// The same, parsed (for filters).
    pub lip: IpAddr,
    pub rip: IpAddr,
}

/// Turns raw addresses into the address of the connection on the wire.
pub fn ip(family: u16, bytes: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        let v6 = Ipv6Addr::from(*bytes);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

/// Caches the text of addresses (and the family names).
#[derive(Default)]
pub struct AddrCache {
    strings: HashMap<IpAddr, Str>,
    v4: Option<Str>,
    v6: Option<Str>,
}

impl AddrCache {
    pub fn text(&mut self, addr: IpAddr) -> Str {
        if self.strings.len() > 1_000_000 {
            // Bounded memory on hosts that talk to the whole internet.
            self.strings.clear();
        }
        self.strings.entry(addr).or_insert_with(|| Arc::from(addr.to_string())).clone()
    }

    pub fn endpoints(&mut self, t: &RawTuple) -> Endpoints {
        let lip = ip(t.family, &t.laddr);
        let rip = ip(t.family, &t.raddr);
        let family = if lip.is_ipv4() && (t.family == AF_INET || t.family == AF_INET6) {
            self.v4.get_or_insert_with(|| Arc::from("ipv4")).clone()
        } else {
            self.v6.get_or_insert_with(|| Arc::from("ipv6")).clone()
        };
        Endpoints {
            family,
            laddr: self.text(lip),
            lport: t.lport,
            raddr: self.text(rip),
            rport: t.rport,
            lip,
            rip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_is_written_as_v4() {
        let mut c = AddrCache::default();
        let mut t = RawTuple { family: AF_INET6, lport: 80, rport: 5555, ..Default::default() };
        t.laddr[10] = 0xff;
        t.laddr[11] = 0xff;
        t.laddr[12..].copy_from_slice(&[10, 0, 0, 1]);
        t.raddr = "fd00::2".parse::<Ipv6Addr>().unwrap().octets();
        let e = c.endpoints(&t);
        assert_eq!(&*e.laddr, "10.0.0.1");
        assert_eq!(&*e.raddr, "fd00::2");
        let mut t4 = RawTuple { family: AF_INET, ..Default::default() };
        t4.laddr[..4].copy_from_slice(&[192, 168, 1, 7]);
        let e4 = c.endpoints(&t4);
        assert_eq!(&*e4.laddr, "192.168.1.7");
        assert_eq!(&*e4.family, "ipv4");
        assert_eq!(&*e4.raddr, "0.0.0.0");
    }
}
