//! `decode` on hand-made frames of every supported link type, compared field by field
//! with tshark 4.0: ports, raw seq/ack, tcp.len, flags, window, header length, options,
//! innermost addresses. Frames we skip must show no `tcp.len` in tshark either, and the
//! reason must be the expected one.

mod common;

use std::net::IpAddr;

use common::*;
use tcpfr_wire::capture::CaptureReader;
use tcpfr_wire::decode::{decode, supported_linktype};
use tcpfr_wire::{Skip, TcpSegment};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Tcp {
        seglen: u32,
    },
    Skip(Skip),
    /// We skip it; tshark prints a `tcp.len` but does not analyse the segment.
    SkipTsharkLen(Skip),
}

struct Case {
    name: &'static str,
    iface: u32,
    data: Vec<u8>,
    orig_len: Option<u32>,
    expect: Expect,
}

const ETH: u32 = 0;
const SLL: u32 = 1;
const SLL2: u32 = 2;
const RAW: u32 = 3;
const IPV4: u32 = 4;
const IPV6: u32 = 5;
const NULL: u32 = 6;
const LOOP: u32 = 7;
const RAW12: u32 = 8;
const RAW14: u32 = 9;
const USER0: u32 = 10;
const LINKTYPES: [u16; 11] = [1, 113, 276, 101, 228, 229, 0, 108, 12, 14, 147];

fn tcp(f: impl FnOnce(&mut Tcp)) -> Vec<u8> {
    let mut t = Tcp::default();
    f(&mut t);
    t.bytes()
}

fn tcp6(payload: usize) -> Vec<u8> {
    tcp(|t| {
        t.payload = payload;
        t.options = timestamps(7, 8);
    })
}

fn cases() -> Vec<Case> {
    let ok = |seglen| Expect::Tcp { seglen };
    let skip = Expect::Skip;
    let c = |name, iface, data, expect| Case { name, iface, data, orig_len: None, expect };
    let syn = tcp(|t| {
        t.flags = 0x002;
        t.ack = 0;
        t.seq = 0xFFFF_FFF0;
        t.window = 64240;
        let mut o = MSS_1460.to_vec();
        o.extend_from_slice(&SACK_PERM);
        o.extend_from_slice(&timestamps(123456, 0));
        o.push(NOP);
        o.extend_from_slice(&wscale(7));
        t.options = o;
    });
    let data100 = tcp(|t| {
        t.payload = 100;
        t.options = [vec![NOP, NOP], timestamps(1, 2)].concat();
    });
    let mut v = vec![
        c("eth v4 SYN with options", ETH, eth(0x0800, &v4(&syn)), ok(0)),
        c("eth v4 data", ETH, eth(0x0800, &v4(&data100)), ok(100)),
        // A 40-byte packet padded to Ethernet's 60 bytes: the padding is not payload.
        {
            let mut f = eth(0x0800, &v4(&tcp(|t| t.flags = 0x010)));
            f.resize(60, 0);
            c("eth padding excluded", ETH, f, ok(0))
        },
        // TSO: total length 0 means the rest of the frame.
        c(
            "v4 total length 0 (TSO)",
            ETH,
            eth(0x0800, &V4 { total_len: Some(0), ..V4::default() }.wrap(&tcp(|t| t.payload = 200))),
            ok(200),
        ),
        // Total length beyond the frame: cut to the frame.
        c(
            "v4 total length beyond the frame",
            ETH,
            eth(0x0800, &V4 { total_len: Some(1500), ..V4::default() }.wrap(&tcp(|t| t.payload = 60))),
            ok(60),
        ),
        c(
            "v4 with IP options",
            ETH,
            eth(0x0800, &V4 { options: vec![1, 1, 1, 0], ..V4::default() }.wrap(&tcp(|t| t.payload = 10))),
            ok(10),
        ),
        c("v4 IHL 4", ETH, eth(0x0800, &V4 { ihl: Some(4), ..V4::default() }.wrap(&data100)), skip(Skip::Malformed)),
        c(
            "v4 version 5",
            ETH,
            {
                let mut p = v4(&data100);
                p[0] = 0x55;
                eth(0x0800, &p)
            },
            skip(Skip::Malformed),
        ),
        c(
            "v4 first fragment (MF)",
            ETH,
            eth(0x0800, &V4 { frag: 0x2000, ..V4::default() }.wrap(&data100)),
            skip(Skip::Fragment),
        ),
        // (Another datagram: tshark would reassemble it with the one above.)
        c(
            "v4 later fragment",
            ETH,
            eth(0x0800, &V4 { frag: 0x0010, src: [10, 9, 9, 9], ..V4::default() }.wrap(&[0u8; 40])),
            skip(Skip::Fragment),
        ),
        c("v4 UDP", ETH, eth(0x0800, &V4 { proto: 17, ..V4::default() }.wrap(&udp(53, 53, 20))), skip(Skip::NotTcp)),
        c(
            "v4 ICMP",
            ETH,
            eth(0x0800, &V4 { proto: 1, ..V4::default() }.wrap(&[8, 0, 0xF7, 0xFF, 0, 0, 0, 0])),
            skip(Skip::NotTcp),
        ),
        c("ARP", ETH, eth(0x0806, &arp()), skip(Skip::NotIp)),
        c("802.3 length field", ETH, eth(46, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]), skip(Skip::NotIp)),
        c(
            "TCP data offset 4",
            ETH,
            eth(0x0800, &v4(&tcp(|t| t.doff = Some(4)))),
            Expect::SkipTsharkLen(Skip::Malformed),
        ),
        c(
            "TCP header longer than the IP packet",
            ETH,
            eth(0x0800, &v4(&tcp(|t| t.doff = Some(15)))),
            skip(Skip::Malformed),
        ),
        c("TCP flags NS/AE and reserved bits", ETH, eth(0x0800, &v4(&tcp(|t| t.flags = 0xFD1))), ok(0)),
        c("TCP all flags", ETH, eth(0x0800, &v4(&tcp(|t| t.flags = 0x0FF))), ok(0)),
        c(
            "TCP SACK blocks, wscale 15, bad MSS length",
            ETH,
            eth(
                0x0800,
                &v4(&tcp(|t| {
                    t.payload = 5;
                    t.options = [vec![2, 3, 1, NOP], wscale(15).to_vec(), sack(&[(1, 2), (3, 4), (5, 6)])].concat();
                })),
            ),
            ok(5),
        ),
        c(
            "TCP option length 0 stops the options",
            ETH,
            eth(0x0800, &v4(&tcp(|t| t.options = [vec![NOP, 0x1E, 0], MSS_1460.to_vec()].concat()))),
            ok(0),
        ),
        c(
            "TCP option past the header",
            ETH,
            eth(0x0800, &v4(&tcp(|t| t.options = [MSS_1460.to_vec(), vec![8, 10, 0, 0]].concat()))),
            ok(0),
        ),
        // VLANs.
        c("802.1Q", ETH, eth_vlan(&[(0x8100, 5)], 0x0800, &v4(&data100)), ok(100)),
        c("802.1ad + 802.1Q", ETH, eth_vlan(&[(0x88A8, 100), (0x8100, 5)], 0x0800, &v4(&data100)), ok(100)),
        c(
            "QinQ 0x9100 + 802.1Q, IPv6",
            ETH,
            eth_vlan(&[(0x9100, 7), (0x8100, 8)], 0x86DD, &v6(6, &tcp6(30), None)),
            ok(30),
        ),
        c("three tags", ETH, eth_vlan(&[(0x88A8, 1), (0x8100, 2), (0x8100, 3)], 0x0800, &v4(&syn)), ok(0)),
        c("802.1Q then ARP", ETH, eth_vlan(&[(0x8100, 5)], 0x0806, &arp()), skip(Skip::NotIp)),
        // IPv6 and its extension headers.
        c("v6 data", ETH, eth(0x86DD, &v6(6, &tcp6(77), None)), ok(77)),
        c(
            "v6 hop-by-hop, dest opts, routing, atomic fragment",
            ETH,
            eth(0x86DD, &v6(0, &[ext(60, 0), ext(43, 1), routing(44), frag6(6, 0, false), tcp6(33)].concat(), None)),
            ok(33),
        ),
        c("v6 AH", ETH, eth(0x86DD, &v6(51, &[ah(6), tcp6(12)].concat(), None)), ok(12)),
        c(
            "v6 fragment, more follow",
            ETH,
            eth(0x86DD, &v6(44, &[frag6(6, 0, true), tcp6(40)].concat(), None)),
            skip(Skip::Fragment),
        ),
        c(
            "v6 fragment, offset",
            ETH,
            eth(0x86DD, &v6(44, &[frag6(6, 100, false), vec![0; 40]].concat(), None)),
            skip(Skip::Fragment),
        ),
        c("v6 no next header", ETH, eth(0x86DD, &v6(60, &[ext(59, 0)].concat(), None)), skip(Skip::NotTcp)),
        c("v6 ESP", ETH, eth(0x86DD, &v6(50, &[0u8; 32], None)), skip(Skip::NotTcp)),
        c("v6 UDP", ETH, eth(0x86DD, &v6(17, &udp(5353, 5353, 10), None)), skip(Skip::NotTcp)),
        // Payload length 0 without a jumbo option (IPv6 TSO): tshark 4.0 decodes no TCP.
        c("v6 payload length 0", ETH, eth(0x86DD, &v6(6, &tcp6(21), Some(0))), skip(Skip::Malformed)),
        c(
            "v6 payload length 0, small jumbo option",
            ETH,
            eth(0x86DD, &v6(0, &[jumbo_hbh(6, 49), tcp6(21)].concat(), Some(0))),
            skip(Skip::Malformed),
        ),
        c("v6 payload length beyond the frame", ETH, eth(0x86DD, &v6(6, &tcp6(21), Some(900))), ok(21)),
        // Tunnels: the innermost addresses.
        c(
            "IPIP",
            ETH,
            eth(
                0x0800,
                &V4 { proto: 4, ..V4::default() }
                    .wrap(&V4 { src: [192, 168, 1, 1], dst: [192, 168, 2, 2], ..V4::default() }.wrap(&data100)),
            ),
            ok(100),
        ),
        c("6in4", ETH, eth(0x0800, &V4 { proto: 41, ..V4::default() }.wrap(&v6(6, &tcp6(9), None))), ok(9)),
        c(
            "4in6",
            ETH,
            eth(0x86DD, &v6(4, &V4 { src: [172, 16, 0, 1], ..V4::default() }.wrap(&data100), None)),
            ok(100),
        ),
        c(
            "6in6 after a dest opts header",
            ETH,
            eth(0x86DD, &v6(60, &[ext(41, 0), v6(6, &tcp6(3), None)].concat(), None)),
            ok(3),
        ),
        // Other link types.
        c("SLL v4", SLL, sll(0x0800, &v4(&data100)), ok(100)),
        c("SLL v6", SLL, sll(0x86DD, &v6(6, &tcp6(5), None)), ok(5)),
        c("SLL 802.1Q", SLL, sll(0x8100, &[vec![0, 5, 0x08, 0x00], v4(&data100)].concat()), ok(100)),
        c("SLL ARP", SLL, sll(0x0806, &arp()), skip(Skip::NotIp)),
        c("SLL2 v4", SLL2, sll2(0x0800, &v4(&syn)), ok(0)),
        c("SLL2 v6", SLL2, sll2(0x86DD, &v6(6, &tcp6(1), None)), ok(1)),
        c("raw v4", RAW, v4(&data100), ok(100)),
        c("raw v6", RAW, v6(6, &tcp6(2), None), ok(2)),
        c("raw, not IP", RAW, vec![0x10; 40], skip(Skip::NotIp)),
        c("raw 12 v4", RAW12, v4(&data100), ok(100)),
        c("raw 14 v6", RAW14, v6(6, &tcp6(4), None), ok(4)),
        c("IPV4", IPV4, v4(&data100), ok(100)),
        // tshark's IPv4 dissector passes version 6 on to IPv6, but not the reverse.
        c("IPV4 carrying v6", IPV4, v6(6, &tcp6(4), None), ok(4)),
        c("ethertype IPv4 carrying v6", ETH, eth(0x0800, &v6(6, &tcp6(4), None)), ok(4)),
        c("ethertype IPv6 carrying v4", ETH, eth(0x86DD, &v4(&data100)), skip(Skip::Malformed)),
        c("IPV6 carrying v4", IPV6, v4(&data100), skip(Skip::Malformed)),
        c("IPV6", IPV6, v6(6, &tcp6(6), None), ok(6)),
        c("NULL LE v4", NULL, null(2, true, &v4(&data100)), ok(100)),
        c("NULL BE v4", NULL, null(2, false, &v4(&data100)), ok(100)),
        c("NULL LE v6 (24)", NULL, null(24, true, &v6(6, &tcp6(8), None)), ok(8)),
        c("NULL BE v6 (28)", NULL, null(28, false, &v6(6, &tcp6(8), None)), ok(8)),
        c("NULL LE v6 (30)", NULL, null(30, true, &v6(6, &tcp6(8), None)), ok(8)),
        c("NULL other family", NULL, null(7, true, &[0u8; 30]), skip(Skip::NotIp)),
        c("LOOP v4", LOOP, null(2, false, &v4(&data100)), ok(100)),
        c("LOOP v6", LOOP, null(24, false, &v6(6, &tcp6(8), None)), ok(8)),
        c("unsupported link type", USER0, v4(&data100), skip(Skip::UnsupportedLinkType)),
    ];
    // Snaplen cuts: lengths from the IP header, not from what was captured.
    let full = eth(
        0x0800,
        &v4(&tcp(|t| {
            t.payload = 1448;
            t.options = [vec![NOP, NOP], timestamps(5, 6)].concat();
        })),
    );
    let cut = |name, at: usize, expect| Case {
        name,
        iface: ETH,
        data: full[..at].to_vec(),
        orig_len: Some(full.len() as u32),
        expect,
    };
    v.push(cut("snaplen 96", 96, ok(1448)));
    v.push(cut("snaplen cut inside the TCP options", 14 + 20 + 20 + 5, ok(1448)));
    v.push(cut("snaplen cut in the fixed TCP header", 14 + 20 + 10, skip(Skip::Truncated)));
    v.push(cut("snaplen cut in the IP header", 14 + 10, skip(Skip::Truncated)));
    v.push(cut("snaplen cut in the Ethernet header", 10, skip(Skip::Truncated)));
    let full6 = eth(0x86DD, &v6(0, &[ext(6, 2), tcp6(1000)].concat(), None));
    v.push(Case {
        name: "v6 snaplen cut after the extension header",
        iface: ETH,
        data: full6[..14 + 40 + 24 + 20].to_vec(),
        orig_len: Some(full6.len() as u32),
        expect: ok(1000),
    });
    v.push(Case {
        name: "v6 snaplen cut in the extension header",
        iface: ETH,
        data: full6[..14 + 40 + 1].to_vec(),
        orig_len: Some(full6.len() as u32),
        expect: skip(Skip::Truncated),
    });
    // A jumbogram (RFC 2675), whole and cut by a snaplen.
    let jumbo = eth(0x86DD, &v6(0, &[jumbo_hbh(6, 8 + 32 + 70_000), tcp6(70_000)].concat(), Some(0)));
    v.push(Case { name: "v6 jumbogram", iface: ETH, data: jumbo.clone(), orig_len: None, expect: ok(70_000) });
    v.push(Case {
        name: "v6 jumbogram cut",
        iface: ETH,
        data: jumbo[..128].to_vec(),
        orig_len: Some(jumbo.len() as u32),
        expect: ok(70_000),
    });
    // A broken file where the frame is longer than its wire length: tshark uses the
    // captured length.
    v.push(Case {
        name: "captured length > wire length",
        iface: ETH,
        data: eth(0x0800, &v4(&data100)),
        orig_len: Some(30),
        expect: ok(100),
    });
    v
}

fn last(s: &str) -> &str {
    s.rsplit(',').next().unwrap_or("")
}

fn opt_eq<T: ToString>(name: &str, ours: Option<T>, theirs: &str) -> Option<String> {
    let ours = ours.map(|v| v.to_string()).unwrap_or_default();
    (ours != theirs).then(|| format!("{name}: ours {ours:?}, tshark {theirs:?}"))
}

const FIELDS: [&str; 19] = [
    "frame.number",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.hdr_len",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.sack.count",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "tcp.option_kind",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
];

/// Differences between our segment and tshark's fields for one frame.
fn diff(seg: &TcpSegment, t: &[String]) -> Vec<String> {
    let f = |name: &str| -> &str { t[FIELDS.iter().position(|x| *x == name).unwrap()].as_str() };
    let mut d = Vec::new();
    let mut eq = |name: &str, ours: String| {
        if ours != f(name) {
            d.push(format!("{name}: ours {ours:?}, tshark {:?}", f(name)));
        }
    };
    eq("tcp.srcport", seg.sport.to_string());
    eq("tcp.dstport", seg.dport.to_string());
    eq("tcp.seq_raw", seg.seq.to_string());
    eq("tcp.ack_raw", seg.ack.to_string());
    eq("tcp.len", seg.seglen.to_string());
    eq("tcp.flags", format!("0x{:04x}", seg.flags));
    eq("tcp.window_size_value", seg.window.to_string());
    eq("tcp.hdr_len", seg.header_len.to_string());
    let o = &seg.options;
    d.extend(opt_eq("mss", o.mss, f("tcp.options.mss_val")));
    d.extend(opt_eq("wscale", o.wscale, f("tcp.options.wscale.shift")));
    d.extend(opt_eq("sack count", (o.sack_blocks > 0).then_some(o.sack_blocks), f("tcp.options.sack.count")));
    d.extend(opt_eq("tsval", o.timestamps.map(|x| x.0), f("tcp.options.timestamp.tsval")));
    d.extend(opt_eq("tsecr", o.timestamps.map(|x| x.1), f("tcp.options.timestamp.tsecr")));
    let sack_perm = f("tcp.option_kind").split(',').any(|k| k == "4");
    if sack_perm != o.sack_permitted {
        d.push(format!("sack_permitted: ours {}, tshark option kinds {:?}", o.sack_permitted, f("tcp.option_kind")));
    }
    let (src, dst) = match seg.src {
        IpAddr::V4(_) => (last(f("ip.src")), last(f("ip.dst"))),
        IpAddr::V6(_) => (last(f("ipv6.src")), last(f("ipv6.dst"))),
    };
    if seg.src.to_string() != src || seg.dst.to_string() != dst {
        d.push(format!("addresses: ours {} → {}, tshark {src} → {dst}", seg.src, seg.dst));
    }
    d
}

#[test]
fn decode_equals_tshark_on_every_link_type() {
    let cases = cases();
    let mut ng = PcapNg::new(false);
    for lt in LINKTYPES {
        ng.idb(lt, 0, Some(9), None);
    }
    for (i, case) in cases.iter().enumerate() {
        let orig = case.orig_len.unwrap_or(case.data.len() as u32);
        ng.epb(case.iface, 1_700_000_000_000_000_000 + i as u64 * 1000, &case.data, orig);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_temp(&dir, "decode.pcapng", &ng.buf);

    let theirs = tshark_fields(&file, &FIELDS);
    assert_eq!(theirs.len(), cases.len(), "tshark frame count");

    let mut reader = CaptureReader::open(&file).unwrap();
    let mut bad = Vec::new();
    let mut i = 0;
    while let Some(frame) = reader.next_frame().unwrap() {
        let case = &cases[i];
        let t = &theirs[i];
        assert_eq!(t.len(), FIELDS.len(), "tshark line {t:?}");
        assert_eq!(t[0], frame.number.to_string());
        assert_eq!(frame.linktype, u32::from(LINKTYPES[case.iface as usize]));
        assert_eq!(supported_linktype(frame.linktype), case.iface != USER0, "{}", case.name);
        let got = decode(frame.linktype, frame.data, frame.orig_len);
        match (got, case.expect) {
            (Ok(seg), Expect::Tcp { seglen }) => {
                if seg.seglen != seglen {
                    bad.push(format!("{}: seglen {} but the test expects {seglen}", case.name, seg.seglen));
                }
                for d in diff(&seg, t) {
                    bad.push(format!("{} (frame {}): {d}", case.name, frame.number));
                }
            }
            (Err(skip), Expect::SkipTsharkLen(want)) if skip == want => {}
            (Err(skip), Expect::Skip(want)) if skip == want => {
                let tcp_len = &t[5];
                if !tcp_len.is_empty() {
                    bad.push(format!("{}: we skip it ({skip:?}) but tshark has tcp.len {tcp_len}", case.name));
                }
            }
            (got, want) => bad.push(format!("{}: decode gave {got:?}, expected {want:?}", case.name)),
        }
        i += 1;
    }
    assert_eq!(i, cases.len());
    assert!(bad.is_empty(), "{} differences:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn decode_never_panics_on_cut_or_mangled_frames() {
    // Every prefix and single-byte corruption of every case, for every link type.
    for case in cases() {
        for lt in LINKTYPES {
            let lt = u32::from(lt);
            for n in 0..=case.data.len() {
                let _ = decode(lt, &case.data[..n], case.data.len() as u32);
                let _ = decode(lt, &case.data[..n], 0);
                let _ = decode(lt, &case.data[..n], u32::MAX);
            }
            let mut m = case.data.clone();
            for at in 0..m.len().min(80) {
                let keep = m[at];
                for v in [0x00, 0xFF, 0x41, 0x0F, 0xF0] {
                    m[at] = v;
                    let _ = decode(lt, &m, m.len() as u32);
                }
                m[at] = keep;
            }
        }
    }
}
