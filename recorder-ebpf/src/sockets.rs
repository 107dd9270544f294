//! BPF iterator `iter/task_file` → owners of the `sockets` that exist before the
//! recorder: the recorder runs this walk once at start, and the program visits every
//! open file of every process (threads sharing a file table are visited once). For
//! each TCP socket it writes which process holds it, keyed by the socket's kernel
//! address like every event, so the recorder needs no /proc scan to match addresses.

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tcpfr_schema::raw::{kind, AF_INET, AF_INET6};
use tcpfr_schema::sockets::RawSocketOwner;

use crate::{config, kernel, maps::reserve};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const IPPROTO_TCP: u16 = 6;

/// Called once per (task, open file), and once more with neither at the end. The
/// context is `struct bpf_iter__task_file { struct bpf_iter_meta *meta; struct
/// task_struct *task; u32 fd; struct file *file; }`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn tcpfr_socket_owners(ctx: *mut c_void) -> i32 {
    // Plain numbers: all reads below are probe reads at offsets known only at load time.
    let (task, file) = (kernel::ctx_word(ctx, 1), kernel::ctx_word(ctx, 3));
    if task == 0 || file == 0 {
        return 0;
    }
    let sk = tcp_socket_of(file);
    if sk == 0 {
        return 0;
    }
    let b = &config().btf;
    let Some(mut entry) = reserve::<RawSocketOwner>(kind::SOCKET_OWNER) else { return 0 };
    // SAFETY: a zeroed, reserved RawSocketOwner.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr.kind = kind::SOCKET_OWNER;
    // SAFETY: a helper without arguments.
    ev.hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.hdr.sk = sk;
    ev.hdr.netns = kernel::netns(sk);
    ev.tgid = kernel::read::<i32>(task, b.task_tgid) as u32;
    ev.lport = kernel::read(sk, b.sk_num);
    ev.state = kernel::read(sk, b.sk_state);
    crate::maps::submit(entry);
    0
}

/// The `struct sock` of `file` if it is an IPv4/IPv6 TCP socket, else 0.
#[inline(always)]
fn tcp_socket_of(file: u64) -> u64 {
    let b = &config().btf;
    let inode: u64 = kernel::read(file, b.file_f_inode);
    let mode: u16 = kernel::read(inode, b.inode_i_mode);
    if mode & S_IFMT != S_IFSOCK {
        return 0;
    }
    let socket: u64 = kernel::read(file, b.file_private_data);
    let sk: u64 = kernel::read(socket, b.socket_sk);
    if sk == 0 || kernel::sk_protocol(sk) != IPPROTO_TCP {
        return 0;
    }
    let family: u16 = kernel::read(sk, b.sk_family);
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    sk
}
