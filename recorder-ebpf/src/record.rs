//! Reading tracepoint records at offsets known only at load time.
//!
//! The verifier only allows context reads at offsets fixed in the instruction, so the
//! record is copied into per-CPU scratch space with one helper call and its fields are
//! then read from there with bounds checks.

use aya_ebpf::{helpers::generated::bpf_probe_read_kernel, programs::TracePointContext, EbpfContext};
use tcpfr_schema::raw::{addr_layout, AddrOffsets, RawTuple, TpOffsets, AF_INET, AF_INET6, NO_FIELD, TP_RECORD_MAX};

use crate::maps::{Scratch, SCRATCH};

pub struct Record {
    scratch: *const Scratch,
}

impl Record {
    /// Copies the first `tp.size` bytes of the record; `None` if that fails.
    #[inline(always)]
    pub fn load(ctx: &TracePointContext, tp: &TpOffsets) -> Option<Record> {
        let scratch = SCRATCH.get_ptr_mut(0)?;
        let n = tp.size as u32;
        if n == 0 || n > TP_RECORD_MAX as u32 {
            return None;
        }
        // SAFETY: scratch is a map value of TP_RECORD_MAX bytes, n ≤ TP_RECORD_MAX.
        let ret = unsafe { bpf_probe_read_kernel(scratch.cast(), n, ctx.as_ptr().cast_const()) };
        if ret != 0 {
            return None;
        }
        Some(Record { scratch })
    }

    #[inline(always)]
    fn at<T: Copy + Default>(&self, off: u16) -> T {
        let off = off as usize;
        if off > TP_RECORD_MAX - core::mem::size_of::<T>() {
            return T::default();
        }
        // SAFETY: in bounds (checked above); the recorder only passes offsets aligned
        // for the field's size.
        unsafe { core::ptr::read(((*self.scratch).buf.as_ptr().add(off)).cast::<T>()) }
    }

    #[inline(always)]
    pub fn u16(&self, off: u16) -> u16 {
        self.at(off)
    }
    #[inline(always)]
    pub fn u32(&self, off: u16) -> u32 {
        self.at(off)
    }
    #[inline(always)]
    pub fn i32(&self, off: u16) -> i32 {
        self.at(off)
    }
    #[inline(always)]
    pub fn u64(&self, off: u16) -> u64 {
        self.at(off)
    }

    #[inline(always)]
    pub fn has(off: u16) -> bool {
        off != NO_FIELD
    }

    /// Copies `N` bytes (an address) starting at `off`; zeros if out of bounds.
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: u16, dst: &mut [u8]) {
        let off = off as usize;
        if off > TP_RECORD_MAX - N || dst.len() < N {
            return;
        }
        let mut i = 0;
        while i < N {
            // SAFETY: off + i < TP_RECORD_MAX.
            dst[i] = unsafe { *(*self.scratch).buf.as_ptr().add(off + i) };
            i += 1;
        }
    }

    /// Fills in the addresses and ports, local first, from either kernel layout.
    #[inline(always)]
    pub fn tuple(&self, a: &AddrOffsets, t: &mut RawTuple) {
        match a.layout {
            addr_layout::SPLIT => {
                t.family = self.u16(a.family);
                t.lport = self.u16(a.sport);
                t.rport = self.u16(a.dport);
                if t.family == AF_INET6 {
                    self.bytes::<16>(a.saddr_v6, &mut t.laddr);
                    self.bytes::<16>(a.daddr_v6, &mut t.raddr);
                } else {
                    self.bytes::<4>(a.saddr, &mut t.laddr);
                    self.bytes::<4>(a.daddr, &mut t.raddr);
                }
            }
            addr_layout::SOCKADDR => {
                // struct sockaddr_in{,6}: family (host order), port (network order), then
                // the IPv4 address at 4 or, after sin6_flowinfo, the IPv6 address at 8.
                t.family = self.u16(a.saddr);
                t.lport = u16::from_be(self.u16(a.saddr.wrapping_add(2)));
                t.rport = u16::from_be(self.u16(a.daddr.wrapping_add(2)));
                if t.family == AF_INET6 {
                    self.bytes::<16>(a.saddr.wrapping_add(8), &mut t.laddr);
                    self.bytes::<16>(a.daddr.wrapping_add(8), &mut t.raddr);
                } else if t.family == AF_INET {
                    self.bytes::<4>(a.saddr.wrapping_add(4), &mut t.laddr);
                    self.bytes::<4>(a.daddr.wrapping_add(4), &mut t.raddr);
                }
            }
            _ => {}
        }
    }
}
