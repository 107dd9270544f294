//! File-system helpers the writer and crash recovery share: files created (never
//! opened through an existing name), directories made and made durable, whole files
//! replaced atomically, and a writer that hashes what it writes. Leaves of the crate:
//! they know nothing of recordings.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};

pub(crate) fn write_err(path: &Path, e: impl std::fmt::Display) -> FormatError {
    FormatError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A file writer that hashes and counts what goes through it, so closing a file needs
/// no second read for its checksum.
pub(crate) struct HashingWriter {
    pub(crate) file: File,
    hasher: Sha256,
    bytes: u64,
}

impl HashingWriter {
    pub(crate) fn new(file: File) -> Self {
        HashingWriter {
            file,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    pub(crate) fn finish(self) -> (File, [u8; 32], u64) {
        (self.file, self.hasher.finalize().into(), self.bytes)
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

pub(crate) fn create_file(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| FormatError::io(path, e))
}

/// Creates `dir` and its missing parents. `durable`: then fsyncs the directory holding
/// each one created, so that the new names survive a power cut.
pub fn create_dir_all(dir: &Path, mode: u32, durable: bool) -> Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    while std::fs::symlink_metadata(p).is_err() {
        missing.push(p);
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| FormatError::io(dir, e))?;
    if durable {
        // Outermost first: a name is only useful once the directory holding it is.
        for created in missing.iter().rev() {
            sync_parent(created)?;
        }
    }
    Ok(())
}

/// fsyncs a directory: the names created, renamed or deleted in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| FormatError::io(dir, e))?;
    match d.sync_all() {
        Ok(()) => Ok(()),
        // File systems that cannot fsync a directory (EINVAL) keep names some other way.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        Err(e) => Err(FormatError::io(dir, e)),
    }
}

/// fsyncs the directory holding `path` (`.` for a bare name).
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Replaces `dest` with `bytes` through `tmp` (a name in the same directory): readers,
/// and with `durable` a power cut, see the old or the new contents, never half. Durable:
/// `tmp` is fsynced before the rename, the directory after it.
pub(crate) fn write_atomically(tmp: &Path, dest: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    // A fresh file: whatever is at `tmp` (a leftover, or a planted symlink) is replaced,
    // never written through.
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(FormatError::io(tmp, e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(tmp)
        .map_err(|e| FormatError::io(tmp, e))?;
    let written = f.write_all(bytes).and_then(|()| if durable { f.sync_all() } else { Ok(()) });
    drop(f);
    if let Err(e) = written {
        // A partial temp file would hold space a full disk needs back.
        let _ = std::fs::remove_file(tmp);
        return Err(FormatError::io(tmp, e));
    }
    std::fs::rename(tmp, dest).map_err(|e| FormatError::io(dest, e))?;
    if durable {
        sync_parent(dest)?;
    }
    Ok(())
}
