//! tcpfr's eBPF programs: one small program per hook, each in the module named after
//! the table it feeds (mirrored in `recorder/src/` and `schema/src/`).
//!
//! All programs put `#[repr(C)]` events from `tcpfr_schema` into one ring buffer and
//! never block: when the ring is full the event is counted as lost (per kind) and
//! dropped. Field offsets of tracepoint records and kernel structs are not compiled in;
//! the recorder reads them from tracefs and BTF at start-up and sets [`CONFIG`].

#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod drops;
#[cfg(target_arch = "bpf")]
mod flows;
#[cfg(target_arch = "bpf")]
mod kernel;
#[cfg(target_arch = "bpf")]
mod listeners;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod record;
#[cfg(target_arch = "bpf")]
mod resets;
#[cfg(target_arch = "bpf")]
mod retransmits;
#[cfg(target_arch = "bpf")]
mod rtt_samples;
#[cfg(target_arch = "bpf")]
mod rtt_walk;
#[cfg(target_arch = "bpf")]
mod sock;
#[cfg(target_arch = "bpf")]
mod sockets;
#[cfg(target_arch = "bpf")]
mod state_changes;

#[cfg(target_arch = "bpf")]
pub use config::*;

#[cfg(target_arch = "bpf")]
mod config {
    use tcpfr_schema::raw::KernelConfig;

    /// Set by the recorder (`EbpfLoader::override_global`) before loading.
    #[unsafe(no_mangle)]
    pub static CONFIG: KernelConfig = KernelConfig::EMPTY;

    /// Reads the live configuration (a volatile read, so the compiler cannot fold the
    /// placeholder values in).
    #[inline(always)]
    pub fn config() -> &'static KernelConfig {
        // SAFETY: CONFIG is a plain-old-data global in .rodata.
        unsafe { &*core::ptr::read_volatile(&&raw const CONFIG) }
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Built for the host (e.g. by `cargo build --workspace`), this crate is an empty
/// program; the real one only exists for `bpfel-unknown-none`.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
