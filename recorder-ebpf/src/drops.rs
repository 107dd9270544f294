//! Raw tracepoint `kfree_skb(skb, location, reason[, rx_sk])` → `drops`: TCP packets the
//! kernel dropped, counted in `DROPS` per flow, direction and reason. The tracepoint
//! fires for every dropped packet of any protocol, so the first thing done is the
//! cheapest test that leaves only TCP; a drop storm then costs one map update per
//! packet, not a ring record.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{map, raw_tracepoint},
    maps::PerCpuHashMap,
    programs::RawTracePointContext,
};
use tcpfr_schema::drops::{direction, RawDropKey, RawDropValue};
use tcpfr_schema::raw::{kernel_flag, kind, stream, NO_OFFSET};

use crate::{config, kernel, maps::count, sock};

/// Drop counts since the recorder last took them out (it deletes what it reads), per
/// CPU so that no two CPUs add to one value. A flow that finds the map full is counted
/// as lost, never silently dropped.
#[map]
static DROPS: PerCpuHashMap<RawDropKey, RawDropValue> = PerCpuHashMap::with_max_entries(8192, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.streams & stream::DROPS == 0 {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    let b = &cfg.btf;
    let proto = u16::from_be(kernel::read::<u16>(skb, b.skb_protocol));
    let v6 = match proto {
        ETH_P_IP => false,
        ETH_P_IPV6 => true,
        _ => return 0,
    };
    if !is_tcp(skb, v6) {
        return 0;
    }
    let mut key = RawDropKey { reason: ctx.arg::<u64>(2) as u32, ..RawDropKey::default() };
    // Packets this host sent never came in on a device.
    let iif: i32 = kernel::read(skb, b.skb_iif);
    key.direction = if iif == 0 { direction::OUT } else { direction::IN };
    key.netns = kernel::netns_of_packet(skb);
    sock::tuple_from_packet(skb, &mut key.tuple);
    if key.direction == direction::OUT {
        // tuple_from_packet takes the packet's destination as our end.
        core::mem::swap(&mut key.tuple.laddr, &mut key.tuple.raddr);
        core::mem::swap(&mut key.tuple.lport, &mut key.tuple.rport);
    }
    key.sk = if key.direction == direction::OUT {
        kernel::read(skb, b.skb_sk)
    } else if cfg.flags & kernel_flag::KFREE_SKB_RX_SK != 0 {
        ctx.arg(3)
    } else {
        0
    };
    if key.netns == 0 {
        // Sent packets may have no device yet: their socket's namespace then.
        key.netns = kernel::netns(key.sk);
    }
    add(&key, tcp_seq(skb));
    0
}

/// Whether the packet's IP header says TCP (IPv6: the first next header).
#[inline(always)]
fn is_tcp(skb: u64, v6: bool) -> bool {
    let b = &config().btf;
    if b.skb_head == NO_OFFSET || b.skb_network_header == NO_OFFSET {
        return false;
    }
    let head: u64 = kernel::read(skb, b.skb_head);
    let nh: u16 = kernel::read(skb, b.skb_network_header);
    let at = head + nh as u64 + if v6 { 6 } else { 9 };
    // SAFETY: a probe read.
    let p: u8 = unsafe { bpf_probe_read_kernel(at as *const u8).unwrap_or(0) };
    head != 0 && p == IPPROTO_TCP
}

/// The TCP header's sequence number (host order).
#[inline(always)]
fn tcp_seq(skb: u64) -> u32 {
    let b = &config().btf;
    let head: u64 = kernel::read(skb, b.skb_head);
    let th: u16 = kernel::read(skb, b.skb_transport_header);
    // SAFETY: a probe read.
    let seq: u32 = unsafe { bpf_probe_read_kernel((head + th as u64 + 4) as *const u32).unwrap_or(0) };
    u32::from_be(seq)
}

#[inline(always)]
fn add(key: &RawDropKey, seq: u32) {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(v) = DROPS.get_ptr_mut(key) {
        // SAFETY: this CPU's value; programs on one CPU do not run at once on it.
        unsafe {
            if (*v).packets == 0 {
                (*v).first_ns = now;
                (*v).seq_first = seq;
                (*v).seq_last = seq;
            }
            (*v).packets += 1;
            (*v).last_ns = now;
            // The range in TCP's modular order: a retransmission dropped after later
            // data must not shrink it.
            (*v).seq_first = seq_min((*v).seq_first, seq);
            (*v).seq_last = seq_max((*v).seq_last, seq);
        }
        return;
    }
    // Other CPUs' values of a new entry are zero.
    let v = RawDropValue { packets: 1, first_ns: now, last_ns: now, seq_first: seq, seq_last: seq };
    if DROPS.insert(key, &v, 0).is_err() {
        count(tcpfr_schema::raw::counter::LOST_BASE + kind::DROP as u32);
    }
}

/// The earlier / later of two sequence numbers (RFC 1982 serial arithmetic, as TCP's
/// `before()`/`after()`).
#[inline(always)]
fn seq_min(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) < 0 { b } else { a }
}

#[inline(always)]
fn seq_max(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 { b } else { a }
}
