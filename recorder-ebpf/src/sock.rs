//! Addresses, ports and state of a socket (or request / timewait socket: they share
//! `struct sock_common`), and of the packet a socket-less reset answers.

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tcpfr_schema::raw::{RawTuple, AF_INET, AF_INET6, NO_OFFSET};

use crate::{
    config,
    record::{off16, Record},
};

/// Fills `t` from the socket at `sk` and returns its TCP state (0 if unreadable).
#[inline(always)]
pub fn tuple(sk: u64, slot: u32, t: &mut RawTuple) -> u8 {
    let b = &config().btf;
    let Some(rec) = Record::copy(sk as *const c_void, b.sk_head_len, slot) else { return 0 };
    let family = rec.u16(off16(b.sk_family));
    t.family = family;
    t.lport = rec.u16(off16(b.sk_num));
    t.rport = u16::from_be(rec.u16(off16(b.sk_dport)));
    if family == AF_INET6 {
        rec.bytes::<16>(off16(b.sk_v6_rcv_saddr), &mut t.laddr);
        rec.bytes::<16>(off16(b.sk_v6_daddr), &mut t.raddr);
    } else if family == AF_INET {
        rec.bytes::<4>(off16(b.sk_rcv_saddr), &mut t.laddr);
        rec.bytes::<4>(off16(b.sk_daddr), &mut t.raddr);
    }
    rec.at_u8(off16(b.sk_state))
}

#[inline(always)]
fn read<T: Copy + Default>(addr: u64) -> T {
    if addr == 0 {
        return T::default();
    }
    // SAFETY: a probe read.
    unsafe { bpf_probe_read_kernel(addr as *const T).unwrap_or_default() }
}

/// Fills `t` from the IP and TCP headers of `skb`, as seen from our side: a reset
/// answers this packet, so the packet's destination is our local end.
#[inline(always)]
pub fn tuple_from_packet(skb: u64, t: &mut RawTuple) {
    let b = &config().btf;
    if skb == 0 || b.skb_head == NO_OFFSET || b.skb_network_header == NO_OFFSET || b.skb_transport_header == NO_OFFSET {
        return;
    }
    let head: u64 = read(skb + b.skb_head as u64);
    let nh: u16 = read(skb + b.skb_network_header as u64);
    let th: u16 = read(skb + b.skb_transport_header as u64);
    if head == 0 {
        return;
    }
    let ip = head + nh as u64;
    let tcp = head + th as u64;
    let version: u8 = read::<u8>(ip) >> 4;
    let ports: [u8; 4] = read(tcp);
    t.rport = u16::from_be_bytes([ports[0], ports[1]]);
    t.lport = u16::from_be_bytes([ports[2], ports[3]]);
    if version == 4 {
        t.family = AF_INET;
        let a: [u8; 8] = read(ip + 12);
        t.raddr[..4].copy_from_slice(&a[..4]);
        t.laddr[..4].copy_from_slice(&a[4..]);
    } else if version == 6 {
        t.family = AF_INET6;
        t.raddr = read(ip + 8);
        t.laddr = read(ip + 24);
    }
}
