//! Shared by the capture/decode tests: capture file writers (pcap, pcapng), packet
//! builders, and a tshark runner.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

// ---------------------------------------------------------------------------------
// Capture files

/// A pcap file in either byte order, µs or ns.
pub struct Pcap {
    pub buf: Vec<u8>,
    pub be: bool,
}

impl Pcap {
    pub fn new(be: bool, nanos: bool, linktype: u32, snaplen: u32) -> Pcap {
        let mut p = Pcap { buf: Vec::new(), be };
        p.u32(if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 });
        p.u16(2);
        p.u16(4);
        p.u32(0);
        p.u32(0);
        p.u32(snaplen);
        p.u32(linktype);
        p
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&if self.be { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&if self.be { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    /// A record: `frac` is µs or ns as the file says.
    pub fn record(&mut self, sec: u32, frac: u32, data: &[u8], orig_len: u32) -> &mut Self {
        self.u32(sec);
        self.u32(frac);
        self.u32(data.len() as u32);
        self.u32(orig_len);
        self.buf.extend_from_slice(data);
        self
    }
}

/// A pcapng file: sections, interfaces, packet blocks.
pub struct PcapNg {
    pub buf: Vec<u8>,
    pub be: bool,
}

pub const OPT_TSRESOL: u16 = 9;
pub const OPT_TSOFFSET: u16 = 14;

impl PcapNg {
    /// Starts the file with a section header.
    pub fn new(be: bool) -> PcapNg {
        let mut p = PcapNg { buf: Vec::new(), be };
        p.section(be);
        p
    }
    fn b16(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn b32(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn b64(&self, v: u64) -> [u8; 8] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    /// Options (code, value) with the end-of-options marker.
    pub fn options(&self, opts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        if opts.is_empty() {
            return out;
        }
        for (code, val) in opts {
            out.extend_from_slice(&self.b16(*code));
            out.extend_from_slice(&self.b16(val.len() as u16));
            out.extend_from_slice(val);
            out.resize(out.len().div_ceil(4) * 4, 0);
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    }
    /// Any block; the body is padded to 4 bytes.
    pub fn block(&mut self, btype: u32, body: &[u8]) -> &mut Self {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let (t, l) = (self.b32(btype), self.b32(len));
        self.buf.extend_from_slice(&t);
        self.buf.extend_from_slice(&l);
        self.buf.extend_from_slice(body);
        self.buf.resize(self.buf.len() + padded - body.len(), 0);
        self.buf.extend_from_slice(&l);
        self
    }
    /// A new section (it may change the byte order).
    pub fn section(&mut self, be: bool) -> &mut Self {
        self.be = be;
        let mut body = Vec::new();
        body.extend_from_slice(&self.b32(0x1A2B_3C4D));
        body.extend_from_slice(&self.b16(1));
        body.extend_from_slice(&self.b16(0));
        body.extend_from_slice(&self.b64(u64::MAX));
        let opts = self.options(&[(4, b"tcpfr-wire tests".to_vec())]);
        body.extend_from_slice(&opts);
        self.block(0x0A0D_0D0A, &body)
    }
    pub fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<i64>) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&self.b16(linktype));
        body.extend_from_slice(&self.b16(0));
        body.extend_from_slice(&self.b32(snaplen));
        let mut opts = vec![(2, b"eth0".to_vec())];
        if let Some(r) = tsresol {
            opts.push((OPT_TSRESOL, vec![r]));
        }
        if let Some(o) = tsoffset {
            opts.push((OPT_TSOFFSET, self.b64(o as u64).to_vec()));
        }
        let opts = self.options(&opts);
        body.extend_from_slice(&opts);
        self.block(1, &body)
    }
    pub fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig_len: u32) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&self.b32(iface));
        body.extend_from_slice(&self.b32((ts >> 32) as u32));
        body.extend_from_slice(&self.b32(ts as u32));
        body.extend_from_slice(&self.b32(data.len() as u32));
        body.extend_from_slice(&self.b32(orig_len));
        body.extend_from_slice(data);
        body.resize(body.len().div_ceil(4) * 4, 0);
        // An epb_flags option (inbound), as dumpcap writes.
        let opts = self.options(&[(2, self.b32(1).to_vec())]);
        body.extend_from_slice(&opts);
        self.block(6, &body)
    }
    /// Obsolete Packet Block.
    pub fn pb(&mut self, iface: u16, ts: u64, data: &[u8], orig_len: u32) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&self.b16(iface));
        body.extend_from_slice(&self.b16(0));
        body.extend_from_slice(&self.b32((ts >> 32) as u32));
        body.extend_from_slice(&self.b32(ts as u32));
        body.extend_from_slice(&self.b32(data.len() as u32));
        body.extend_from_slice(&self.b32(orig_len));
        body.extend_from_slice(data);
        self.block(2, &body)
    }
    /// Simple Packet Block (interface 0; the data is cut to its snaplen by the reader).
    pub fn spb(&mut self, data: &[u8], orig_len: u32) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&self.b32(orig_len));
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}

// ---------------------------------------------------------------------------------
// Packets

pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// 12 bits: NS/AE and the reserved bits too.
    pub flags: u16,
    pub window: u16,
    /// Raw option bytes, padded to 4 by `bytes`.
    pub options: Vec<u8>,
    pub payload: usize,
    /// Overrides the data offset (in 32-bit words).
    pub doff: Option<u8>,
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            sport: 40000,
            dport: 80,
            seq: 1000,
            ack: 2000,
            flags: 0x018,
            window: 512,
            options: vec![],
            payload: 0,
            doff: None,
        }
    }
}

impl Tcp {
    pub fn bytes(&self) -> Vec<u8> {
        let mut opts = self.options.clone();
        opts.resize(opts.len().div_ceil(4) * 4, 0);
        let doff = self.doff.unwrap_or((5 + opts.len() / 4) as u8);
        let mut t = Vec::new();
        t.extend_from_slice(&self.sport.to_be_bytes());
        t.extend_from_slice(&self.dport.to_be_bytes());
        t.extend_from_slice(&self.seq.to_be_bytes());
        t.extend_from_slice(&self.ack.to_be_bytes());
        t.extend_from_slice(&((u16::from(doff) << 12) | (self.flags & 0x0FFF)).to_be_bytes());
        t.extend_from_slice(&self.window.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(&opts);
        t.extend((0..self.payload).map(|i| b'a' + (i % 26) as u8));
        t
    }
}

pub const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xB4];
pub const SACK_PERM: [u8; 2] = [4, 2];
pub const NOP: u8 = 1;
pub fn wscale(s: u8) -> [u8; 3] {
    [3, 3, s]
}
pub fn timestamps(v: u32, e: u32) -> Vec<u8> {
    let mut o = vec![8, 10];
    o.extend_from_slice(&v.to_be_bytes());
    o.extend_from_slice(&e.to_be_bytes());
    o
}
pub fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut o = vec![5, (2 + 8 * blocks.len()) as u8];
    for (l, r) in blocks {
        o.extend_from_slice(&l.to_be_bytes());
        o.extend_from_slice(&r.to_be_bytes());
    }
    o
}

pub struct V4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    /// Overrides the total length.
    pub total_len: Option<u16>,
    /// Flags + fragment offset word.
    pub frag: u16,
    /// IP options (padded to 4).
    pub options: Vec<u8>,
    /// Overrides IHL.
    pub ihl: Option<u8>,
}

impl Default for V4 {
    fn default() -> V4 {
        V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            proto: 6,
            total_len: None,
            frag: 0x4000,
            options: vec![],
            ihl: None,
        }
    }
}

impl V4 {
    pub fn wrap(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        opts.resize(opts.len().div_ceil(4) * 4, 0);
        let hlen = 20 + opts.len();
        let total = self.total_len.unwrap_or((hlen + payload.len()) as u16);
        let mut h = vec![0x40 | self.ihl.unwrap_or((hlen / 4) as u8), 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0x12, 0x34]);
        h.extend_from_slice(&self.frag.to_be_bytes());
        h.extend_from_slice(&[64, self.proto, 0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&opts);
        // A correct header checksum, so tshark flags nothing.
        let mut sum = 0u32;
        for w in h.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        let ck = !(sum as u16);
        h[10..12].copy_from_slice(&ck.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

pub fn v4(payload: &[u8]) -> Vec<u8> {
    V4::default().wrap(payload)
}

pub fn v6_addr(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

/// IPv6 with `nh` as next header; `payload` includes any extension headers.
pub fn v6(nh: u8, payload: &[u8], plen: Option<u16>) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&plen.unwrap_or(payload.len() as u16).to_be_bytes());
    h.push(nh);
    h.push(64);
    h.extend_from_slice(&v6_addr(1));
    h.extend_from_slice(&v6_addr(2));
    h.extend_from_slice(payload);
    h
}

/// An IPv6 extension header of (n+1)*8 bytes (hop-by-hop, destination options,
/// routing…), padded with PadN.
pub fn ext(nh: u8, n: u8) -> Vec<u8> {
    let len = (usize::from(n) + 1) * 8;
    let mut e = vec![nh, n];
    // PadN option covering the rest.
    e.push(1);
    e.push((len - 4) as u8);
    e.resize(len, 0);
    e
}

/// A hop-by-hop header with a Jumbo Payload option.
pub fn jumbo_hbh(nh: u8, len: u32) -> Vec<u8> {
    let mut h = vec![nh, 0, 0xC2, 4];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// A routing header (type 0, segments left 0, no addresses).
pub fn routing(nh: u8) -> Vec<u8> {
    vec![nh, 0, 0, 0, 0, 0, 0, 0]
}

/// An IPv6 fragment header.
pub fn frag6(nh: u8, offset: u16, more: bool) -> Vec<u8> {
    let w = (offset << 3) | u16::from(more);
    let mut f = vec![nh, 0];
    f.extend_from_slice(&w.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1]);
    f
}

/// An authentication header with a 12-byte ICV ((n+2)*4 = 24 bytes).
pub fn ah(nh: u8) -> Vec<u8> {
    let mut a = vec![nh, 4, 0, 0];
    a.extend_from_slice(&[0, 0, 1, 0]); // SPI
    a.extend_from_slice(&[0, 0, 0, 1]); // sequence
    a.resize(24, 0xAB);
    a
}

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Ethernet with VLAN tags (TPID, VID) before `ethertype`.
pub fn eth_vlan(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = protocol.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 6, 2, 0, 0, 0, 0, 1, 0]);
    f.extend_from_slice(payload);
    f
}

pub fn null(family: u32, le: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = if le { family.to_le_bytes() } else { family.to_be_bytes() }.to_vec();
    f.extend_from_slice(payload);
    f
}

pub fn udp(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + len, 0x55);
    u
}

pub fn arp() -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    a
}

// ---------------------------------------------------------------------------------
// tshark

/// Runs `tshark -r file -T fields` with `fields`, `|` between fields and `,` between
/// occurrences; one Vec of strings per frame.
pub fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]);
    // As the label comparison runs it (IP defragmentation on, as by default: a lone
    // fragment then shows no TCP, which is what we skip).
    cmd.args(["-o", "tcp.desegment_tcp_streams:FALSE"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run tshark ({e}): these tests compare with tshark 4.0; install it with scripts/bootstrap.sh or apt-get install tshark"
        ),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() || !stdout.is_empty(),
        "tshark -r {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

/// Seconds.nanoseconds, as tshark prints frame.time_epoch.
pub fn epoch_string(ns: i64) -> String {
    format!("{}.{:09}", ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// The path of a fresh temporary file with these bytes (kept while `dir` lives).
pub fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// xorshift64*: deterministic randomness without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}
