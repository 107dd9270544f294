//! The output directory (`--out`): one recorder at a time, a directory nobody else can
//! plant files in, and the recordings a crashed run left unfinished completed before a
//! new one starts.
//!
//! The recorder runs as root (or with capabilities that bypass file permissions) and
//! writes, deletes, hard-links and uploads what it finds in `--out`. So before anything
//! is touched the directory must be one only root or the recorder's own user can
//! change: it and every directory above it owned by root or by us, and not writable by
//! group or others (a sticky directory such as `/tmp` is fine above it: others cannot
//! rename or remove what we own there). A directory a local user made (`--out /tmp/rec`
//! pre-created by someone else, with `.tcpfr-recorder.lock` pointing at `/etc/shadow`)
//! is refused with what to do. The path is then used in its resolved form, and the few
//! files made directly in it are created without following symlinks, and changed
//! through their open descriptors.
//!
//! The lock (`flock` on `DIR/.tcpfr-recorder.lock`, released by the kernel when the
//! process dies, however it dies) is what makes recovery safe: a recording without an
//! `end` in a directory we hold the lock of cannot be in use by another recorder.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tcpfr_schema::recover::{needs_recovery, recover, Recovered};
use tcpfr_schema::write::WriterOptions;

const LOCK: &str = ".tcpfr-recorder.lock";

/// A locked output directory; the lock is held as long as this value lives.
pub struct OutDir {
    /// The directory, symlinks resolved.
    pub path: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates the directory if needed, checks that nobody else can change it, and
    /// takes the lock. With `group`, the directory becomes that group's, setgid (new
    /// files and directories below take the group), `0750`.
    pub fn open(path: &Path, group: Option<u32>) -> Result<OutDir> {
        if !path.exists() {
            // Durable: a recording made in a new --out must not lose its directory to a
            // power cut.
            tcpfr_schema::fs::create_dir_all(path, 0o750, true)
                .with_context(|| format!("cannot create output directory {}", path.display()))?;
        }
        let real = path.canonicalize().with_context(|| format!("cannot resolve output directory {}", path.display()))?;
        check_trusted(&real).with_context(|| format!("refusing --out {}", path.display()))?;
        let dir = open_nofollow(&real, libc::O_DIRECTORY | libc::O_RDONLY, 0)
            .with_context(|| format!("cannot open output directory {}", real.display()))?;
        if let Some(gid) = group {
            std::os::unix::fs::fchown(&dir, None, Some(gid))
                .with_context(|| format!("cannot give {} to group {gid}", real.display()))?;
            dir.set_permissions(std::fs::Permissions::from_mode(0o2750))?;
        }
        let lock = lock(&real)?;
        Ok(OutDir { path: real, _lock: lock })
    }

    /// Completes every recording directly under the directory that has no `end` (its
    /// recorder crashed). Failures are reported per recording and do not stop the rest.
    pub fn recover_unfinished(&self, opts: &WriterOptions) -> Vec<Result<Recovered>> {
        let mut dirs: Vec<PathBuf> = subdirectories(&self.path).into_iter().filter(|p| needs_recovery(p)).collect();
        dirs.sort();
        dirs.into_iter()
            .map(|d| recover(&d, opts).with_context(|| format!("cannot recover the unfinished recording {}", d.display())))
            .collect()
    }
}

/// Why `--max-disk` cannot be met on the file system of `dir`, if it cannot: larger
/// than the file system, or than what is free there now besides what `dir` holds.
pub fn capacity_warning(dir: &Path, max_disk: u64) -> Option<String> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct for statvfs to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let size = (st.f_blocks as u64).saturating_mul(st.f_frsize as u64);
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    let f = |b: u64| bytesize::ByteSize(b).to_string();
    if max_disk > size {
        return Some(format!(
            "--max-disk {} is more than the whole file system of {} ({}): the disk will fill before the ring deletes anything",
            f(max_disk),
            dir.display(),
            f(size)
        ));
    }
    let held = du(dir);
    if max_disk > free.saturating_add(held) {
        return Some(format!(
            "--max-disk {} is more than {} has room for ({} free + {} already in it): the disk may fill before the ring deletes anything",
            f(max_disk),
            dir.display(),
            f(free),
            f(held)
        ));
    }
    None
}

/// Bytes of the regular files below `dir`, links not followed.
fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => n += du(&e.path()),
            Ok(t) if t.is_file() => n += e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => {}
        }
    }
    n
}

/// Real directories directly under `dir` (no symlinks: a link to a directory elsewhere
/// would make the ring delete, or snapshots link, files outside `--out`).
pub fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Takes the lock, writing our pid into the lock file.
fn lock(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK);
    let mut lock = open_nofollow(&lock_path, libc::O_RDWR | libc::O_CREAT, 0o640).with_context(|| {
        format!("cannot open {} (it must be a plain file; remove whatever is there)", lock_path.display())
    })?;
    let meta = lock.metadata()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 || !trusted_owner(meta.uid()) {
        bail!(
            "{} is not a plain file of ours (a link, or owned by uid {}): remove it and start again",
            lock_path.display(),
            meta.uid()
        );
    }
    if let Err(e) = lock.try_lock() {
        let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
        let holder = holder.trim();
        match e {
            std::fs::TryLockError::WouldBlock => bail!(
                "another tcpfr-recorder{} is writing to {}: stop it, or give this one another --out",
                if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
                dir.display()
            ),
            std::fs::TryLockError::Error(e) => return Err(e).with_context(|| format!("cannot lock {}", lock_path.display())),
        }
    }
    lock.set_len(0)?;
    writeln!(lock, "{}", std::process::id())?;
    Ok(lock)
}

/// Opens `path` with `O_NOFOLLOW | O_CLOEXEC` added to `flags`: a symlink in its place is
/// an error (`ELOOP`), not followed.
pub fn open_nofollow(path: &Path, flags: i32, mode: u32) -> std::io::Result<File> {
    let acc = flags & libc::O_ACCMODE;
    OpenOptions::new()
        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags((flags & !(libc::O_ACCMODE | libc::O_CREAT)) | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .create(flags & libc::O_CREAT != 0)
        .mode(mode)
        .open(path)
}

/// Root, or the user the recorder runs as.
fn trusted_owner(uid: u32) -> bool {
    // SAFETY: geteuid cannot fail.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

/// Checks that `real` (resolved, absolute) and every directory above it can only be
/// changed by root or us.
pub fn check_trusted(real: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(real)?;
    if !meta.is_dir() {
        bail!("{} is not a directory", real.display());
    }
    if !trusted_owner(meta.uid()) {
        bail!(
            "{} belongs to uid {}, not to root or this recorder's user: whoever owns it could plant links or \
             files that the recorder would then overwrite, delete or upload. Use a directory owned by root \
             (e.g. /var/lib/tcpfr), or remove it and let the recorder create it",
            real.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{} is writable by {} (mode {:o}): others could plant links or files in it. \
             Use a directory only its owner can write (chmod go-w), e.g. /var/lib/tcpfr",
            real.display(),
            if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" },
            meta.mode() & 0o7777
        );
    }
    for dir in real.ancestors().skip(1) {
        let m = std::fs::symlink_metadata(dir)?;
        let writable_by_others = m.mode() & 0o022 != 0;
        let sticky = m.mode() & libc::S_ISVTX != 0;
        if !trusted_owner(m.uid()) || (writable_by_others && !sticky) {
            bail!(
                "{} is inside {}, which {} (mode {:o}, uid {}): whoever can change it could swap the output \
                 directory for a link. Choose a directory whose parents only root can change, e.g. /var/lib/tcpfr",
                real.display(),
                dir.display(),
                if trusted_owner(m.uid()) { "others can write" } else { "belongs to another user" },
                m.mode() & 0o7777,
                m.uid()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_writable_by_others_is_refused_and_its_parents_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("rec");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_trusted(&d.canonicalize().unwrap()).unwrap_err().to_string();
        assert!(e.contains("writable by everyone"), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = check_trusted(&d.canonicalize().unwrap()).unwrap_err().to_string();
        assert!(e.contains("writable by its group"), "{e}");
        // A parent writable by others (not sticky) is refused; sticky (/tmp) is fine.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        let inner = d.join("out");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o757)).unwrap();
        let e = check_trusted(&inner.canonicalize().unwrap()).unwrap_err().to_string();
        assert!(e.contains("others can write"), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1757)).unwrap();
        check_trusted(&inner.canonicalize().unwrap()).unwrap();
    }

    #[test]
    fn the_lock_is_never_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(LOCK)).unwrap();
        let e = OutDir::open(&out, None).err().expect("refused").to_string();
        assert!(e.contains(LOCK), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // A hard link of someone else's file is refused too.
        std::fs::remove_file(out.join(LOCK)).unwrap();
        std::fs::hard_link(&victim, out.join(LOCK)).unwrap();
        let e = OutDir::open(&out, None).err().expect("refused").to_string();
        assert!(e.contains("not a plain file of ours"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
