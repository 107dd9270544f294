//! The output directory (`--out`): one recorder at a time, and the recordings a crashed
//! run left unfinished completed before a new one starts.
//!
//! The lock (`flock` on `DIR/.tcpfr-recorder.lock`, released by the kernel when the
//! process dies, however it dies) is what makes recovery safe: a recording without an
//! `end` in a directory we hold the lock of cannot be in use by another recorder.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tcpfr_schema::recover::{needs_recovery, recover, Recovered};
use tcpfr_schema::write::WriterOptions;

const LOCK: &str = ".tcpfr-recorder.lock";

/// A locked output directory; the lock is held as long as this value lives.
pub struct OutDir {
    pub path: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates the directory if needed, checks that it is writable and takes the lock.
    pub fn open(path: &Path) -> Result<OutDir> {
        std::fs::create_dir_all(path).with_context(|| format!("cannot create output directory {}", path.display()))?;
        let lock_path = path.join(LOCK);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&lock_path)
            .with_context(|| format!("output directory {} is not writable", path.display()))?;
        if let Err(e) = lock.try_lock() {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            let holder = holder.trim();
            match e {
                std::fs::TryLockError::WouldBlock => bail!(
                    "another tcpfr-recorder{} is writing to {}: stop it, or give this one another --out",
                    if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
                    path.display()
                ),
                std::fs::TryLockError::Error(e) => {
                    return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
                }
            }
        }
        lock.set_len(0)?;
        writeln!(lock, "{}", std::process::id())?;
        Ok(OutDir { path: path.to_path_buf(), _lock: lock })
    }

    /// Completes every recording directly under the directory that has no `end` (its
    /// recorder crashed). Failures are reported per recording and do not stop the rest.
    pub fn recover_unfinished(&self, opts: &WriterOptions) -> Vec<Result<Recovered>> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && needs_recovery(p))
            .collect();
        dirs.sort();
        dirs.into_iter()
            .map(|d| recover(&d, opts).with_context(|| format!("cannot recover the unfinished recording {}", d.display())))
            .collect()
    }
}
