//! The kernel's drop counts (`DROPS`, filled by the `kfree_skb` program) → `drops`
//! rows: every interval each entry is read and deleted in one step (so no drop counted
//! between the read and the delete is lost) and becomes one row.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};

use tcpfr_schema::drops::{direction, Drop, RawDropKey, RawDropValue};
use tcpfr_schema::{Str, TableId, UtcNanos};

use crate::enrich::{nonzero, owner_cols, Enricher};

/// At most this many entries are read per interval (the map's size).
const MAX_ENTRIES: usize = 8192;

pub struct DropCounts {
    map: aya::maps::MapData,
    /// Possible CPUs: a per-CPU map's value is one value per possible CPU.
    cpus: usize,
    /// Reason names by value (from BTF), made into `Str`s once.
    reasons: HashMap<u32, Str>,
}

impl DropCounts {
    pub fn new(map: aya::maps::MapData, reasons: &HashMap<u32, String>) -> DropCounts {
        let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1));
        DropCounts { map, cpus, reasons: reasons.iter().map(|(k, v)| (*k, Str::from(v.as_str()))).collect() }
    }

    /// Takes every entry out of the map and writes its row.
    pub fn drain(&mut self, e: &mut Enricher) {
        let fd = self.map.fd().as_fd().as_raw_fd();
        // Keys first: deleting while walking the keys would restart the walk.
        let mut keys = Vec::new();
        let mut prev: Option<RawDropKey> = None;
        while keys.len() < MAX_ENTRIES {
            let Some(k) = next_key(fd, prev.as_ref()) else { break };
            keys.push(k);
            prev = Some(k);
        }
        let mut per_cpu = vec![RawDropValue::default(); self.cpus];
        for k in keys {
            if lookup_and_delete(fd, &k, &mut per_cpu) {
                self.row(e, &k, &merge(&per_cpu));
            }
        }
    }

    fn row(&self, e: &mut Enricher, k: &RawDropKey, v: &RawDropValue) {
        e.counts.seen[TableId::Drops.index()] += v.packets;
        let ends = e.addrs.endpoints(&k.tuple);
        let socket = (k.sk != 0).then(|| e.sockets.find(k.sk, &ends)).flatten();
        let (socket_id, owner) = (socket.map(|s| s.id), socket.and_then(|s| s.owner.clone()));
        if !e.keep(TableId::Drops, &ends, owner.as_deref()) {
            return;
        }
        let o = owner_cols(owner.as_ref());
        let reason = match self.reasons.get(&k.reason) {
            Some(n) => n.clone(),
            None => Str::from(k.reason.to_string().as_str()),
        };
        let dir = e.name(direction::name(k.direction));
        e.rows.drops.push(&Drop {
            host: e.host.clone(),
            time: UtcNanos(e.clock.utc(v.last_ns)),
            first_time: UtcNanos(e.clock.utc(v.first_ns)),
            netns: nonzero(k.netns),
            family: ends.family,
            laddr: ends.laddr,
            lport: ends.lport,
            raddr: ends.raddr,
            rport: ends.rport,
            direction: dir,
            reason,
            packets: v.packets as i64,
            socket_id,
            pid: o.pid,
            comm: o.comm,
            seq_first: v.seq_first,
            seq_last: v.seq_last,
        });
    }
}

/// `BPF_MAP_GET_NEXT_KEY`: the key after `prev` (the first with None).
fn next_key(fd: i32, prev: Option<&RawDropKey>) -> Option<RawDropKey> {
    let mut next = RawDropKey::default();
    // SAFETY: bpf_attr is plain integers: all zeroes is a valid value.
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    // The map-element arm of a zeroed union (writing a union field is safe).
    attr.__bindgen_anon_2.map_fd = fd as u32;
    attr.__bindgen_anon_2.key = prev.map_or(0, |p| p as *const RawDropKey as u64);
    attr.__bindgen_anon_2.__bindgen_anon_1.next_key = &mut next as *mut RawDropKey as u64;
    (bpf(aya_obj::generated::bpf_cmd::BPF_MAP_GET_NEXT_KEY, &mut attr) == 0).then_some(next)
}

/// The CPUs' counts of one entry as one: their sum, from the earliest first drop to
/// the latest last one, and the sequence range that covers all of theirs (in TCP's
/// modular order, as the program keeps each CPU's).
fn merge(per_cpu: &[RawDropValue]) -> RawDropValue {
    let used = || per_cpu.iter().filter(|v| v.packets > 0);
    let first = used().min_by_key(|v| v.first_ns).copied().unwrap_or_default();
    let last = used().max_by_key(|v| v.last_ns).copied().unwrap_or_default();
    let before = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
    let lo = used().map(|v| v.seq_first).reduce(|a, b| if before(b, a) { b } else { a });
    let hi = used().map(|v| v.seq_last).reduce(|a, b| if before(a, b) { b } else { a });
    RawDropValue {
        packets: used().map(|v| v.packets).sum(),
        first_ns: first.first_ns,
        last_ns: last.last_ns,
        seq_first: lo.unwrap_or(0),
        seq_last: hi.unwrap_or(0),
    }
}

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on the per-CPU map: each CPU's value of `key` into
/// `out` (one per possible CPU; the value size is a multiple of 8, so no padding),
/// the entry deleted in the same step.
fn lookup_and_delete(fd: i32, key: &RawDropKey, out: &mut [RawDropValue]) -> bool {
    // SAFETY: bpf_attr is plain integers: all zeroes is a valid value.
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_2.map_fd = fd as u32;
    attr.__bindgen_anon_2.key = key as *const RawDropKey as u64;
    attr.__bindgen_anon_2.__bindgen_anon_1.value = out.as_mut_ptr() as u64;
    bpf(aya_obj::generated::bpf_cmd::BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) == 0
}

fn bpf(cmd: aya_obj::generated::bpf_cmd, attr: &mut aya_obj::generated::bpf_attr) -> i64 {
    // SAFETY: the kernel reads the attr's map-element arm and writes through its
    // pointers, which point to live values of the map's key and value sizes.
    unsafe { libc::syscall(libc::SYS_bpf, cmd as libc::c_long, attr as *mut _, std::mem::size_of_val(attr)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(packets: u64, first_ns: u64, seq_first: u32, seq_last: u32) -> RawDropValue {
        RawDropValue { packets, first_ns, last_ns: first_ns + 10, seq_first, seq_last }
    }

    #[test]
    fn cpus_merge_into_one_range_in_tcp_order() {
        // CPU 1 saw drops around the wrap, CPU 0 just below it, CPU 2 nothing.
        let m = merge(&[v(3, 100, 0xffff_f000, 0xffff_f800), v(2, 50, 0xffff_ff00, 0x0000_0200), v(0, 0, 0, 0)]);
        assert_eq!((m.packets, m.first_ns, m.last_ns), (5, 50, 110));
        assert_eq!((m.seq_first, m.seq_last), (0xffff_f000, 0x0000_0200));
        let m = merge(&[v(1, 5, 7000, 7000), v(1, 6, 3000, 3000)]);
        assert_eq!((m.seq_first, m.seq_last), (3000, 7000));
    }
}
