//! The types passed between [`crate::capture`], [`crate::decode`] and
//! [`crate::analysis`].

use std::net::IpAddr;

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// 1-based frame number, as Wireshark numbers them.
    pub number: u64,
    /// Capture time, ns since the Unix epoch (UTC).
    pub ts_ns: i64,
    /// Link-layer header type of the frame's interface (LINKTYPE_* value).
    pub linktype: u32,
    /// Interface index in a pcapng file (0 for pcap).
    pub interface: u32,
    /// Length of the frame on the wire; `data` may be shorter (snaplen).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Byte offset of the frame's record in the file, for messages.
    pub offset: u64,
}

/// TCP flag bits (the low 12 bits of the header's flags field).
pub mod flags {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
}

/// TCP options we decode; absent options are `None`/`false`/0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    /// Window scale shift as sent (not clamped).
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// Number of SACK blocks in the segment.
    pub sack_blocks: u8,
    /// Timestamps option: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
}

/// A decoded TCP segment: the header fields the sequence analysis needs, with the
/// innermost IP addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// Raw sequence and acknowledgement numbers.
    pub seq: u32,
    pub ack: u32,
    /// `th_flags & 0x0FFF`, see [`flags`].
    pub flags: u16,
    /// Raw 16-bit window, before scaling.
    pub window: u16,
    /// TCP header length in bytes (data offset × 4).
    pub header_len: u16,
    /// Payload length as the IP header reports it (tshark's `tcp.len`): IPv4 total
    /// length − IP header − TCP header (the frame's length when total length is 0,
    /// i.e. TSO), IPv6 payload length − extension headers − TCP header. Not the
    /// captured length: snaplen cuts do not shorten it.
    pub seglen: u32,
    /// Options that were captured (a snaplen cut inside the options leaves the rest
    /// at their defaults).
    pub options: TcpOptions,
}

/// Why a frame yields no TCP segment. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A link type we do not decode.
    UnsupportedLinkType,
    /// Not IPv4/IPv6 (ARP, LLDP, …).
    NotIp,
    /// IP, but not TCP (UDP, ICMP, …).
    NotTcp,
    /// An IP fragment (tshark would reassemble these; TCP over fragmented IP is rare
    /// and we skip it).
    Fragment,
    /// Headers cut short by the snaplen or a broken length field.
    Truncated,
    /// A header that cannot be right (IPv4 header length < 20, TCP data offset < 5, …).
    Malformed,
}

impl Skip {
    pub const ALL: [Skip; 6] =
        [Skip::UnsupportedLinkType, Skip::NotIp, Skip::NotTcp, Skip::Fragment, Skip::Truncated, Skip::Malformed];

    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLinkType => "unsupported link type",
            Skip::NotIp => "not IP",
            Skip::NotTcp => "not TCP",
            Skip::Fragment => "IP fragment",
            Skip::Truncated => "truncated headers",
            Skip::Malformed => "malformed headers",
        }
    }
}
