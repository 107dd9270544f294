//! Raw tracepoint `inet_sock_set_state(sk, oldstate, newstate)` (TCP only) →
//! `state_changes`, and the raw material of `flows` (lifetimes, handshake outcomes)
//! and of socket ownership.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tcpfr_schema::raw::{kind, scratch_slot, stream, tcp_state, RawTuple};
use tcpfr_schema::state_changes::RawStateChange;

use crate::{
    config, kernel,
    maps::reserve,
    sock,
};

const IPPROTO_TCP: u16 = 6;

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    // Flows are built from state changes, so they need this program too.
    if cfg.streams & (stream::STATE_CHANGES | stream::FLOWS | stream::RTT_AT_CLOSE) == 0 {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    if kernel::sk_protocol(sk) != IPPROTO_TCP {
        return 0;
    }
    let old_state = ctx.arg::<u64>(1) as u8;
    let new_state = ctx.arg::<u64>(2) as u8;
    // With the socket walk, a connection's last sample (still in its old state here):
    // one shorter than the interval gets one too.
    if old_state == tcp_state::ESTABLISHED && cfg.streams & stream::RTT_AT_CLOSE != 0 {
        // SAFETY: a helper without arguments.
        crate::rtt_samples::write(sk, unsafe { bpf_ktime_get_ns() }, kernel::netns(sk), scratch_slot::STATE);
    }
    if cfg.streams & (stream::STATE_CHANGES | stream::FLOWS) == 0 {
        return 0;
    }
    let netns = kernel::netns(sk);
    let mut tuple = RawTuple::default();
    sock::tuple(sk, scratch_slot::STATE, &mut tuple);
    // Before the state change: the recorder writes the flow when it sees the CLOSE.
    if new_state == tcp_state::CLOSE && old_state != tcp_state::LISTEN && cfg.streams & stream::FLOWS != 0 {
        crate::flows::send_limits(sk, netns, &tuple);
    }
    let Some(mut entry) = reserve::<RawStateChange>(kind::STATE_CHANGE) else { return 0 };
    // SAFETY: a zeroed, reserved RawStateChange.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::STATE_CHANGE;
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = netns;
    ev.tuple = tuple;
    let pid_tgid = bpf_get_current_pid_tgid();
    ev.task.tgid = (pid_tgid >> 32) as u32;
    ev.task.tid = pid_tgid as u32;
    ev.task.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    ev.task.comm = bpf_get_current_comm().unwrap_or_default();
    ev.old_state = old_state;
    ev.new_state = new_state;
    if new_state == tcp_state::CLOSE {
        ev.sk_err = kernel::sk_err(sk);
    }
    crate::maps::submit(entry);
    0
}
