//! Reads from kernel structs at offsets the recorder found in BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tcpfr_schema::raw::NO_OFFSET;

use crate::config;

#[inline(always)]
pub fn read<T: Copy + Default>(base: u64, off: u32) -> T {
    if base == 0 || off == NO_OFFSET {
        return T::default();
    }
    // SAFETY: a probe read; a bad address gives an error, not a fault.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).unwrap_or_default() }
}

/// Word `i` of a program's context (an argument, an iterator's object) as a plain
/// number: read with a probe read, so that the verifier does not type it as a BTF
/// pointer and the probe reads at load-time offsets from it are allowed.
#[inline(always)]
pub fn ctx_word(ctx: *const core::ffi::c_void, i: usize) -> u64 {
    // SAFETY: a probe read; the callers' contexts hold at least `i + 1` words.
    unsafe { bpf_probe_read_kernel((ctx as *const u64).wrapping_add(i)).unwrap_or_default() }
}

/// A field at `off` of the object behind BTF pointer `p` (a `tp_btf` argument or a
/// helper's result), loaded directly instead of with a probe read (a helper call that
/// costs tens of ns): the offsets come from the frozen read-only config, so the
/// verifier knows them and checks each load against the kernel's BTF.
#[inline(always)]
pub fn field<T: Copy + Default>(p: *const u8, off: u32) -> T {
    if off == NO_OFFSET {
        return T::default();
    }
    // SAFETY: the verifier checks the offset and size against the object's type and
    // turns the load into one that cannot fault.
    unsafe { core::ptr::read(p.add(off as usize).cast::<T>()) }
}

/// Network namespace inode of a socket, 0 if unknown.
#[inline(always)]
pub fn netns(sk: u64) -> u32 {
    let b = &config().btf;
    let net: u64 = read(sk, b.sk_net);
    read(net, b.net_inum)
}

/// Network namespace inode of the device a packet came in on, 0 if unknown.
#[inline(always)]
pub fn netns_of_packet(skb: u64) -> u32 {
    let b = &config().btf;
    let dev: u64 = read(skb, b.skb_dev);
    let net: u64 = read(dev, b.dev_net);
    read(net, b.net_inum)
}

/// `sk->sk_err`.
#[inline(always)]
pub fn sk_err(sk: u64) -> i32 {
    read(sk, config().btf.sk_err)
}

/// `sk->sk_protocol`, 0 if unknown.
#[inline(always)]
pub fn sk_protocol(sk: u64) -> u16 {
    read(sk, config().btf.sk_protocol)
}

/// Segments in a TCP skb (`tcp_skb_cb.tcp_gso_segs`); at least 1.
#[inline(always)]
pub fn gso_segs(skb: u64) -> u32 {
    let segs: u16 = read(skb, config().btf.skb_gso_segs);
    if segs == 0 { 1 } else { segs as u32 }
}

/// `tcp_sock.total_retrans`.
#[inline(always)]
pub fn total_retrans(sk: u64) -> u32 {
    read(sk, config().btf.tcp_total_retrans)
}

/// `icsk_ca_state`, `icsk_pending`, `icsk_backoff` of a socket and whether its armed
/// timer is running now (1: due, and not deferred to the socket's owner) or not (0), each
/// [`UNKNOWN`](tcpfr_schema::retransmits::UNKNOWN) when its offset is missing.
#[inline(always)]
pub fn congestion(sk: u64) -> (u8, u8, u8, u8) {
    use tcpfr_schema::retransmits::UNKNOWN;
    let b = &config().btf;
    let byte = |off: u32| if off == NO_OFFSET { UNKNOWN } else { read::<u8>(sk, off) };
    // A bitfield: the state is the low 5 bits of its byte (checked in BTF).
    let ca = if b.icsk_ca_state == NO_OFFSET { UNKNOWN } else { read::<u8>(sk, b.icsk_ca_state) & 0x1f };
    let due = if b.icsk_timer_expires == NO_OFFSET {
        UNKNOWN
    } else {
        let expires: u64 = read(sk, b.icsk_timer_expires);
        // SAFETY: a helper without arguments.
        let now = unsafe { aya_ebpf::helpers::bpf_jiffies64() };
        let flags: u64 = read(sk, b.sk_tsq_flags);
        let deferred = b.sk_tsq_flags != NO_OFFSET && (flags >> (b.write_timer_deferred_bit & 63)) & 1 == 1;
        (now.wrapping_sub(expires) as i64 >= 0 && !deferred) as u8
    };
    (ca, byte(b.icsk_pending), byte(b.icsk_backoff), due)
}
