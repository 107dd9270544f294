//! Loads the eBPF object into the kernel with the running kernel's offsets and attaches
//! every program: tracepoints, and sock_ops on the cgroup v2 root.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, CgroupAttachMode, Iter, RawTracePoint, SockOps};
use aya::{Ebpf, EbpfLoader};
use tcpfr_schema::raw::{counter, KernelConfig, RAW_ABI_VERSION};

use crate::programs::{self, Hook};

/// The object built by build.rs from `recorder-ebpf/`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcpfr-recorder-ebpf"));

/// `KernelConfig` as a value aya may copy into the object's `.rodata`.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct PodConfig(KernelConfig);
// SAFETY: KernelConfig is #[repr(C)], Copy, and has explicit padding fields only.
unsafe impl aya::Pod for PodConfig {}

/// The loaded programs and the maps userspace reads.
pub struct Kernel {
    /// Keeps programs and links alive; dropping it detaches everything.
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub counters: PerCpuArray<MapData, u64>,
    /// The `kfree_skb` program's drop counts (`DROPS`).
    pub drops: Option<MapData>,
    /// The socket walk that samples RTT ([`RttMode::Walk`] only).
    pub walk: Option<Walk>,
    /// The owner walk over every task's open files, run once at start; None where the
    /// kernel refused it (owners then come from /proc).
    pub owners: Option<Walk>,
}

/// Where `rtt_samples` come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RttMode {
    /// Not recorded: neither program is loaded.
    Off,
    /// The `iter/tcp` walk, run by the recorder every `--rtt-interval`: nothing runs
    /// on the packet path.
    Walk,
    /// `tcp_probe` (a BTF tracepoint) on every received segment (`--rtt-per-ack`).
    PerAck,
}

/// An attached `iter/*` program (the socket walk, the owner walk). Each [`Walk::run`]
/// makes a new iterator instance from the link and reads it to the end, which runs the
/// program once per object (TCP socket, open file); the program writes its records
/// into the ring buffer, not into the read.
pub struct Walk {
    link: std::os::fd::OwnedFd,
}

impl Walk {
    /// Visits every object once.
    pub fn run(&self) -> std::io::Result<()> {
        use std::io::Read;
        use std::os::fd::{AsRawFd, FromRawFd};
        let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
        attr.iter_create.link_fd = self.link.as_raw_fd() as u32;
        // SAFETY: BPF_ITER_CREATE reads `attr` and returns a new file descriptor.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                aya_obj::generated::bpf_cmd::BPF_ITER_CREATE as libc::c_long,
                &mut attr as *mut _,
                std::mem::size_of_val(&attr),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd as i32) };
        // The program prints nothing, so one read normally runs the whole walk.
        let mut buf = [0u8; 512];
        while file.read(&mut buf)? > 0 {}
        Ok(())
    }
}

/// Creates the iterator link of a loaded `iter/*` program. aya's own link can make
/// only one iterator instance (`IterLink::into_file` consumes it); the walk needs one
/// per interval.
fn iter_link(prog: &Iter, what: &str) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsFd, AsRawFd, FromRawFd};
    let prog_fd = prog.fd().context("the iterator program is not loaded")?;
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    attr.link_create.__bindgen_anon_1.prog_fd = prog_fd.as_fd().as_raw_fd() as u32;
    attr.link_create.attach_type = aya_obj::generated::bpf_attach_type::BPF_TRACE_ITER as u32;
    // SAFETY: BPF_LINK_CREATE reads `attr` and returns a new file descriptor.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_LINK_CREATE as libc::c_long,
            &mut attr as *mut _,
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("creating the iterator link of {what}"));
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Where cgroup v2 is mounted (from /proc/self/mountinfo).
pub fn cgroup2_root() -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    for line in info.lines() {
        // "... - cgroup2 cgroup2 rw" : mount point is field 5, fs type after " - ".
        let Some((left, right)) = line.split_once(" - ") else { continue };
        if right.split_whitespace().next() == Some("cgroup2") {
            if let Some(mp) = left.split_whitespace().nth(4) {
                return Ok(PathBuf::from(mp));
            }
        }
    }
    bail!("no cgroup v2 filesystem is mounted (needed for the sock_ops program that counts per-connection segments); mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`")
}

/// The one program attached with `hook`.
fn only(hook: Hook) -> &'static str {
    programs::with_hook(hook).next().expect("the program list has one").name
}

/// `owners`: try the owner walk (the kernel's BTF has what it reads).
/// `socket_walk`: load the socket walk (`iter/tcp`: RTT samples in [`RttMode::Walk`],
/// listeners).
pub fn load(config: KernelConfig, ring_bytes: u32, with_sock_ops: bool, rtt: RttMode, socket_walk: bool, owners: bool) -> Result<Kernel> {
    if OBJECT.is_empty() {
        bail!("this tcpfr-recorder was built with AYA_BUILD_SKIP=1 and has no eBPF programs; rebuild it after running scripts/bootstrap.sh");
    }
    if config.abi_version != RAW_ABI_VERSION {
        bail!("internal error: config ABI {} != {RAW_ABI_VERSION}", config.abi_version);
    }
    let pod = PodConfig(config);
    let mut ebpf = EbpfLoader::new()
        .override_global("CONFIG", &pod, true)
        .map_max_entries("EVENTS", ring_bytes)
        .load(OBJECT)
        .context("loading the eBPF object into the kernel")?;

    // sock_ops first: a connection opened between the two would otherwise be seen
    // by the tracepoints but lack its counters.
    if with_sock_ops {
        let root = cgroup2_root()?;
        let cgroup = std::fs::File::open(&root).with_context(|| format!("opening cgroup {}", root.display()))?;
        let name = only(Hook::SockOps);
        let p: &mut SockOps = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        p.load().context("the kernel rejected the sock_ops program")?;
        p.attach(&cgroup, CgroupAttachMode::default())
            .with_context(|| format!("attaching sock_ops to cgroup {}", root.display()))?;
    }
    // A program that feeds only tables left out (--streams) is not attached: it would
    // run for nothing (kfree_skb runs on every dropped packet of the host).
    let wanted = |p: &&programs::Program| p.feeds.is_empty() || p.feeds.iter().any(|t| config.streams & t.stream_bit() != 0);
    for name in programs::with_hook(Hook::RawTracepoint).filter(wanted).map(|p| p.name) {
        let p: &mut RawTracePoint = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        p.load().with_context(|| format!("the kernel rejected program {name}"))?;
        p.attach(name).with_context(|| format!("attaching to raw tracepoint {name}"))?;
    }
    let per_ack = rtt == RttMode::PerAck;
    let btf = if socket_walk || owners || per_ack {
        Some(aya::Btf::from_sys_fs().context("reading the kernel's BTF for the socket and owner walks and tp_btf programs")?)
    } else {
        None
    };
    let mut walk = None;
    if let (true, Some(btf)) = (socket_walk, &btf) {
        let name = only(Hook::TcpIter);
        let p: &mut Iter = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        p.load("tcp", btf).context(
            "the kernel rejected the socket walk (iter/tcp, kernel 5.9 or later); --rtt-per-ack samples RTT without it",
        )?;
        walk = Some(Walk { link: iter_link(p, "the socket walk (iter/tcp)")? });
    }
    let owners = match btf.as_ref().filter(|_| owners) {
        Some(btf) => owner_walk(&mut ebpf, btf)
            .inspect_err(|e| tracing::warn!("owners of existing sockets will come from /proc: {}", crate::error_text(e)))
            .ok(),
        None => None,
    };
    if let (true, Some(btf)) = (per_ack, &btf) {
        for name in programs::with_hook(Hook::BtfTracepoint).map(|p| p.name) {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the object"))?
                .try_into()?;
            p.load(name, btf).with_context(|| format!("the kernel rejected program {name} (tp_btf)"))?;
            p.attach().with_context(|| format!("attaching to BTF tracepoint {name}"))?;
        }
    }
    let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
    let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("map COUNTERS missing")?)?;
    let drops = match ebpf.take_map("DROPS") {
        Some(aya::maps::Map::PerCpuHashMap(m)) => Some(m),
        _ => None,
    };
    Ok(Kernel {
        ebpf,
        ring,
        counters,
        drops,
        walk,
        owners,
    })
}

/// Loads the owner walk (`iter/task_file`).
fn owner_walk(ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<Walk> {
    let name = only(Hook::TaskFileIter);
    let p: &mut Iter = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?;
    p.load("task_file", btf).context("the kernel rejected the owner walk (iter/task_file)")?;
    Ok(Walk { link: iter_link(p, "the owner walk (iter/task_file)")? })
}

/// How often the kernel skipped each program because it was already running on that
/// CPU (`bpf_prog_info.recursion_misses`), by program name. Those are events lost.
pub fn recursion_misses(ebpf: &Ebpf) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (name, prog) in ebpf.programs() {
        let Ok(fd) = prog.fd() else { continue };
        let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
        let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
        attr.info.bpf_fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(fd)) as u32;
        attr.info.info_len = std::mem::size_of_val(&info) as u32;
        attr.info.info = (&mut info as *mut aya_obj::generated::bpf_prog_info) as u64;
        // SAFETY: BPF_OBJ_GET_INFO_BY_FD fills `info` (at most info_len bytes).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                aya_obj::generated::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
                &mut attr as *mut _,
                std::mem::size_of_val(&attr),
            )
        };
        if rc == 0 {
            out.push((name.to_string(), info.recursion_misses));
        }
    }
    out
}

/// Sum over CPUs of counter `index` (see `tcpfr_schema::raw::counter`).
pub fn counter(counters: &PerCpuArray<MapData, u64>, index: u32) -> u64 {
    counters.get(&index, 0).map(|values| values.iter().sum()).unwrap_or(0)
}

/// Events lost in the kernel because the ring was full, per event kind.
pub fn lost(counters: &PerCpuArray<MapData, u64>) -> [u64; tcpfr_schema::raw::kind::COUNT] {
    let mut out = [0; tcpfr_schema::raw::kind::COUNT];
    for (k, slot) in out.iter_mut().enumerate() {
        *slot = counter(counters, counter::LOST_BASE + k as u32);
    }
    out
}

/// The kernel has the type information the recorder reads its layouts from.
pub fn check_kernel() -> Result<()> {
    if !Path::new(crate::btf::VMLINUX).exists() {
        bail!(
            "{} does not exist: this kernel was built without BTF (CONFIG_DEBUG_INFO_BTF), which tcpfr needs",
            crate::btf::VMLINUX
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The object's programs are exactly those listed in `programs::PROGRAMS`: a program
    /// added to `recorder-ebpf` without a line there would never be attached.
    #[test]
    fn the_object_holds_exactly_the_listed_programs() {
        if super::OBJECT.is_empty() {
            eprintln!("built with AYA_BUILD_SKIP=1: no object to compare");
            return;
        }
        let object = aya_obj::Object::parse(super::OBJECT).expect("the built object parses");
        let in_object: BTreeSet<&str> = object.programs.keys().map(String::as_str).collect();
        let listed: BTreeSet<&str> = crate::programs::PROGRAMS.iter().map(|p| p.name).collect();
        assert_eq!(in_object, listed);
    }
}
