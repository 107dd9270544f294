//! Link layer → IP → TCP, the way tshark 4.0 reads the fields the sequence analysis
//! needs.
//!
//! [`decode`] returns the innermost TCP segment of a frame, or why there is none
//! ([`Skip`]). It never panics and never allocates.
//!
//! Lengths follow tshark, not the captured bytes: `seglen` (tshark's `tcp.len`) comes
//! from the IP header's length fields, bounded by what the frame had on the wire
//! (`orig_len` minus the link header; tshark uses the captured length instead when a
//! broken file says the frame was shorter than what was captured). An IPv4 total length
//! of 0 (TSO) means "the rest of the frame"; an IPv6 payload length of 0 means a
//! jumbogram, whose length is in the hop-by-hop Jumbo Payload option; without one (an
//! IPv6 TSO/BIG TCP capture) tshark 4.0 decodes no TCP, and neither do we
//! ([`Skip::Malformed`]). A length beyond the frame is cut to the frame; Ethernet
//! padding after the IP packet is excluded. IPv4 headers that say version 6 are decoded
//! as IPv6, as tshark does. A snaplen cut inside the TCP options is fine (the options that
//! were captured are decoded); a cut before the end of the fixed TCP header is
//! [`Skip::Truncated`].
//!
//! Link types: Ethernet (1, with stacked 802.1Q/802.1ad/QinQ tags), Linux cooked SLL
//! (113) and SLL2 (276), raw IP (101, 12, 14: by the version nibble), IPv4 (228), IPv6
//! (229), BSD loopback NULL (0, family in the writer's byte order) and LOOP (108,
//! network order). IP-in-IP (4) and IPv6-in-IP (41) are followed to the innermost
//! packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::segment::{Skip, TcpOptions, TcpSegment};

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// DLT_RAW values of some BSDs, written as link types by old libpcaps.
const LINKTYPE_RAW_BSD: [u32; 2] = [12, 14];

/// How many IP-in-IP encapsulations we follow.
const MAX_TUNNEL_DEPTH: u8 = 8;
/// How many IPv6 extension headers we walk.
const MAX_EXT_HEADERS: usize = 32;

/// Whether [`decode`] understands this link type.
pub fn supported_linktype(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    ) || LINKTYPE_RAW_BSD.contains(&linktype)
}

#[derive(Clone, Copy)]
enum Ip {
    V4,
    V6,
}

/// Decodes one frame: `data` is what was captured, `orig_len` the frame's length on the
/// wire.
pub fn decode(linktype: u32, data: &[u8], orig_len: u32) -> Result<TcpSegment, Skip> {
    let (l2, ip) = link_layer(linktype, data)?;
    // tshark dissects a frame whose captured length exceeds its wire length with the
    // captured length.
    let wire = (orig_len as usize).max(data.len());
    let avail = wire.saturating_sub(l2);
    let packet = data.get(l2..).ok_or(Skip::Truncated)?;
    match ip {
        Ip::V4 => ipv4(packet, avail, 0),
        Ip::V6 => ipv6(packet, avail, 0),
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?)? {
        [x, y] => Some(u16::from_be_bytes([*x, *y])),
        _ => None,
    }
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    match b.get(at..at.checked_add(4)?)? {
        [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The link header: its length and the IP version that follows.
fn link_layer(linktype: u32, data: &[u8]) -> Result<(usize, Ip), Skip> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let ethertype = be16(data, 12).ok_or(Skip::Truncated)?;
            ethertypes(data, 14, ethertype)
        }
        LINKTYPE_LINUX_SLL => {
            if data.len() < 16 {
                return Err(Skip::Truncated);
            }
            ethertypes(data, 16, be16(data, 14).ok_or(Skip::Truncated)?)
        }
        LINKTYPE_LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(Skip::Truncated);
            }
            ethertypes(data, 20, be16(data, 0).ok_or(Skip::Truncated)?)
        }
        LINKTYPE_RAW | 12 | 14 => match data.first().ok_or(Skip::Truncated)? >> 4 {
            4 => Ok((0, Ip::V4)),
            6 => Ok((0, Ip::V6)),
            _ => Err(Skip::NotIp),
        },
        LINKTYPE_IPV4 => Ok((0, Ip::V4)),
        LINKTYPE_IPV6 => Ok((0, Ip::V6)),
        LINKTYPE_NULL => {
            let raw = be32(data, 0).ok_or(Skip::Truncated)?;
            // Host byte order of the machine that wrote it: the family is small.
            let le = raw.swap_bytes();
            let family = if le & 0xFFFF_0000 == 0 { le } else { raw };
            af_family(family)
        }
        LINKTYPE_LOOP => af_family(be32(data, 0).ok_or(Skip::Truncated)?),
        _ => Err(Skip::UnsupportedLinkType),
    }
}

/// BSD address family → IP version (AF_INET6 is 24, 28 or 30 depending on the BSD).
fn af_family(family: u32) -> Result<(usize, Ip), Skip> {
    match family {
        2 => Ok((4, Ip::V4)),
        24 | 28 | 30 => Ok((4, Ip::V6)),
        _ => Err(Skip::NotIp),
    }
}

/// Follows VLAN tags from `off`, where `ethertype` applies.
fn ethertypes(data: &[u8], mut off: usize, mut ethertype: u16) -> Result<(usize, Ip), Skip> {
    loop {
        match ethertype {
            0x0800 => return Ok((off, Ip::V4)),
            0x86DD => return Ok((off, Ip::V6)),
            0x8100 | 0x88A8 | 0x9100 => {
                ethertype = be16(data, off + 2).ok_or(Skip::Truncated)?;
                off += 4;
            }
            // < 0x600: an 802.3 length field (LLC follows); anything else: not IP.
            _ => return Err(Skip::NotIp),
        }
    }
}

/// An IPv4 packet: `ip` is what was captured from its first byte on, `avail` how many
/// bytes the frame had for it on the wire.
fn ipv4(ip: &[u8], avail: usize, depth: u8) -> Result<TcpSegment, Skip> {
    match ip.first().map(|b| b >> 4) {
        None => return Err(Skip::Truncated),
        Some(4) => {}
        // tshark's IPv4 dissector hands version 6 to IPv6 (ethertype 0x0800, link
        // type 228 or IP protocol 4 carrying IPv6).
        Some(6) => return ipv6(ip, avail, depth),
        Some(_) => return Err(Skip::Malformed),
    }
    let Some(h) = ip.get(..20) else { return Err(Skip::Truncated) };
    let hlen = usize::from(h[0] & 0x0F) * 4;
    if hlen < 20 {
        return Err(Skip::Malformed);
    }
    if ip.len() < hlen {
        return Err(Skip::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let ip_len = if total == 0 || total > avail { avail } else { total };
    if ip_len < hlen {
        return Err(Skip::Malformed);
    }
    if u16::from_be_bytes([h[6], h[7]]) & 0x3FFF != 0 {
        return Err(Skip::Fragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    next_header(h[9], ip, hlen, ip_len, src, dst, depth)
}

/// An IPv6 packet, as [`ipv4`].
fn ipv6(ip: &[u8], avail: usize, depth: u8) -> Result<TcpSegment, Skip> {
    let Some(h) = ip.get(..40) else { return Err(Skip::Truncated) };
    if h[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let payload = match u16::from_be_bytes([h[4], h[5]]) {
        // A jumbogram, or (TSO, BIG TCP) nothing tshark 4.0 can decode.
        0 => jumbo_payload(ip)?.ok_or(Skip::Malformed)?,
        n => usize::from(n),
    };
    let ip_len = (40 + payload).min(avail);
    if ip_len < 40 {
        return Err(Skip::Malformed);
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let (src, dst) = (addr(8), addr(24));
    let mut nh = h[6];
    let mut off = 40;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match nh {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6, experiments.
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => {
                let n = ip.get(off + 1).ok_or(Skip::Truncated)?;
                (usize::from(*n) + 1) * 8
            }
            // Authentication header.
            51 => {
                let n = ip.get(off + 1).ok_or(Skip::Truncated)?;
                (usize::from(*n) + 2) * 4
            }
            // Fragment: only an atomic fragment (offset 0, no more fragments) goes on.
            44 => {
                let fo = be16(ip, off + 2).ok_or(Skip::Truncated)?;
                if fo & 0xFFF9 != 0 {
                    return Err(Skip::Fragment);
                }
                8
            }
            _ => return next_header(nh, ip, off, ip_len, src, dst, depth),
        };
        nh = *ip.get(off).ok_or(Skip::Truncated)?;
        off += len;
        if off > ip_len {
            return Err(Skip::Malformed);
        }
    }
    Err(Skip::Malformed)
}

/// The Jumbo Payload option's length (RFC 2675) of an IPv6 packet whose payload length
/// is 0, if its hop-by-hop header has one (tshark ignores values below 65536).
fn jumbo_payload(ip: &[u8]) -> Result<Option<usize>, Skip> {
    if ip.get(6) != Some(&0) {
        return Ok(None);
    }
    let n = *ip.get(41).ok_or(Skip::Truncated)?;
    let end = 40 + (usize::from(n) + 1) * 8;
    let mut at = 42;
    while at < end {
        let kind = *ip.get(at).ok_or(Skip::Truncated)?;
        if kind == 0 {
            at += 1;
            continue;
        }
        let len = usize::from(*ip.get(at + 1).ok_or(Skip::Truncated)?);
        if kind == 0xC2 && len == 4 {
            let j = be32(ip, at + 2).ok_or(Skip::Truncated)?;
            return Ok((j > 0xFFFF).then_some(j as usize));
        }
        at += 2 + len;
    }
    Ok(None)
}

/// The upper-layer protocol `proto` at `off` of an IP packet of `ip_len` bytes.
fn next_header(
    proto: u8,
    ip: &[u8],
    off: usize,
    ip_len: usize,
    src: IpAddr,
    dst: IpAddr,
    depth: u8,
) -> Result<TcpSegment, Skip> {
    match proto {
        6 => tcp(ip, off, ip_len, src, dst),
        4 | 41 => {
            if depth >= MAX_TUNNEL_DEPTH {
                return Err(Skip::Malformed);
            }
            let inner = ip.get(off..).ok_or(Skip::Truncated)?;
            let avail = ip_len.checked_sub(off).ok_or(Skip::Malformed)?;
            if proto == 4 {
                ipv4(inner, avail, depth + 1)
            } else {
                ipv6(inner, avail, depth + 1)
            }
        }
        // No next header (59), ESP (50), UDP, ICMP, …
        _ => Err(Skip::NotTcp),
    }
}

/// The TCP header at `off` of an IP packet of `ip_len` bytes (on the wire).
fn tcp(ip: &[u8], off: usize, ip_len: usize, src: IpAddr, dst: IpAddr) -> Result<TcpSegment, Skip> {
    let t = ip.get(off..).ok_or(Skip::Truncated)?;
    let Some(h) = t.get(..20) else { return Err(Skip::Truncated) };
    let word = u16::from_be_bytes([h[12], h[13]]);
    let header_len = usize::from(word >> 12) * 4;
    if header_len < 20 {
        return Err(Skip::Malformed);
    }
    let seglen = ip_len.checked_sub(off).and_then(|l| l.checked_sub(header_len)).ok_or(Skip::Malformed)?;
    let opts = t.get(20..header_len.min(t.len())).unwrap_or(&[]);
    Ok(TcpSegment {
        src,
        dst,
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: word & 0x0FFF,
        window: u16::from_be_bytes([h[14], h[15]]),
        header_len: header_len as u16,
        seglen: u32::try_from(seglen).unwrap_or(u32::MAX),
        options: options(opts),
    })
}

/// The TCP options we use. An option with the wrong length for its kind is ignored (as
/// tshark does); a length below 2 or past the end stops the parsing.
fn options(mut b: &[u8]) -> TcpOptions {
    let mut o = TcpOptions::default();
    while let Some(&kind) = b.first() {
        match kind {
            0 => break,
            1 => {
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = b.get(1) else { break };
        let len = usize::from(len);
        if len < 2 {
            break;
        }
        let Some(opt) = b.get(..len) else { break };
        match (kind, opt) {
            (2, [_, _, a, b]) => o.mss = Some(u16::from_be_bytes([*a, *b])),
            (3, [_, _, s]) => o.wscale = Some(*s),
            (4, [_, _]) => o.sack_permitted = true,
            (5, [_, _, blocks @ ..]) if !blocks.is_empty() && blocks.len().is_multiple_of(8) => {
                o.sack_blocks = (blocks.len() / 8) as u8;
            }
            (8, [_, _, v0, v1, v2, v3, e0, e1, e2, e3]) => {
                o.timestamps =
                    Some((u32::from_be_bytes([*v0, *v1, *v2, *v3]), u32::from_be_bytes([*e0, *e1, *e2, *e3])));
            }
            _ => {}
        }
        b = &b[len..];
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_stop() {
        let o = options(&[1, 1, 2, 4, 5, 0xb4, 4, 2, 3, 3, 7, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.wscale, Some(7));
        assert_eq!(o.timestamps, Some((1, 2)));
        // Wrong length for MSS: ignored, parsing goes on.
        let o = options(&[2, 3, 5, 3, 3, 7]);
        assert_eq!((o.mss, o.wscale), (None, Some(7)));
        // Length 0 and a length past the end stop the parsing.
        assert_eq!(options(&[9, 0, 3, 3, 7]), TcpOptions::default());
        assert_eq!(options(&[3, 3, 7, 2, 4, 5]).mss, None);
        assert_eq!(options(&[5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]).sack_blocks, 2);
        assert_eq!(options(&[0, 2, 4, 5, 0xb4]), TcpOptions::default());
    }
}
