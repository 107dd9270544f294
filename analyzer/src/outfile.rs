//! Output files that appear whole or not at all (bundles, exports): written to a
//! temporary file beside the target, synced, then renamed into place — never replacing
//! an existing file without `--force`. Mode 0640 like recordings: addresses and process
//! names are for the owner and its group.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

pub struct OutFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    force: bool,
}

impl OutFile {
    /// Checks the target's directory and opens the temporary file.
    pub fn create(path: &Path, force: bool) -> Result<OutFile> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            bail!("cannot write {}: directory {} does not exist", path.display(), dir.display());
        }
        if !force && path.exists() {
            bail!("{} already exists: choose another -o FILE, or pass --force to replace it", path.display());
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        Ok(OutFile { tmp, path: path.to_path_buf(), force })
    }

    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Syncs the data and renames the file into place; returns its size. Dropped
    /// without this, the temporary file is removed.
    pub fn commit(self) -> Result<u64> {
        let path = self.path;
        self.tmp.as_file().sync_all().with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(0o640))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        let persisted = if self.force { self.tmp.persist(&path) } else { self.tmp.persist_noclobber(&path) };
        persisted.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!("{} already exists: choose another -o FILE, or pass --force to replace it", path.display())
            } else {
                anyhow!("cannot write {}: {}", path.display(), e.error)
            }
        })?;
        Ok(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
    }
}
