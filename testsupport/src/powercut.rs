//! A file system that forgets what was not fsynced: the test bed for power cuts (the
//! idea of Jepsen's LazyFS, as a small FUSE file system kept in memory).
//!
//! Every file and directory exists in two versions: the *live* one, which processes see
//! and change, and the *durable* one, which is what a disk would hold. They differ until
//! a program asks for durability:
//! * `fsync`/`fdatasync` of a file copies its live contents (and size) to its durable
//!   version;
//! * `fsync` of a directory copies its live entries — the names created, renamed and
//!   deleted in it — to its durable version. The files those names point to keep their
//!   own durable contents: a file that was named durably but never fsynced is there
//!   after a cut, empty.
//!
//! [`Mount::cut`] is the power cut: from that instant every request fails with EIO (the
//! machine is off), and the live state is replaced by the durable one. Kill the programs
//! writing to the mount, then [`Mount::power_on`]. What a cut keeps is chosen with [`Cut`]:
//! [`Cut::Strict`] keeps only what was fsynced (all POSIX promises); [`Cut::MetadataKept`]
//! keeps every name and file size as well, with never-fsynced contents read as zeros —
//! a journaling file system that committed its metadata but not the data (ext4 with
//! `data=writeback`; the "empty manifest after a power cut" of a rename whose file was
//! never fsynced). Both are outcomes a real disk may give; a program that is right under
//! both keeps what it fsynced. [`Mount::cut_after`] makes the file system cut by itself
//! when the n-th changing request arrives, for cuts at exact points of a protocol.
//!
//! The kernel must keep no copy of its own: entries and attributes are given with a zero
//! TTL and files are opened for direct I/O, so after a cut every process sees the new
//! state at once, and a write(2) that returned is one this file system saw (no writeback
//! cache). Unix sockets and FIFOs can be made (a name, nothing to keep). Not supported:
//! hard links, symlinks, devices, extended attributes and shared memory maps of files.
//! Inode numbers are never reused.
//!
//! Mounting needs root (the mount(2) call; no `fusermount` is used) and `/dev/fuse`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// What a power cut keeps of what was not fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing: only fsynced contents and names survive.
    Strict,
    /// Every name (creations, renames, deletions) and every file's size survive; file
    /// contents only as far as they were fsynced, the rest reads as zeros.
    MetadataKept,
}

/// What the file system was asked to do (for assertions and measurements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Changing requests: writes, truncations, creations, renames, deletions, syncs.
    pub changes: u64,
    pub writes: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub renames: u64,
    pub cuts: u64,
}

const ROOT: u64 = 1;
/// Files are kept in chunks shared between the two versions: making a file durable
/// copies pointers, a write copies only the chunks it changes.
const CHUNK: usize = 64 * 1024;
/// Nothing is cached by the kernel: after a cut it must ask again.
const TTL: Duration = Duration::ZERO;

/// A file's contents. Bytes past `len` in the last chunk are always zero, so growing a
/// file needs no work.
#[derive(Clone, Default)]
struct Bytes {
    chunks: Vec<Arc<Vec<u8>>>,
    len: u64,
}

impl Bytes {
    fn read(&self, offset: u64, size: usize) -> Vec<u8> {
        let end = offset.saturating_add(size as u64).min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (c, o) = ((pos / CHUNK as u64) as usize, (pos % CHUNK as u64) as usize);
            let n = ((CHUNK - o) as u64).min(end - pos) as usize;
            match self.chunks.get(c) {
                Some(chunk) => out.extend_from_slice(&chunk[o..o + n]),
                None => out.resize(out.len() + n, 0),
            }
            pos += n as u64;
        }
        out
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        while (self.chunks.len() as u64) * (CHUNK as u64) < end {
            self.chunks.push(Arc::new(vec![0; CHUNK]));
        }
        let (mut pos, mut rest) = (offset, data);
        while !rest.is_empty() {
            let (c, o) = ((pos / CHUNK as u64) as usize, (pos % CHUNK as u64) as usize);
            let n = (CHUNK - o).min(rest.len());
            Arc::make_mut(&mut self.chunks[c])[o..o + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            pos += n as u64;
        }
        self.len = self.len.max(end);
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            self.chunks.truncate(len.div_ceil(CHUNK as u64) as usize);
            let o = (len % CHUNK as u64) as usize;
            if let (true, Some(last)) = (o != 0, self.chunks.last_mut()) {
                Arc::make_mut(last)[o..].fill(0);
            }
        }
        self.len = len;
    }
}

#[derive(Clone)]
enum Kind {
    File(Bytes),
    Dir(BTreeMap<OsString, u64>),
    /// A unix socket or a FIFO: a name and nothing else (the kernel holds the rest).
    Special(FileType),
}

#[derive(Clone)]
struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
}

impl Node {
    /// The same node as a disk holds it before anything of it was synced.
    fn blank(&self) -> Node {
        let kind = match self.kind {
            Kind::File(_) => Kind::File(Bytes::default()),
            Kind::Dir(_) => Kind::Dir(BTreeMap::new()),
            Kind::Special(t) => Kind::Special(t),
        };
        Node { kind, perm: self.perm, mtime: self.mtime }
    }
}

struct State {
    live: HashMap<u64, Node>,
    durable: HashMap<u64, Node>,
    next_ino: u64,
    next_fh: u64,
    /// Open file handles → inode.
    handles: HashMap<u64, u64>,
    /// Files deleted while open: kept until their last handle is released.
    orphans: HashSet<u64>,
    powered: bool,
    /// Cut (this way) when this many more changing requests arrive.
    cut_after: Option<(u64, Cut)>,
    counters: Counters,
}

impl State {
    fn new() -> State {
        let root = Node { kind: Kind::Dir(BTreeMap::new()), perm: 0o755, mtime: SystemTime::now() };
        State {
            live: HashMap::from([(ROOT, root.clone())]),
            durable: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            next_fh: 1,
            handles: HashMap::new(),
            orphans: HashSet::new(),
            powered: true,
            cut_after: None,
            counters: Counters::default(),
        }
    }

    /// Every request starts here: refused while the power is off; a changing one is
    /// counted, and may be the one a planned cut falls on (it is then not served).
    fn begin(&mut self, changing: bool) -> Result<(), Errno> {
        if !self.powered {
            return Err(Errno::EIO);
        }
        if changing {
            if let Some((n, how)) = self.cut_after {
                if n <= 1 {
                    self.cut(how);
                    return Err(Errno::EIO);
                }
                self.cut_after = Some((n - 1, how));
            }
            self.counters.changes += 1;
        }
        Ok(())
    }

    fn cut(&mut self, how: Cut) {
        if how == Cut::MetadataKept {
            for ino in reachable(&self.live) {
                let node = &self.live[&ino];
                let kept = self.durable.entry(ino).or_insert_with(|| node.blank());
                match (&node.kind, &mut kept.kind) {
                    (Kind::Dir(live), Kind::Dir(disk)) => *disk = live.clone(),
                    (Kind::File(live), Kind::File(disk)) => disk.set_len(live.len),
                    _ => {}
                }
            }
        }
        let keep = reachable(&self.durable);
        self.durable.retain(|ino, _| keep.contains(ino));
        self.live = self.durable.clone();
        self.handles.clear();
        self.orphans.clear();
        self.powered = false;
        self.cut_after = None;
        self.counters.cuts += 1;
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.live.get(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(ino)?.kind {
            Kind::Dir(e) => Ok(e),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.live.get_mut(&ino).ok_or(Errno::ENOENT)?.kind {
            Kind::Dir(e) => Ok(e),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn is_dir(&self, ino: u64) -> Result<bool, Errno> {
        Ok(matches!(self.node(ino)?.kind, Kind::Dir(_)))
    }

    fn bytes_mut(&mut self, ino: u64) -> Result<&mut Bytes, Errno> {
        let node = self.live.get_mut(&ino).ok_or(Errno::ENOENT)?;
        node.mtime = SystemTime::now();
        match &mut node.kind {
            Kind::File(b) => Ok(b),
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Special(_) => Err(Errno::EINVAL),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.entries(parent)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64, uid: u32, gid: u32) -> Result<FileAttr, Errno> {
        let node = self.node(ino)?;
        let (kind, size, nlink) = match &node.kind {
            Kind::File(b) => (FileType::RegularFile, b.len, 1),
            Kind::Dir(_) => (FileType::Directory, 0, 2),
            Kind::Special(t) => (*t, 0, 1),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink,
            uid,
            gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }

    /// A new node named `name` in `parent`.
    fn add(&mut self, parent: u64, name: &OsStr, kind: Kind, perm: u16) -> Result<u64, Errno> {
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.live.insert(ino, Node { kind, perm, mtime: SystemTime::now() });
        self.entries_mut(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    fn open(&mut self, ino: u64) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, ino);
        fh
    }

    /// A node that lost its name: gone at once, or when its last handle is released.
    fn drop_node(&mut self, ino: u64) {
        if self.handles.values().any(|&i| i == ino) {
            self.orphans.insert(ino);
        } else {
            self.live.remove(&ino);
        }
    }

    fn unlink(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (self.is_dir(ino)?, dir) {
            (false, true) => return Err(Errno::ENOTDIR),
            (true, false) => return Err(Errno::EISDIR),
            (true, true) if !self.entries(ino)?.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        self.drop_node(ino);
        Ok(())
    }

    fn rename(&mut self, from: (u64, &OsStr), to: (u64, &OsStr), flags: RenameFlags) -> Result<(), Errno> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.lookup(from.0, from.1)?;
        self.entries(to.0)?;
        let is_dir = self.is_dir(ino)?;
        if let Ok(victim) = self.lookup(to.0, to.1) {
            if victim == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            match (self.is_dir(victim)?, is_dir) {
                (true, true) if !self.entries(victim)?.is_empty() => return Err(Errno::ENOTEMPTY),
                (true, false) => return Err(Errno::EISDIR),
                (false, true) => return Err(Errno::ENOTDIR),
                _ => {}
            }
            self.drop_node(victim);
        }
        self.entries_mut(from.0)?.remove(from.1);
        self.entries_mut(to.0)?.insert(to.1.to_os_string(), ino);
        self.counters.renames += 1;
        Ok(())
    }

    /// fsync of a file: its contents; of a directory: its names (each named node exists
    /// on the disk from then on, with whatever of it was synced).
    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        let node = self.node(ino)?.clone();
        match &node.kind {
            Kind::Dir(entries) => {
                for child in entries.values() {
                    if !self.durable.contains_key(child) {
                        let blank = self.live[child].blank();
                        self.durable.insert(*child, blank);
                    }
                }
                let disk = self.durable.entry(ino).or_insert_with(|| node.blank());
                disk.kind = node.kind.clone();
                disk.perm = node.perm;
                self.counters.dir_syncs += 1;
            }
            Kind::File(_) | Kind::Special(_) => {
                self.durable.insert(ino, node);
                self.counters.file_syncs += 1;
            }
        }
        Ok(())
    }
}

/// Inodes reachable from the root.
fn reachable(nodes: &HashMap<u64, Node>) -> HashSet<u64> {
    let mut seen = HashSet::from([ROOT]);
    let mut todo = vec![ROOT];
    while let Some(ino) = todo.pop() {
        if let Some(Node { kind: Kind::Dir(entries), .. }) = nodes.get(&ino) {
            for &child in entries.values() {
                if nodes.contains_key(&child) && seen.insert(child) {
                    todo.push(child);
                }
            }
        }
    }
    seen
}

/// The FUSE side: every request takes the state's lock for the time of one operation.
struct PowerCutFs {
    state: Arc<Mutex<State>>,
}

impl PowerCutFs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn entry_reply(reply: ReplyEntry, attr: Result<FileAttr, Errno>) {
    match attr {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn attr_reply(reply: ReplyAttr, attr: Result<FileAttr, Errno>) {
    match attr {
        Ok(a) => reply.attr(&TTL, &a),
        Err(e) => reply.error(e),
    }
}

fn empty_reply(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = self.state();
        let attr = (|| {
            if !s.powered {
                return Err(Errno::EIO);
            }
            s.attr(s.lookup(parent.0, name)?, req.uid(), req.gid())
        })();
        entry_reply(reply, attr);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut s = self.state();
        attr_reply(reply, s.begin(false).and_then(|()| s.attr(ino.0, req.uid(), req.gid())));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let r = (|| {
            s.begin(size.is_some() || mode.is_some())?;
            if let Some(len) = size {
                s.bytes_mut(ino.0)?.set_len(len);
            }
            if let Some(mode) = mode {
                s.live.get_mut(&ino.0).ok_or(Errno::ENOENT)?.perm = (mode & 0o7777) as u16;
            }
            s.attr(ino.0, req.uid(), req.gid())
        })();
        attr_reply(reply, r);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut s = self.state();
        let r = (|| {
            s.begin(true)?;
            let ino = s.add(parent.0, name, Kind::Dir(BTreeMap::new()), (mode & !umask & 0o7777) as u16)?;
            s.attr(ino, req.uid(), req.gid())
        })();
        entry_reply(reply, r);
    }

    /// Unix sockets (`bind`) and FIFOs; other special files are refused.
    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, _rdev: u32, reply: ReplyEntry) {
        let mut s = self.state();
        let r = (|| {
            s.begin(true)?;
            let kind = match mode & libc::S_IFMT {
                libc::S_IFSOCK => Kind::Special(FileType::Socket),
                libc::S_IFIFO => Kind::Special(FileType::NamedPipe),
                libc::S_IFREG => Kind::File(Bytes::default()),
                _ => return Err(Errno::EPERM),
            };
            let ino = s.add(parent.0, name, kind, (mode & !umask & 0o7777) as u16)?;
            s.attr(ino, req.uid(), req.gid())
        })();
        entry_reply(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.begin(true).and_then(|()| s.unlink(parent.0, name, false));
        empty_reply(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.begin(true).and_then(|()| s.unlink(parent.0, name, true));
        empty_reply(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let r = s.begin(true).and_then(|()| s.rename((parent.0, name), (newparent.0, newname), flags));
        empty_reply(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.state();
        let r = s.begin(false).and_then(|()| s.node(ino.0).map(|_| ()));
        match r {
            Ok(()) => reply.opened(FileHandle(s.open(ino.0)), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        let mut s = self.state();
        let r = (|| {
            s.begin(true)?;
            let ino = match s.lookup(parent.0, name) {
                Ok(_) if flags & libc::O_EXCL != 0 => return Err(Errno::EEXIST),
                Ok(ino) => {
                    if flags & libc::O_TRUNC != 0 {
                        s.bytes_mut(ino)?.set_len(0);
                    }
                    ino
                }
                Err(_) => s.add(parent.0, name, Kind::File(Bytes::default()), (mode & !umask & 0o7777) as u16)?,
            };
            Ok((s.attr(ino, req.uid(), req.gid())?, s.open(ino)))
        })();
        match r {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut s = self.state();
        let r = s.begin(false).and_then(|()| match &s.node(ino.0)?.kind {
            Kind::File(b) => Ok(b.read(offset, size as usize)),
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Special(_) => Err(Errno::EINVAL),
        });
        match r {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let r = s.begin(true).and_then(|()| s.bytes_mut(ino.0)).map(|b| b.write(offset, data));
        match r {
            Ok(()) => {
                s.counters.writes += 1;
                reply.written(data.len() as u32)
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Also while the power is off: handles of killed processes are closed then.
        let mut s = self.state();
        if let Some(ino) = s.handles.remove(&fh.0) {
            if s.orphans.contains(&ino) && !s.handles.values().any(|&i| i == ino) {
                s.orphans.remove(&ino);
                s.live.remove(&ino);
            }
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.begin(true).and_then(|()| s.sync(ino.0));
        empty_reply(reply, r);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.state();
        match s.begin(false).and_then(|()| s.entries(ino.0).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut s = self.state();
        let r = s.begin(false).and_then(|()| {
            let entries = s.entries(ino.0)?;
            let mut all = vec![(ino.0, FileType::Directory, OsString::from(".")), (ino.0, FileType::Directory, OsString::from(".."))];
            for (name, &child) in entries {
                let kind = match s.live.get(&child).map(|n| &n.kind) {
                    Some(Kind::Dir(_)) => FileType::Directory,
                    Some(Kind::Special(t)) => *t,
                    _ => FileType::RegularFile,
                };
                all.push((child, kind, name.clone()));
            }
            Ok(all)
        });
        match r {
            Ok(all) => {
                for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.begin(true).and_then(|()| s.sync(ino.0));
        empty_reply(reply, r);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: programs that check free space must not stop here.
        reply.statfs(1 << 30, 1 << 30, 1 << 30, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.begin(false);
        empty_reply(reply, r);
    }
}

/// The file system mounted on a temporary directory; unmounted on drop.
pub struct Mount {
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
    dir: tempfile::TempDir,
}

/// The `fsname` of our mounts: `tcpfr-powercut-<pid>`, so that mounts left by killed test
/// processes can be found and removed.
const FSNAME: &str = "tcpfr-powercut-";

impl Mount {
    /// Mounts a new, empty file system (removing mounts that killed test processes left).
    pub fn new() -> std::io::Result<Mount> {
        remove_stale_mounts();
        let dir = tempfile::Builder::new().prefix("powercut").tempdir()?;
        let state = Arc::new(Mutex::new(State::new()));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("{FSNAME}{}", std::process::id())),
            MountOption::Subtype("powercut".into()),
            MountOption::DefaultPermissions,
            MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(PowerCutFs { state: state.clone() }, dir.path(), &config)?;
        Ok(Mount { state, session: Some(session), dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power cut now: everything not durable is forgotten (as `how` says), and every
    /// request fails until [`Mount::power_on`].
    pub fn cut(&self, how: Cut) {
        let mut s = self.state();
        if s.powered {
            s.cut(how);
        }
    }

    /// Power cut when the `n`-th changing request from now arrives (it is not served).
    pub fn cut_after(&self, n: u64, how: Cut) {
        self.state().cut_after = Some((n.max(1), how));
    }

    /// Whether the power is on (false after a cut, until [`Mount::power_on`]).
    pub fn powered(&self) -> bool {
        self.state().powered
    }

    /// Power back: requests are served again, on what survived the cut. Also cancels a
    /// planned cut that has not happened.
    pub fn power_on(&self) {
        let mut s = self.state();
        s.powered = true;
        s.cut_after = None;
    }

    pub fn counters(&self) -> Counters {
        self.state().counters
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A file of the mount still open in this process (a writer leaked on purpose, a
        // test that panicked) would be closed at exit, when no thread is left to answer:
        // the process would hang forever. Aborting the connection makes every request
        // fail at once instead.
        if let Some(m) = our_mounts().into_iter().find(|m| m.point == self.dir.path()) {
            abort_connection(m.connection);
        }
        drop(self.session.take());
        // Still there if a file was open: detached, gone with its last user.
        if our_mounts().iter().any(|m| m.point == self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// One of our mounts, as /proc/self/mountinfo lists it.
struct MountInfo {
    point: PathBuf,
    /// The pid that mounted it.
    pid: u32,
    /// Its FUSE connection: the minor device number (`/sys/fs/fuse/connections/<n>`).
    connection: u32,
}

fn our_mounts() -> Vec<MountInfo> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        // `id parent major:minor root mount-point … - fstype source options`
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
        let (Some(dev), Some(point), Some(source)) = (fields.get(2), fields.get(4), fields.get(dash + 2)) else { continue };
        let Some(pid) = source.strip_prefix(FSNAME).and_then(|p| p.parse().ok()) else { continue };
        let Some(connection) = dev.split_once(':').and_then(|(_, minor)| minor.parse().ok()) else { continue };
        // mountinfo escapes spaces and the like as octal.
        out.push(MountInfo { point: PathBuf::from(point.replace("\\040", " ")), pid, connection });
    }
    out
}

/// Makes every request of a FUSE connection fail (ENOTCONN) instead of waiting for an
/// answer, through the fusectl file system (mounted here if it is not yet).
fn abort_connection(connection: u32) {
    let conns = Path::new("/sys/fs/fuse/connections");
    if !conns.join(connection.to_string()).exists() {
        let _ = Command::new("mount").args(["-t", "fusectl", "fusectl"]).arg(conns).status();
    }
    let _ = std::fs::write(conns.join(connection.to_string()).join("abort"), "1");
}

/// Detaches mounts whose process is gone (a test killed before its drop ran).
fn remove_stale_mounts() {
    for m in our_mounts() {
        if !Path::new(&format!("/proc/{}", m.pid)).exists() {
            abort_connection(m.connection);
            let _ = Command::new("umount").arg("-l").arg(&m.point).status();
            let _ = std::fs::remove_dir(&m.point);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;

    use super::*;

    fn mount() -> Mount {
        Mount::new().expect("mounting needs root and /dev/fuse")
    }

    fn sync_dir(p: &Path) {
        File::open(p).unwrap().sync_all().unwrap();
    }

    /// A file created, written and fsynced, with its name fsynced too.
    fn durable_file(m: &Mount, name: &str, data: &[u8]) -> PathBuf {
        let p = m.path().join(name);
        let mut f = File::create(&p).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
        sync_dir(m.path());
        p
    }

    fn cut(m: &Mount, how: Cut) {
        m.cut(how);
        assert!(fs::read_dir(m.path()).is_err(), "the power is off");
        m.power_on();
    }

    #[test]
    fn written_but_not_synced_data_vanishes() {
        let m = mount();
        let p = durable_file(&m, "a", b"kept");
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b" and lost").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"kept and lost");
        drop(f);
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&p).unwrap(), b"kept");
        // fdatasync counts as well.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"!").unwrap();
        f.sync_data().unwrap();
        drop(f);
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&p).unwrap(), b"kept!");
        assert_eq!(m.counters().cuts, 2);
    }

    #[test]
    fn a_new_name_needs_its_directory_fsynced() {
        let m = mount();
        let p = m.path().join("new");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"data").unwrap();
        f.sync_all().unwrap();
        drop(f);
        fs::create_dir(m.path().join("sub")).unwrap();
        cut(&m, Cut::Strict);
        assert!(!p.exists() && !m.path().join("sub").exists(), "fsynced file, but not its name");
        // Named durably, contents never synced: there, empty.
        fs::write(&p, b"data").unwrap();
        sync_dir(m.path());
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&p).unwrap(), b"");
    }

    #[test]
    fn rename_and_unlink_need_the_directory_fsynced() {
        let m = mount();
        let dest = durable_file(&m, "manifest", b"old");
        let tmp = m.path().join("tmp");
        fs::write(&tmp, b"new").unwrap();
        File::open(&tmp).unwrap().sync_all().unwrap();
        fs::rename(&tmp, &dest).unwrap();
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert!(!tmp.exists());

        fs::write(&tmp, b"new").unwrap();
        File::open(&tmp).unwrap().sync_all().unwrap();
        fs::rename(&tmp, &dest).unwrap();
        sync_dir(m.path());
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&dest).unwrap(), b"new");

        fs::remove_file(&dest).unwrap();
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&dest).unwrap(), b"new", "an unlink not fsynced comes back");
        fs::remove_file(&dest).unwrap();
        sync_dir(m.path());
        cut(&m, Cut::Strict);
        assert!(!dest.exists());
    }

    #[test]
    fn metadata_kept_keeps_names_and_sizes_but_not_contents() {
        let m = mount();
        let dest = durable_file(&m, "manifest", b"old");
        // The unsafe pattern: contents never fsynced before the rename.
        let tmp = m.path().join("tmp");
        fs::write(&tmp, b"newer").unwrap();
        fs::rename(&tmp, &dest).unwrap();
        fs::create_dir(m.path().join("d")).unwrap();
        fs::write(m.path().join("d/f"), b"xy").unwrap();
        cut(&m, Cut::MetadataKept);
        assert_eq!(fs::read(&dest).unwrap(), b"\0\0\0\0\0", "renamed, size kept, contents lost");
        assert_eq!(fs::read(m.path().join("d/f")).unwrap(), b"\0\0");
        // Synced parts stay; what grew after is zeros.
        let p = durable_file(&m, "log", b"abc");
        OpenOptions::new().append(true).open(&p).unwrap().write_all(b"def").unwrap();
        cut(&m, Cut::MetadataKept);
        assert_eq!(fs::read(&p).unwrap(), b"abc\0\0\0");
    }

    #[test]
    fn unix_sockets_can_be_bound_there() {
        use std::os::unix::fs::FileTypeExt;
        let m = mount();
        let p = m.path().join("ctl.sock");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let _c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        l.accept().unwrap();
        assert!(fs::metadata(&p).unwrap().file_type().is_socket());
        fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_planned_cut_falls_on_the_nth_change_and_requests_fail_until_power_on() {
        let m = mount();
        let p = durable_file(&m, "f", b"1");
        // Writes of 3 files: the cut falls on the second file's write.
        m.cut_after(4, Cut::Strict);
        fs::write(m.path().join("g"), b"2").unwrap(); // create, write
        let err = fs::write(m.path().join("h"), b"3").map(|_| ()).and_then(|()| fs::write(m.path().join("i"), b"4"));
        assert!(err.is_err(), "the power went off");
        assert!(!m.powered());
        assert!(fs::read(&p).is_err(), "nothing is served while the power is off");
        m.power_on();
        assert_eq!(fs::read(&p).unwrap(), b"1");
        assert!(!m.path().join("g").exists() && !m.path().join("h").exists());
        // Big files (several chunks) survive a cut byte for byte.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let q = durable_file(&m, "big", &big);
        OpenOptions::new().write(true).open(&q).unwrap().set_len(100_000).unwrap();
        cut(&m, Cut::Strict);
        assert_eq!(fs::read(&q).unwrap(), big);
    }
}
