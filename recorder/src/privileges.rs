//! The capabilities the recorder needs, checked at start and dropped after start-up.
//!
//! It does not need root: a dedicated user with these capabilities records everything
//! root would (the package's systemd unit, `packaging/tcpfr-recorder.service`, runs it
//! so). [`CAPABILITIES`] is the one list of them; the unit, the Kubernetes DaemonSet and
//! the OCI recipe in `packaging/` grant exactly these, and a test compares them.
//!
//! | capability | what for | after start-up |
//! |---|---|---|
//! | `CAP_BPF` | creating the eBPF maps and loading the programs | dropped |
//! | `CAP_PERFMON` | tracing programs (tracepoints) and their reads of kernel memory | dropped |
//! | `CAP_NET_ADMIN` | attaching the sock_ops program to the cgroup v2 root (the `flows` table's counters) | dropped |
//! | `CAP_SYS_ADMIN` | entering other network namespaces (`setns`) to read their TCP counters (`--netns auto\|all`); mounting tracefs if nothing has | kept by the host-counters thread only |
//! | `CAP_SYS_PTRACE` | reading `/proc/PID/fd/*` and `/proc/PID/ns/net` of other users' processes: owners of sockets older than the recorder, namespaces to read counters in | kept by the event loop and the host-counters thread |
//! | `CAP_DAC_READ_SEARCH` | reading tracefs (root's, mode 0700: tracepoint layouts and ids) and listing other users' `/proc/PID/fd` | kept by the event loop |
//!
//! The kernel accepts `CAP_SYS_ADMIN` in place of each of the first three, so the
//! recorder keeps `CAP_SYS_ADMIN` out of its effective set except where it is the one
//! meant ([`with_sys_admin`] around the tracefs mount, the host-counters thread's
//! `setns`): loading then takes `CAP_BPF`, `CAP_PERFMON` and `CAP_NET_ADMIN` as on a host
//! that does not grant `CAP_SYS_ADMIN` at all, and each capability in the list is needed.
//!
//! `--netns host` needs no `CAP_SYS_ADMIN` (when tracefs is mounted), and `--streams`
//! without `flows` no `CAP_NET_ADMIN`. Nothing else is needed: files are written only
//! into the output directory, which the recorder's user owns, and `--group` must be a
//! group of that user (no `CAP_CHOWN`).
//!
//! Capabilities belong to threads, not to the process: each thread drops what it does
//! not need itself. [`check`] runs first, on the main thread, before any other thread
//! exists; threads started during start-up (writer, uploader, metrics) call
//! [`confine_thread`] with [`Role::Worker`] (none), the host-counters thread with
//! [`Role::Counters`]; [`drop_after_startup`] leaves the main thread (the event loop)
//! what its later `/proc` scans need. Only on kernels that still ask for `CAP_BPF` to
//! read a map through a descriptor already open (before 6.5 with
//! `kernel.unprivileged_bpf_disabled` set) does the event loop keep `CAP_BPF`.

use anyhow::{bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

use crate::host_counters::NetnsMode;
use crate::Options;
use tcpfr_schema::TableId;

/// A thread of the recorder, for what it keeps after start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The main thread: ring buffer, enrichment, `/proc` rescans for socket owners.
    EventLoop,
    /// The host-counters thread: enters network namespaces.
    Counters,
    /// Every other thread (writer, uploader, metrics): no capabilities.
    Worker,
}

/// One capability the recorder needs.
#[derive(Debug)]
pub struct Need {
    pub cap: Capability,
    /// What it is for, in the words an error message uses.
    pub why: &'static str,
    /// The threads that keep it after start-up.
    pub kept_by: &'static [Role],
}

/// Every capability the recorder may need, in the order messages list them.
pub const CAPABILITIES: &[Need] = &[
    Need { cap: Capability::CAP_BPF, why: "create the eBPF maps and load the programs", kept_by: &[] },
    Need {
        cap: Capability::CAP_PERFMON,
        why: "load tracing programs (tracepoints) that read kernel memory",
        kept_by: &[],
    },
    Need {
        cap: Capability::CAP_NET_ADMIN,
        why: "attach the sock_ops program to the cgroup v2 root (per-connection counters of the flows table; not needed with --streams without flows)",
        kept_by: &[],
    },
    Need {
        cap: Capability::CAP_SYS_ADMIN,
        why: "enter other network namespaces to read their TCP counters (not needed with --netns host), and mount tracefs if nothing has",
        kept_by: &[Role::Counters],
    },
    Need {
        cap: Capability::CAP_SYS_PTRACE,
        why: "read /proc/PID/fd and /proc/PID/ns/net of other users' processes (owners of sockets older than the recorder, namespaces to read counters in)",
        kept_by: &[Role::EventLoop, Role::Counters],
    },
    Need {
        cap: Capability::CAP_DAC_READ_SEARCH,
        why: "read tracefs (tracepoint layouts; root's, mode 0700) and list other users' /proc/PID/fd",
        kept_by: &[Role::EventLoop],
    },
];

/// The capabilities these options need.
pub fn required(opts: &Options) -> Vec<&'static Need> {
    let flows = opts.streams.is_empty() || opts.streams.contains(&TableId::Flows);
    CAPABILITIES
        .iter()
        .filter(|n| match n.cap {
            Capability::CAP_NET_ADMIN => flows,
            Capability::CAP_SYS_ADMIN => opts.netns != NetnsMode::Host || !tracefs_mounted(),
            _ => true,
        })
        .collect()
}

/// Whether tracefs is mounted anywhere (from /proc/self/mountinfo, which needs no
/// privilege, unlike looking into /sys/kernel/tracing).
fn tracefs_mounted() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| l.split_once(" - ").is_some_and(|(_, r)| r.split_whitespace().next() == Some("tracefs")))
}

/// The capabilities, as `capsh --caps`/systemd spell them: lower case, comma-separated.
pub fn names(needs: &[&Need]) -> String {
    needs.iter().map(|n| n.cap.to_string().to_lowercase()).collect::<Vec<_>>().join(",")
}

/// At start, on the main thread before any other thread exists: refuses to run without
/// every capability `opts` needs (naming each missing one and what it is for), raises
/// them into the effective set (all but `CAP_SYS_ADMIN`, see the module doc), and
/// empties the ambient and inheritable sets (nothing is passed on to a program run
/// later).
pub fn check(opts: &Options) -> Result<()> {
    let needs = required(opts);
    let permitted = caps::read(None, CapSet::Permitted).context("reading our capabilities")?;
    let missing: Vec<&Need> = needs.iter().copied().filter(|n| !permitted.contains(&n.cap)).collect();
    if !missing.is_empty() {
        let list: String = missing.iter().map(|n| format!("\n  {}: to {}", n.cap, n.why)).collect();
        bail!(
            "missing capabilities:{list}\nRun it as root, or as its own user with exactly these capabilities: \
             the package's systemd unit (tcpfr-recorder.service) grants them; by hand: \
             sudo capsh --user=tcpfr --caps='{all}+eip' --addamb='{all}' -- -c 'exec tcpfr-recorder --out /var/lib/tcpfr'",
            all = names(&needs)
        );
    }
    let mut effective = caps::read(None, CapSet::Effective).context("reading our capabilities")?;
    effective.extend(needs.iter().map(|n| n.cap));
    effective.remove(&Capability::CAP_SYS_ADMIN);
    caps::set(None, CapSet::Effective, &effective).context("raising our capabilities")?;
    caps::clear(None, CapSet::Ambient).context("clearing the ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable capabilities")?;
    Ok(())
}

/// Runs `f` with `CAP_SYS_ADMIN` effective (if permitted) on the calling thread.
pub fn with_sys_admin<T>(f: impl FnOnce() -> T) -> T {
    let had = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(true);
    let raised = !had && caps::raise(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).is_ok();
    let out = f();
    if raised {
        let _ = caps::drop(None, CapSet::Effective, Capability::CAP_SYS_ADMIN);
    }
    out
}

/// What `role` keeps after start-up.
pub fn kept_by(role: Role) -> CapsHashSet {
    CAPABILITIES.iter().filter(|n| n.kept_by.contains(&role)).map(|n| n.cap).collect()
}

/// Leaves the calling thread only what `role` needs later (and what it holds of that).
/// A thread calls this first thing; a failure (which lowering capabilities should not
/// have) is logged, not fatal: the recorder still works, with more than it needs.
pub fn confine_thread(role: Role) {
    if let Err(e) = keep_only(&kept_by(role)) {
        tracing::warn!("cannot drop the capabilities of thread {:?}: {e:#}", std::thread::current().name());
    }
}

/// At the end of start-up, on the main thread (the event loop): drops everything it
/// does not need later. `can_read_maps` reads a map through a descriptor we hold; if
/// that fails without `CAP_BPF` (older kernels), `CAP_BPF` is kept.
pub fn drop_after_startup(can_read_maps: impl Fn() -> bool) -> Result<()> {
    let mut keep = kept_by(Role::EventLoop);
    let mut effective = caps::read(None, CapSet::Effective)?;
    if effective.remove(&Capability::CAP_BPF) {
        caps::set(None, CapSet::Effective, &effective)?;
        if !can_read_maps() {
            tracing::info!("this kernel needs CAP_BPF to read the programs' maps: kept");
            keep.insert(Capability::CAP_BPF);
        }
    }
    keep_only(&keep).context("dropping capabilities after start-up")
}

/// Sets the calling thread's effective and permitted sets to what it holds of `keep`.
fn keep_only(keep: &CapsHashSet) -> Result<()> {
    let permitted = caps::read(None, CapSet::Permitted)?;
    let left: CapsHashSet = permitted.intersection(keep).copied().collect();
    // Effective first: it must stay within permitted.
    caps::set(None, CapSet::Effective, &left)?;
    caps::set(None, CapSet::Permitted, &left)?;
    caps::clear(None, CapSet::Inheritable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn opts(args: &[&str]) -> Options {
        Options::parse_from([&["tcpfr-recorder", "--out", "/nonexistent"][..], args].concat())
    }

    #[test]
    fn options_decide_what_is_needed() {
        let all: Vec<Capability> = CAPABILITIES.iter().map(|n| n.cap).collect();
        let caps = |o: &Options| required(o).iter().map(|n| n.cap).collect::<Vec<_>>();
        if tracefs_mounted() {
            assert_eq!(caps(&opts(&[])), all);
            let host = caps(&opts(&["--netns", "host"]));
            assert!(!host.contains(&Capability::CAP_SYS_ADMIN), "{host:?}");
        }
        let no_flows = caps(&opts(&["--streams", "retransmits,resets"]));
        assert!(!no_flows.contains(&Capability::CAP_NET_ADMIN), "{no_flows:?}");
        assert!(caps(&opts(&["--streams", "flows"])).contains(&Capability::CAP_NET_ADMIN));
        assert_eq!(names(&required(&opts(&["--netns", "all"]))[..2]), "cap_bpf,cap_perfmon");
    }

    #[test]
    fn every_capability_is_either_dropped_or_kept_by_a_thread_that_needs_it() {
        assert!(kept_by(Role::Worker).is_empty());
        assert_eq!(
            kept_by(Role::EventLoop),
            [Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH].into_iter().collect::<CapsHashSet>()
        );
        assert_eq!(
            kept_by(Role::Counters),
            [Capability::CAP_SYS_ADMIN, Capability::CAP_SYS_PTRACE].into_iter().collect::<CapsHashSet>()
        );
    }
}
