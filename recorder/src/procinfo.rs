//! Who owns what, from /proc and the cgroup v2 tree: cgroup paths and container ids of
//! cgroup ids, and the owners of sockets that existed before the recorder started
//! (the kernel programs only see owners of sockets opened while they run).

use ahash::AHashMap as HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcpfr_schema::Str;

/// The process a socket belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: i32,
    pub comm: Str,
    pub cgroup_id: Option<i64>,
    pub cgroup: Option<Str>,
    pub container_id: Option<Str>,
}

/// Container id in a cgroup path, for the runtimes that put one there: docker
/// (`docker-<id>.scope`, `/docker/<id>`), containerd/CRI (`cri-containerd-<id>.scope`),
/// CRI-O (`crio-<id>.scope`), podman (`libpod-<id>.scope`).
pub fn container_id(path: &str) -> Option<String> {
    for part in path.rsplit('/') {
        let part = part.strip_suffix(".scope").unwrap_or(part);
        let id = part.rsplit(['-', ':']).next().unwrap_or(part);
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(id.to_string());
        }
    }
    None
}

/// cgroup id (the inode of its directory in cgroup v2) → path and container id.
pub struct Cgroups {
    root: Option<PathBuf>,
    by_id: HashMap<u64, (Str, Option<Str>)>,
    last_scan: Option<Instant>,
}

impl Cgroups {
    pub fn new(root: Option<PathBuf>) -> Self {
        Cgroups {
            root,
            by_id: HashMap::new(),
            last_scan: None,
        }
    }

    /// Path (`/system.slice/nginx.service`) and container id of a cgroup id; walks the
    /// tree again on a miss, at most once a second.
    pub fn lookup(&mut self, id: u64) -> Option<(Str, Option<Str>)> {
        if let Some(hit) = self.by_id.get(&id) {
            return Some(hit.clone());
        }
        let due = self.last_scan.is_none_or(|t| t.elapsed() > Duration::from_secs(1));
        if due {
            self.rescan();
            return self.by_id.get(&id).cloned();
        }
        None
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        let Some(root) = self.root.clone() else { return };
        self.by_id.clear();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            let rel = dir.strip_prefix(&root).unwrap_or(Path::new(""));
            let path = format!("/{}", rel.display());
            let container = container_id(&path).map(Str::from);
            self.by_id.insert(meta.ino(), (Str::from(path), container));
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
}

/// Key of a connection in a namespace: (netns, laddr, lport, raddr, rport).
pub type ConnKey = (u32, IpAddr, u16, IpAddr, u16);

/// Owners of the sockets that exist right now, like `ss -p`: socket inodes from
/// `/proc/*/fd`, connections from `/proc/<pid>/net/tcp{,6}` of one process per netns.
#[derive(Default)]
pub struct SocketOwners {
    pub connections: HashMap<ConnKey, Arc<Owner>>,
    /// Listening sockets: (netns, local port) → owner.
    pub listeners: HashMap<(u32, u16), Arc<Owner>>,
}

pub fn scan_socket_owners(cgroups: &mut Cgroups) -> SocketOwners {
    let mut owners = SocketOwners::default();
    let mut inode_pid: HashMap<u64, i32> = HashMap::new();
    let mut netns_pid: HashMap<u32, i32> = HashMap::new();
    let Ok(proc) = std::fs::read_dir("/proc") else { return owners };
    for e in proc.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let base = e.path();
        if let Some(ns) = ns_inode(&base.join("ns/net")) {
            netns_pid.entry(ns).or_insert(pid);
        }
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if let Some(ino) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    inode_pid.entry(ino).or_insert(pid);
                }
            }
        }
    }
    let mut owner_of_pid: HashMap<i32, Arc<Owner>> = HashMap::new();
    for (netns, pid) in netns_pid {
        for file in ["tcp", "tcp6"] {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else { continue };
            for line in text.lines().skip(1) {
                let Some(entry) = parse_proc_net_tcp_line(line) else { continue };
                let Some(&owner_pid) = inode_pid.get(&entry.inode) else { continue };
                let owner = owner_of_pid
                    .entry(owner_pid)
                    .or_insert_with(|| Arc::new(owner_of(owner_pid, cgroups)))
                    .clone();
                if entry.state == 0x0A {
                    owners.listeners.insert((netns, entry.lport), owner);
                } else {
                    owners.connections.insert((netns, entry.laddr, entry.lport, entry.raddr, entry.rport), owner);
                }
            }
        }
    }
    owners
}

/// What `/proc/<pid>` says about a process.
pub fn owner_of(pid: i32, cgroups: &mut Cgroups) -> Owner {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cg_path = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::").map(|p| p.to_string())));
    let cgroup_id = cg_path.as_ref().and_then(|p| {
        let root = cgroups.root.as_ref()?;
        std::fs::metadata(root.join(p.trim_start_matches('/'))).ok().map(|m| m.ino() as i64)
    });
    Owner {
        pid,
        comm: Str::from(comm.trim_end()),
        cgroup_id,
        container_id: cg_path.as_deref().and_then(container_id).map(Str::from),
        cgroup: cg_path.map(Str::from),
    }
}

/// Inode of a namespace link (`net:[4026531840]`).
pub fn ns_inode(link: &Path) -> Option<u32> {
    let t = std::fs::read_link(link).ok()?;
    t.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

#[derive(Debug, PartialEq)]
pub struct ProcTcpEntry {
    pub laddr: IpAddr,
    pub lport: u16,
    pub raddr: IpAddr,
    pub rport: u16,
    pub state: u8,
    pub inode: u64,
}

/// One line of `/proc/net/tcp` or `tcp6`.
pub fn parse_proc_net_tcp_line(line: &str) -> Option<ProcTcpEntry> {
    let mut f = line.split_whitespace();
    let _sl = f.next()?;
    let (laddr, lport) = parse_hex_endpoint(f.next()?)?;
    let (raddr, rport) = parse_hex_endpoint(f.next()?)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let inode = f.nth(5)?.parse().ok()?;
    Some(ProcTcpEntry {
        laddr,
        lport,
        raddr,
        rport,
        state,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), in 32-bit words of host byte order.
fn parse_hex_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]),
        16 => {
            let a: [u8; 16] = bytes.try_into().ok()?;
            let v6 = std::net::Ipv6Addr::from(a);
            v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_common_runtimes() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(container_id(&format!("/system.slice/docker-{id}.scope")).as_deref(), Some(id));
        assert_eq!(container_id(&format!("/docker/{id}")).as_deref(), Some(id));
        assert_eq!(
            container_id(&format!("/kubepods.slice/kubepods-burstable.slice/cri-containerd-{id}.scope")).as_deref(),
            Some(id)
        );
        assert_eq!(container_id(&format!("/machine.slice/libpod-{id}.scope")).as_deref(), Some(id));
        assert_eq!(container_id("/system.slice/nginx.service"), None);
        assert_eq!(container_id("/"), None);
    }

    #[test]
    fn parses_proc_net_tcp() {
        let v4 = "   0: 0100007F:1F90 0A00000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0";
        let e = parse_proc_net_tcp_line(v4).unwrap();
        assert_eq!(e.laddr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.lport, 8080);
        assert_eq!(e.raddr, "10.0.0.10".parse::<IpAddr>().unwrap());
        assert_eq!(e.rport, 54321);
        assert_eq!((e.state, e.inode), (1, 123456));
        let v6 = "   1: 00000000000000000000000001000000:0050 0000000000000000FFFF00000100007F:9C40 0A 00000000:00000000 00:00000000 00000000     0        0 99 1";
        let e = parse_proc_net_tcp_line(v6).unwrap();
        assert_eq!(e.laddr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(e.raddr, "127.0.0.1".parse::<IpAddr>().unwrap(), "v4-mapped written as v4");
        assert_eq!((e.lport, e.rport, e.state, e.inode), (80, 40000, 0x0A, 99));
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cg = Cgroups::new(None);
        let owners = scan_socket_owners(&mut cg);
        let me = ns_inode(Path::new("/proc/self/ns/net")).unwrap();
        let o = owners.listeners.get(&(me, port)).expect("our listener is found");
        assert_eq!(o.pid, std::process::id() as i32);
    }
}
