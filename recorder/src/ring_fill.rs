//! The kernel→recorder ring buffer's fill, read without consuming: for the live
//! metrics' `tcpfr_recorder_ringbuf_fill_ratio`.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::Ordering;

/// Read-only view of the ring buffer's positions (its first two pages: the consumer's
/// and the producer's), for the fill ratio.
pub struct RingFill {
    ptr: *mut libc::c_void,
    page: usize,
    size: u64,
}

// SAFETY: the mapping is read-only and only read with atomic loads.
unsafe impl Send for RingFill {}
unsafe impl Sync for RingFill {}

impl RingFill {
    /// Maps the positions of the ring buffer `fd` of `size` bytes; None if the kernel
    /// refuses (the gauge is then left out).
    pub fn new(fd: BorrowedFd<'_>, size: u64) -> Option<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: a fresh read-only shared mapping of the map's first two pages; the
        // kernel allows read-only mappings of a BPF ring buffer at any offset.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            tracing::warn!("metrics: cannot map the ring buffer's positions ({}); no fill ratio", std::io::Error::last_os_error());
            return None;
        }
        Some(RingFill { ptr, page, size })
    }

    /// Bytes written by the kernel and not yet read, as a fraction of the ring's size.
    pub fn ratio(&self) -> f64 {
        // SAFETY: both positions are u64s at the start of a mapped page, written by the
        // kernel and the consumer with release semantics.
        let (cons, prod) = unsafe {
            let c = &*(self.ptr as *const std::sync::atomic::AtomicU64);
            let p = &*((self.ptr as *const u8).add(self.page) as *const std::sync::atomic::AtomicU64);
            (c.load(Ordering::Acquire), p.load(Ordering::Acquire))
        };
        (prod.saturating_sub(cons) as f64 / self.size as f64).clamp(0.0, 1.0)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: our own mapping, of this length.
        unsafe { libc::munmap(self.ptr, 2 * self.page) };
    }
}
