//! The eBPF programs of `recorder-ebpf`, listed once: where each attaches and which
//! table it feeds. The loader attaches from this list, tracefs checks the hooks exist,
//! and `recorder_stats` charges a program's missed runs to its table. A new program is
//! one line here (and its file in `recorder-ebpf/src/`).

use tcpfr_schema::TableId;

/// How a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// A raw tracepoint of the same name (in tracefs `group`): the kernel guards each
    /// such program on its own, so one running cannot make the kernel skip another.
    RawTracepoint,
    /// A BTF tracepoint (`tp_btf`) of the same name, which can reach a socket's own
    /// storage: only with `--rtt-per-ack`.
    BtfTracepoint,
    /// sock_ops on the cgroup v2 root (per-connection counters).
    SockOps,
    /// The socket walk, a BPF iterator over TCP sockets.
    TcpIter,
    /// The owner walk at start, a BPF iterator over every task's open files.
    TaskFileIter,
}

/// One program of the object.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The program's name in the object (the tracepoint's name for tracepoints).
    pub name: &'static str,
    /// Tracefs group of a tracepoint ("" otherwise).
    pub group: &'static str,
    pub hook: Hook,
    /// The tables whose events are lost when the kernel skips a run of it. None: a
    /// program whose skipped runs lose no row (the owner walk), or only a sample among many
    /// (tcp_probe's misses are said in a note instead).
    pub feeds: &'static [TableId],
}

const fn raw(group: &'static str, name: &'static str, feeds: &'static [TableId]) -> Program {
    Program { name, group, hook: Hook::RawTracepoint, feeds }
}

pub const PROGRAMS: &[Program] = &[
    Program { name: "tcpfr_sock_ops", group: "", hook: Hook::SockOps, feeds: &[TableId::Flows] },
    raw("tcp", "tcp_retransmit_skb", &[TableId::Retransmits]),
    raw("tcp", "tcp_retransmit_synack", &[TableId::Retransmits]),
    // Flows are built from state changes, and the walk's last sample of a connection
    // is taken as it leaves ESTABLISHED.
    raw("sock", "inet_sock_set_state", &[TableId::StateChanges, TableId::Flows, TableId::RttSamples]),
    raw("tcp", "tcp_send_reset", &[TableId::Resets]),
    raw("tcp", "tcp_receive_reset", &[TableId::Resets]),
    raw("skb", "kfree_skb", &[TableId::Drops]),
    Program { name: "tcpfr_rtt_walk", group: "", hook: Hook::TcpIter, feeds: &[TableId::RttSamples, TableId::Listeners] },
    Program { name: "tcp_probe", group: "tcp", hook: Hook::BtfTracepoint, feeds: &[] },
    Program { name: "tcpfr_socket_owners", group: "", hook: Hook::TaskFileIter, feeds: &[] },
];

/// The programs attached with `hook`.
pub fn with_hook(hook: Hook) -> impl Iterator<Item = &'static Program> {
    PROGRAMS.iter().filter(move |p| p.hook == hook)
}

/// The tables program `name` feeds.
pub fn feeds(name: &str) -> &'static [TableId] {
    PROGRAMS.iter().find(|p| p.name == name).map_or(&[], |p| p.feeds)
}

/// Every tracepoint a program attaches to, as (group, name): tracefs must have them.
pub fn tracepoints() -> impl Iterator<Item = (&'static str, &'static str)> {
    PROGRAMS.iter().filter(|p| matches!(p.hook, Hook::RawTracepoint | Hook::BtfTracepoint)).map(|p| (p.group, p.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table a kernel program feeds has a program listed for it, and names are
    /// unique.
    #[test]
    fn every_fed_table_has_a_program() {
        for t in TableId::ALL.into_iter().filter(|t| t.stream_bit() != 0) {
            assert!(PROGRAMS.iter().any(|p| p.feeds.contains(&t)), "no program feeds {}", t.name());
        }
        for (i, p) in PROGRAMS.iter().enumerate() {
            assert!(PROGRAMS[i + 1..].iter().all(|q| q.name != p.name), "{} listed twice", p.name);
        }
    }
}
