//! Paging for memory-mapped captures: a helper thread maps the windows ahead of the
//! reader (MADV_POPULATE_READ, one call per window instead of a page fault per 64 KiB)
//! and releases what lies behind it (MADV_DONTNEED), so the kernel's page-table work
//! runs beside the parsing instead of inside it, and the resident size stays at a few
//! windows however large the file.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use memmap2::Mmap;

/// Size of the windows the file is handled in.
pub(crate) const WINDOW: usize = 8 * 1024 * 1024;
/// Windows kept mapped ahead of the reader.
const AHEAD: usize = 2;

pub(crate) struct Pager {
    tx: Option<Sender<usize>>,
    thread: Option<JoinHandle<()>>,
    /// Tell the thread when the reader gets here.
    next: usize,
}

impl Pager {
    pub(crate) fn new(map: Arc<Mmap>) -> Pager {
        let (tx, rx) = channel::<usize>();
        let thread = std::thread::Builder::new()
            .name("tcpfr-pager".into())
            .spawn(move || {
                let page = page_size();
                let (mut populated, mut released) = (0usize, 0usize);
                while let Ok(mut pos) = rx.recv() {
                    // Only the latest position matters.
                    while let Ok(p) = rx.try_recv() {
                        pos = p;
                    }
                    let behind = pos / page * page;
                    if behind > released {
                        // SAFETY: the reader never goes back below `pos`, and no frame
                        // it handed out is alive when it reports a position (frames
                        // borrow the reader mutably). On a shared read-only file
                        // mapping DONTNEED only drops page-table entries: a read there
                        // would fault the same file contents back in.
                        let _ = unsafe {
                            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, released, behind - released)
                        };
                        released = behind;
                    }
                    let from = behind.max(populated);
                    let to = (pos + AHEAD * WINDOW).min(map.len());
                    if to > from {
                        // Linux ≥ 5.14; elsewhere the reader faults pages in itself.
                        let _ = map.advise_range(memmap2::Advice::PopulateRead, from, to - from);
                        populated = to;
                    }
                }
            })
            .ok();
        let tx = thread.as_ref().map(|_| tx);
        let mut p = Pager { tx, thread, next: 0 };
        p.at(0);
        p
    }

    /// The reader is about to parse at `pos` (called per record; cheap between windows).
    #[inline]
    pub(crate) fn at(&mut self, pos: usize) {
        if pos >= self.next {
            self.next = pos + WINDOW;
            if let Some(tx) = &self.tx {
                let _ = tx.send(pos);
            }
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks the CPU to start loading `b[at..]` (the next record's header): the reader
/// walks the file one record at a time, a pattern the hardware prefetcher does not
/// follow across pages, and each record header would otherwise be a cache miss.
#[inline]
pub(crate) fn prefetch(b: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = b.get(at..) {
        // SAFETY: prefetching is a hint; the address is inside the slice.
        #[allow(unused_unsafe)]
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.as_ptr() as *const i8);
            if p.len() > 64 {
                _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().add(64) as *const i8);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, at);
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}
