//! Reading kernel memory at offsets known only at load time: the head of a
//! `struct sock`, whose addresses and ports are several fields.
//!
//! Each probe read is a helper call, so the bytes are copied into per-CPU scratch
//! space with one helper call and fields are then read from there with bounds checks.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use tcpfr_schema::raw::SCRATCH_BYTES;

use crate::maps::{Scratch, SCRATCH};

/// An offset into a copied block; offsets beyond the scratch space (an absent field's
/// [`NO_OFFSET`](tcpfr_schema::raw::NO_OFFSET), or one before the block's start) read as 0.
#[inline(always)]
pub fn off16(o: u32) -> u16 {
    if o > u16::MAX as u32 { u16::MAX } else { o as u16 }
}

pub struct Record {
    scratch: *const Scratch,
}

impl Record {
    /// Copies `n` bytes from kernel address `src` into scratch `slot`; `None` if that
    /// fails (a bad pointer gives an error, not a fault).
    #[inline(always)]
    pub fn copy(src: *const core::ffi::c_void, n: u32, slot: u32) -> Option<Record> {
        let scratch = SCRATCH.get_ptr_mut(slot)?;
        if n == 0 || n > SCRATCH_BYTES as u32 || src.is_null() {
            return None;
        }
        // SAFETY: scratch is a map value of SCRATCH_BYTES bytes, n ≤ SCRATCH_BYTES.
        let ret = unsafe { bpf_probe_read_kernel(scratch.cast(), n, src) };
        if ret != 0 {
            return None;
        }
        Some(Record { scratch })
    }

    #[inline(always)]
    fn at<T: Copy + Default>(&self, off: u16) -> T {
        let off = off as usize;
        // (u16::MAX, an absent offset, is beyond the buffer, so absent fields read as 0.)
        if off > SCRATCH_BYTES - core::mem::size_of::<T>() {
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
        if off > SCRATCH_BYTES - N || dst.len() < N {
            return;
        }
        let mut i = 0;
        while i < N {
            // SAFETY: off + i < SCRATCH_BYTES.
            dst[i] = unsafe { *(*self.scratch).buf.as_ptr().add(off + i) };
            i += 1;
        }
    }
}
