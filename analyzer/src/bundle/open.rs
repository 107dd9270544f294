//! Opening bundles: the checksum list and the manifests checked, the members extracted
//! into a private temporary directory that lives as long as its [`Resolved`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tcpfr_schema::layout;
use tcpfr_schema::manifest::parse_rfc3339;
use tcpfr_schema::read::{discover, Recording, Source, Verify};

use super::{private_tempdir, SUMS};

/// Paths with the bundles among them extracted: the directories to read, and the
/// extracted bundles, removed when this is dropped.
#[derive(Debug, Default)]
pub struct Resolved {
    pub paths: Vec<PathBuf>,
    bundles: Vec<tempfile::TempDir>,
}

impl Resolved {
    /// Whether `dir` lies in a directory a bundle was extracted to.
    pub fn is_bundled(&self, dir: &Path) -> bool {
        self.bundles.iter().any(|t| dir.starts_with(t.path()))
    }
}

/// Paths with every bundle replaced by the directory it was extracted to.
pub fn resolve(paths: &[PathBuf]) -> Result<Resolved> {
    let mut out = Resolved::default();
    for p in paths {
        if !p.is_file() {
            out.paths.push(p.clone());
            continue;
        }
        let mut head = [0u8; 512];
        let n = read_up_to(p, &mut head).with_context(|| format!("cannot read {}", p.display()))?;
        let is_tar = n == 512 && &head[257..262] == b"ustar";
        if is_tar {
            let dir = extract(p)?;
            out.paths.push(dir.path().to_path_buf());
            out.bundles.push(dir);
        } else if p.extension().is_some_and(|e| e == "tcpfr") {
            bail!(
                "{} is not a tcpfr bundle: it is not a tar archive (damaged, truncated, or another kind of file); make it again with `tcpfr bundle`",
                p.display()
            );
        } else {
            out.paths.push(p.clone());
        }
    }
    Ok(out)
}

fn read_up_to(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks and extracts a bundle; returns the directory holding its recordings.
fn extract(bundle: &Path) -> Result<tempfile::TempDir> {
    let damaged = |why: String| anyhow::anyhow!("bundle {} is damaged: {why}; make it again with `tcpfr bundle`, or ask for a new copy", bundle.display());
    let dir = private_tempdir("tcpfr-open-")?;
    let file = File::open(bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut sums: Option<String> = None;
    let entries = archive.entries().map_err(|e| damaged(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        let kind = entry.header().entry_type();
        let path = entry.path().map_err(|e| damaged(e.to_string()))?.into_owned();
        let rel = path.to_string_lossy().into_owned();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            bail!("{} is not a tcpfr bundle: member {rel} is not a regular file", bundle.display());
        }
        let safe = path.components().all(|c| matches!(c, Component::Normal(_))) && path.components().count() <= 4;
        if !safe {
            bail!("{} is not a tcpfr bundle: member {rel:?} has an unsafe path", bundle.display());
        }
        if rel == SUMS {
            let mut s = String::new();
            entry.read_to_string(&mut s).map_err(|e| damaged(format!("{SUMS}: {e}")))?;
            sums = Some(s);
            continue;
        }
        let dest = dir.path().join(&path);
        if let Some(parent) = dest.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| damaged(format!("member {rel}: {e}")))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry.read(&mut buf).map_err(|e| damaged(format!("member {rel}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).with_context(|| format!("cannot write {}", dest.display()))?;
        }
        hashes.insert(rel, hex::encode(hasher.finalize()));
    }
    let Some(sums) = sums else {
        if hashes.keys().any(|k| k == layout::MANIFEST || k.ends_with("/manifest.json")) {
            return Err(damaged(format!("it has no {SUMS}")));
        }
        bail!("{} is a tar archive but not a tcpfr bundle (no {SUMS}, no manifest.json)", bundle.display());
    };
    // Every member listed exactly once: a line listed twice must not make up for a
    // member that is not listed (and so never checked).
    let mut listed = std::collections::BTreeSet::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let Some((hash, rel)) = line.split_once("  ") else { return Err(damaged(format!("{SUMS} has a malformed line {line:?}"))) };
        match hashes.get(rel) {
            None => return Err(damaged(format!("{rel} is missing (truncated?)"))),
            Some(h) if h != hash => return Err(damaged(format!("{rel} has checksum {h}, expected {hash}"))),
            Some(_) if !listed.insert(rel) => return Err(damaged(format!("{SUMS} lists {rel} twice"))),
            Some(_) => {}
        }
    }
    if listed.len() != hashes.len() {
        let extra: Vec<&String> = hashes.keys().filter(|k| !listed.contains(k.as_str())).collect();
        return Err(damaged(format!("members not in {SUMS}: {extra:?}")));
    }
    if !hashes.keys().any(|k| k.ends_with(layout::MANIFEST)) {
        return Err(damaged("it holds no manifest.json".into()));
    }
    for source in discover(&[dir.path().to_path_buf()]).map_err(|e| damaged(e.to_string()))? {
        if let Source::Recording(rec) = source {
            if let Some(p) = rec.verify(Verify::Full).into_iter().next() {
                return Err(damaged(p.to_string()));
            }
        }
    }
    Ok(dir)
}

/// The time range a bundled recording covers: its manifest's start and end (the
/// window bundled), so rates over a bundle equal those over the original.
pub fn bundled_range(rec: &Recording) -> Option<(i64, i64)> {
    let start = parse_rfc3339(&rec.manifest.start)?;
    let end = parse_rfc3339(rec.manifest.end.as_deref()?)?;
    Some((start, end))
}
