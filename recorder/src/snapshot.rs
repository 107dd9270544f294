//! Incident snapshots: the minutes around a trigger frozen out of the ring.
//!
//! A trigger (SIGUSR1, `tcpfr-recorder snapshot`, a rule) at time t asks for the window
//! [t − before, t + after]. The snapshot is a recording of its own in
//! `DIR/snapshots/<time>-<reason>/`: every closed segment that overlaps the window is
//! hard-linked into it (no copying; the ring deleting its own links later frees
//! nothing the snapshot holds), all tables of a segment together. Segments still being
//! written are linked when they close; once the window's end has passed, the writer
//! rotates at once so the snapshot completes without waiting for the next rotation.
//! A trigger while a snapshot is open extends it instead of making another. The oldest
//! complete snapshots go when `--max-snapshots` or `--max-snapshot-disk` is exceeded.
//!
//! Everything here runs on the writer thread, which owns the recording.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tcpfr_schema::layout;
use tcpfr_schema::manifest::{parse_rfc3339, rfc3339, FileEntry, Manifest, SnapshotInfo};
use tcpfr_schema::write::RecordingWriter;

/// One trigger.
#[derive(Debug, Clone)]
pub struct Request {
    pub at_ns: i64,
    pub before: Duration,
    pub after: Duration,
    pub reason: String,
    /// `SIGUSR1`, `control socket`, `rule NAME`.
    pub source: String,
}

/// Limits on what snapshots keep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_count: usize,
    pub max_bytes: Option<u64>,
}

struct Open {
    dir: PathBuf,
    manifest: Manifest,
    window: (i64, i64),
    /// Source files already linked.
    linked: HashSet<PathBuf>,
}

/// The snapshots of one output directory.
pub struct Snapshots {
    root: PathBuf,
    out: PathBuf,
    limits: Limits,
    open: Option<Open>,
}

impl Snapshots {
    /// Closes snapshots left open by a recorder that did not stop cleanly.
    pub fn new(out: &Path, limits: Limits) -> Snapshots {
        let root = out.join(layout::SNAPSHOTS);
        for dir in list(&root) {
            let path = dir.join(layout::MANIFEST);
            if let Ok(mut m) = Manifest::load(&path) {
                if m.end.is_none() {
                    m.end = Some(last_time(&m).map(rfc3339).unwrap_or_else(|| m.start.clone()));
                    if let Some(s) = m.snapshot.as_mut() {
                        s.cut_short = true;
                    }
                    let _ = m.store(&dir);
                }
            }
        }
        Snapshots { root, out: out.to_path_buf(), limits, open: None }
    }

    /// A trigger: starts a snapshot, or extends the open one. Returns its directory.
    pub fn trigger(&mut self, req: &Request, current: &RecordingWriter) -> Result<PathBuf> {
        let start = req.at_ns - req.before.as_nanos() as i64;
        let end = req.at_ns + req.after.as_nanos() as i64;
        if let Some(open) = self.open.as_mut() {
            open.window = (open.window.0.min(start), open.window.1.max(end));
            if let Some(s) = open.manifest.snapshot.as_mut() {
                s.triggers += 1;
                s.window_start = rfc3339(open.window.0);
                s.window_end = rfc3339(open.window.1);
                if !s.reason.split("; ").any(|r| r == req.reason) {
                    s.reason = format!("{}; {}", s.reason, req.reason);
                }
            }
            let dir = open.dir.clone();
            open.manifest.store(&dir)?;
            self.link(current)?;
            return Ok(dir);
        }
        self.enforce_limits(1)?;
        let name = format!(
            "{}-{}",
            chrono::DateTime::from_timestamp_nanos(req.at_ns).format("%Y%m%dT%H%M%SZ"),
            slug(&req.reason)
        );
        let dir = (1..)
            .map(|n| self.root.join(if n == 1 { name.clone() } else { format!("{name}-{n}") }))
            .find(|d| !d.exists())
            .expect("a free name");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)
            .with_context(|| format!("cannot create snapshot directory {}", dir.display()))?;
        let src = current.manifest();
        let mut manifest = Manifest::new(
            uuid::Uuid::now_v7().to_string(),
            src.host.clone(),
            start,
            src.clock.clone(),
            src.recorder.clone(),
        );
        manifest.kernel = src.kernel.clone();
        manifest.boot_id = src.boot_id.clone();
        manifest.snapshot = Some(SnapshotInfo {
            trigger: rfc3339(req.at_ns),
            reason: req.reason.clone(),
            source: req.source.clone(),
            triggers: 1,
            window_start: rfc3339(start),
            window_end: rfc3339(end),
            cut_short: false,
        });
        manifest.store(&dir)?;
        self.open = Some(Open { dir: dir.clone(), manifest, window: (start, end), linked: HashSet::new() });
        // Earlier recordings in the directory may hold the start of the window.
        for rec in list(&self.out) {
            if rec != current.dir() {
                if let Ok(m) = Manifest::load(&rec.join(layout::MANIFEST)) {
                    self.link_from(&rec, &m)?;
                }
            }
        }
        self.link(current)?;
        Ok(dir)
    }

    /// Whether the open snapshot's window has ended by `watermark_ns` (all rows up to
    /// it have been handed to the writer): then rotate, and call [`Self::update`].
    pub fn window_passed(&self, watermark_ns: i64) -> bool {
        self.open.as_ref().is_some_and(|o| watermark_ns >= o.window.1)
    }

    /// After a rotation: links newly closed segments; completes the snapshot once its
    /// window has passed.
    pub fn update(&mut self, current: &RecordingWriter, watermark_ns: i64) -> Result<Option<PathBuf>> {
        if self.open.is_none() {
            return Ok(None);
        }
        self.link(current)?;
        if self.window_passed(watermark_ns) {
            return self.complete(false);
        }
        Ok(None)
    }

    /// The recorder stops: link what there is and complete the open snapshot.
    pub fn finish(&mut self, final_manifest: &Manifest, dir: &Path) -> Result<Option<PathBuf>> {
        if self.open.is_none() {
            return Ok(None);
        }
        self.link_from(dir, final_manifest)?;
        let cut = self.open.as_ref().is_some_and(|o| last_time(final_manifest).is_none_or(|t| t < o.window.1));
        self.complete(cut)
    }

    fn complete(&mut self, cut_short: bool) -> Result<Option<PathBuf>> {
        let Some(mut open) = self.open.take() else { return Ok(None) };
        let end = last_time(&open.manifest).map_or(open.window.1, |t| t.min(open.window.1).max(open.window.0));
        open.manifest.end = Some(rfc3339(if cut_short { end } else { open.window.1 }));
        if let Some(s) = open.manifest.snapshot.as_mut() {
            s.cut_short = cut_short;
        }
        open.manifest.store(&open.dir)?;
        tracing::info!("snapshot complete: {} ({} files)", open.dir.display(), open.manifest.files.len());
        Ok(Some(open.dir))
    }

    fn link(&mut self, current: &RecordingWriter) -> Result<()> {
        let dir = current.dir().to_path_buf();
        self.link_from(&dir, current.manifest())
    }

    /// Hard-links every file of `m`'s closed segments that overlap the open window.
    fn link_from(&mut self, rec: &Path, m: &Manifest) -> Result<()> {
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        let (ws, we) = open.window;
        let mut changed = false;
        let mut segments: Vec<u64> = m.files.iter().map(|f| f.segment).collect();
        segments.sort();
        segments.dedup();
        for seg in segments {
            let files: Vec<&FileEntry> = m.files.iter().filter(|f| f.segment == seg).collect();
            let lo = files.iter().filter_map(|f| f.time_min.as_deref().and_then(parse_rfc3339)).min();
            let hi = files.iter().filter_map(|f| f.time_max.as_deref().and_then(parse_rfc3339)).max();
            let (Some(lo), Some(hi)) = (lo, hi) else { continue };
            if hi < ws || lo > we {
                continue;
            }
            for f in files {
                let src = Manifest::file_path(rec, f);
                if open.linked.contains(&src) {
                    continue;
                }
                let name = src.file_name().unwrap_or_default();
                let rel = format!("{}/{}", f.table, name.to_string_lossy());
                let dst = open.dir.join(&f.table).join(name);
                std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dst.parent().unwrap())?;
                match std::fs::hard_link(&src, &dst) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    // Evicted meanwhile: the snapshot cannot have it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot link {} into the snapshot", src.display()))
                    }
                }
                open.linked.insert(src);
                if !open.manifest.files.iter().any(|g| g.path == rel) {
                    open.manifest.files.push(FileEntry { path: rel, ..f.clone() });
                    changed = true;
                }
            }
        }
        if changed {
            open.manifest.files.sort_by(|a, b| (&a.time_min, &a.table).cmp(&(&b.time_min, &b.table)));
            open.manifest.store(&open.dir)?;
        }
        Ok(())
    }

    /// Deletes the oldest complete snapshots so that `room` more fit the count limit,
    /// and the total stays within the size limit.
    fn enforce_limits(&mut self, room: usize) -> Result<()> {
        let mut snaps: Vec<(PathBuf, u64)> = list(&self.root)
            .into_iter()
            .filter(|d| self.open.as_ref().is_none_or(|o| &o.dir != d))
            .map(|d| {
                let bytes = Manifest::load(&d.join(layout::MANIFEST)).map(|m| m.files.iter().map(|f| f.bytes).sum()).unwrap_or(0);
                (d, bytes)
            })
            .collect();
        snaps.sort();
        let mut total: u64 = snaps.iter().map(|s| s.1).sum();
        let mut count = snaps.len();
        for (dir, bytes) in snaps {
            let over_count = count + room > self.limits.max_count;
            let over_size = self.limits.max_bytes.is_some_and(|m| total > m);
            if !over_count && !over_size {
                break;
            }
            // The manifest first: a half-deleted snapshot is no longer a recording.
            let _ = std::fs::remove_file(dir.join(layout::MANIFEST));
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot delete old snapshot {}", dir.display()))?;
            tracing::info!("deleted old snapshot {}", dir.display());
            total -= bytes;
            count -= 1;
        }
        Ok(())
    }
}

use std::os::unix::fs::DirBuilderExt;

/// Subdirectories of `dir` that hold a manifest, sorted.
fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(layout::MANIFEST).is_file())
        .collect();
    v.sort();
    v
}

fn last_time(m: &Manifest) -> Option<i64> {
    m.files.iter().filter_map(|f| f.time_max.as_deref().and_then(parse_rfc3339)).max()
}

/// A reason as a directory name: letters, digits and `-`, at most 40 characters.
fn slug(reason: &str) -> String {
    let mut s: String = reason
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let s: String = s.chars().take(40).collect();
    if s.is_empty() { "snapshot".into() } else { s.trim_end_matches('-').to_string() }
}
