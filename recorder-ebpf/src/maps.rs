//! Maps shared by the programs.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE, BPF_SK_STORAGE_GET_F_CREATE},
    btf_maps::SkStorage,
    helpers::generated::bpf_sk_storage_get,
    macros::{btf_map, map},
    maps::{ring_buf::RingBufEntry, Array, PerCpuArray, RingBuf},
};
use tcpfr_schema::raw::{counter, scratch_slot, SCRATCH_BYTES};

/// All events, in the order they were reserved. Sized by the recorder (`--ring-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Per-CPU counters, see [`counter`]: losses per event kind, rate-limited samples.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Scratch space for one tracepoint record or socket head (copied in with a single
/// read), one slot per program.
#[repr(C, align(8))]
pub struct Scratch {
    pub buf: [u8; SCRATCH_BYTES],
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(scratch_slot::COUNT, 0);

/// Per socket, in the socket's own storage (`bpf_sk_storage`: freed with the socket, no
/// size to outgrow, nothing to clean up): the socket walk's last progress value, to
/// skip idle sockets (a listener's: its last report), or with `--rtt-per-ack` the last
/// sample's time, for the rate limit. Only one of the two modes is loaded. Only
/// programs that hold a BTF pointer to the socket can reach it (the walk, `tp_btf`).
#[btf_map]
pub static RTT_LAST: SkStorage<u64> = SkStorage::new();

/// The `RTT_LAST` value of socket `sk`, made (0) if the socket has none yet; None if
/// the kernel cannot allocate it. `sk` must be a BTF pointer to a full socket (a
/// `tp_btf` argument, or what `bpf_skc_to_tcp_sock` returned), not an address read
/// with a probe read: the verifier checks its type.
#[inline(always)]
pub fn rtt_last(sk: *mut c_void) -> Option<&'static mut u64> {
    let map = core::ptr::from_ref(&RTT_LAST).cast_mut().cast::<c_void>();
    // SAFETY: the helper checks `sk`; the value is this socket's, 8 bytes.
    let p = unsafe { bpf_sk_storage_get(map, sk, core::ptr::null_mut(), BPF_SK_STORAGE_GET_F_CREATE as u64) };
    // SAFETY: non-null: a live u64 of this socket's storage.
    unsafe { p.cast::<u64>().as_mut() }
}

/// The socket walk's state from one walk to the next (see `rtt_walk.rs`), indexed by
/// `rtt_walk::walk_state`. Walks run one at a time (the recorder reads one iterator at a time).
#[map]
pub static WALK_STATE: Array<u32> = Array::with_max_entries(3, 0);

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, programs on one CPU do not run concurrently on it.
        unsafe { *p += 1 };
    }
}

/// Reserves a zeroed event of type `T` in the ring buffer; `None` (and the event is
/// counted as lost) when the ring is full. Events are filled in place: building them
/// on the stack first would not fit in the 512-byte BPF stack.
#[inline(always)]
pub fn reserve<T: 'static>(kind: u8) -> Option<RingBufEntry<T>> {
    let Some(mut entry) = EVENTS.reserve::<T>(0) else {
        count(counter::LOST_BASE + kind as u32);
        return None;
    };
    let p = entry.as_mut_ptr().cast::<u64>();
    let words = core::mem::size_of::<T>() / 8;
    let mut i = 0;
    while i < words {
        // SAFETY: T's size is a multiple of 8 (checked in tcpfr_schema) and in bounds.
        unsafe { p.add(i).write(0) };
        i += 1;
    }
    Some(entry)
}

/// Whether unread records fill at least half of the ring.
#[inline(always)]
pub fn ring_half_full() -> bool {
    EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= EVENTS.query(BPF_RB_RING_SIZE as u64) / 2
}

/// Publishes a reserved event. The reader is woken only when the ring holds
/// `wakeup_bytes` (it polls on a timer otherwise): a wakeup per event would cost
/// more than everything else the programs do.
#[inline(always)]
pub fn submit<T: 'static>(entry: RingBufEntry<T>) {
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let flags = if waiting >= crate::config().wakeup_bytes as u64 { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP };
    entry.submit(flags as u64);
}
