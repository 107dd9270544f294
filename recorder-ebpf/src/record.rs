//! Reading kernel memory at offsets known only at load time: a classic tracepoint
//! record, or the head of a `struct sock`.
//!
//! The verifier only allows context reads at offsets fixed in the instruction, and
//! each probe read is a helper call, so the bytes are copied into per-CPU scratch
//! space with one helper call and fields are then read from there with bounds checks.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use tcpfr_schema::raw::{addr_layout, AddrOffsets, RawTuple, TpOffsets, AF_INET, AF_INET6, TP_RECORD_MAX};

use crate::maps::{Scratch, SCRATCH};

pub struct Record {
    scratch: *const Scratch,
}

impl Record {
    /// Copies the first `tp.size` bytes of a tracepoint record into scratch `slot`.
    #[inline(always)]
    pub fn load(src: *const core::ffi::c_void, tp: &TpOffsets, slot: u32) -> Option<Record> {
        Self::copy(src, tp.size as u32, slot)
    }

    /// Copies `n` bytes from kernel address `src` into scratch `slot`; `None` if that
    /// fails (a bad pointer gives an error, not a fault).
    #[inline(always)]
    pub fn copy(src: *const core::ffi::c_void, n: u32, slot: u32) -> Option<Record> {
        let scratch = SCRATCH.get_ptr_mut(slot)?;
        if n == 0 || n > TP_RECORD_MAX as u32 || src.is_null() {
            return None;
        }
        // SAFETY: scratch is a map value of TP_RECORD_MAX bytes, n ≤ TP_RECORD_MAX.
        let ret = unsafe { bpf_probe_read_kernel(scratch.cast(), n, src) };
        if ret != 0 {
            return None;
        }
        Some(Record { scratch })
    }

    #[inline(always)]
    fn at<T: Copy + Default>(&self, off: u16) -> T {
        let off = off as usize;
        // (NO_FIELD is beyond the buffer, so absent fields read as 0.)
        if off > TP_RECORD_MAX - core::mem::size_of::<T>() {
            return T::default();
        }
        // SAFETY: in bounds (checked above); the recorder only passes offsets aligned
        // for the field's size.
        unsafe { core::ptr::read(((*self.scratch).buf.as_ptr().add(off)).cast::<T>()) }
    }

    #[inline(always)]
    pub fn at_u8(&self, off: u16) -> u8 {
        self.at(off)
    }
    #[inline(always)]
    pub fn u16(&self, off: u16) -> u16 {
        self.at(off)
    }
    #[inline(always)]
    pub fn u32(&self, off: u16) -> u32 {
        self.at(off)
    }

    /// Copies `N` bytes (an address) starting at `off`; zeros if out of bounds.
    #[inline(always)]
    pub fn bytes<const N: usize>(&self, off: u16, dst: &mut [u8]) {
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
