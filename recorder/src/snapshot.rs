//! Incident snapshots: the minutes around a trigger frozen out of the ring.
//!
//! A trigger (SIGUSR1, `tcpfr-recorder snapshot`, a rule) at time t asks for the window
//! [t − before, t + after]. The snapshot is a recording of its own in
//! `DIR/snapshots/<time>-<reason>/`: every closed segment that overlaps the window is
//! hard-linked into it (no copying; the ring deleting its own links later frees
//! nothing the snapshot holds), all tables of a segment together. Segments still being
//! written are linked when they close; once the window's end has passed, the writer
//! rotates at once so the snapshot completes without waiting for the next rotation.
//! A trigger while a snapshot is open extends it instead of making another.
//!
//! Triggers come from the control socket too (any member of `--group`), so nothing a
//! trigger asks for is unbounded: one snapshot's window is at most
//! `--snapshot-max-window` (a longer request, or extensions past it, are cut there),
//! a new snapshot starts at most once per `--snapshot-min-gap` (so a burst of triggers
//! cannot evict every kept snapshot), reasons are kept short, and the open snapshot
//! counts against `--max-snapshot-disk` like the complete ones: it stops taking
//! segments when it alone would exceed it. The oldest complete snapshots go when
//! `--max-snapshots` or `--max-snapshot-disk` is exceeded.
//!
//! A snapshot's files may come from several recordings (a window across a restart);
//! their segments are numbered anew in the snapshot, so (recording, segment) names one
//! set of files there too (`--ship` keys objects by it).
//!
//! Everything here runs on the writer thread, which owns the recording.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tcpfr_schema::layout;
use tcpfr_schema::manifest::{parse_rfc3339, rfc3339, FileEntry, Manifest, SnapshotInfo};
use tcpfr_schema::write::RecordingWriter;

use crate::clock::duration_ns;

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
    /// Longest window of one snapshot, extensions included.
    pub max_window: Duration,
    /// Shortest time between the triggers that start two snapshots.
    pub min_gap: Duration,
}

/// Longest list of reasons kept in one snapshot's manifest, in bytes.
const MAX_REASONS_BYTES: usize = 1024;

struct Open {
    dir: PathBuf,
    manifest: Manifest,
    window: (i64, i64),
    /// Source files already linked.
    linked: HashSet<PathBuf>,
    /// Snapshot segment of each (source recording, source segment).
    segments: HashMap<(PathBuf, u64), u64>,
    /// Bytes linked so far.
    bytes: u64,
    /// The next segment would exceed `--max-snapshot-disk`: complete it now.
    full: bool,
}

impl Open {
    /// Links one file of recording `rec` into the snapshot as part of its `segment`;
    /// whether the manifest gained an entry.
    fn link_file(&mut self, rec: &Path, f: &FileEntry, segment: u64) -> Result<bool> {
        let src = Manifest::file_path(rec, f);
        if self.linked.contains(&src) {
            return Ok(false);
        }
        let name = src.file_name().unwrap_or_default();
        let rel = format!("{}/{}", f.table, name.to_string_lossy());
        let dst = self.dir.join(&f.table).join(name);
        std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dst.parent().expect("a table directory"))?;
        match std::fs::hard_link(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // Evicted meanwhile: the snapshot cannot have it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("cannot link {} into the snapshot", src.display())),
        }
        self.linked.insert(src);
        if self.manifest.files.iter().any(|g| g.path == rel) {
            return Ok(false);
        }
        self.manifest.files.push(FileEntry { path: rel, segment, ..f.clone() });
        Ok(true)
    }
}

/// The snapshots of one output directory.
pub struct Snapshots {
    root: PathBuf,
    out: PathBuf,
    limits: Limits,
    open: Option<Open>,
    /// When the last snapshot was started (its first trigger), UTC ns.
    last_start: Option<i64>,
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
        Snapshots { root, out: out.to_path_buf(), limits, open: None, last_start: None }
    }

    /// A trigger: starts a snapshot, or extends the open one. Returns its directory.
    pub fn trigger(&mut self, req: &Request, current: &RecordingWriter) -> Result<PathBuf> {
        if self.open.is_some() {
            return self.extend(req, current);
        }
        let gap = duration_ns(self.limits.min_gap);
        if let Some(since) = self.last_start.map(|t| req.at_ns.saturating_sub(t)).filter(|since| *since < gap) {
            bail!(
                "a snapshot was started {} ago; the next one can start in {} (--snapshot-min-gap)",
                millis(since),
                millis(gap - since)
            );
        }
        let (start, end) = capped_window(req, self.limits.max_window);
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
        self.last_start = Some(req.at_ns);
        self.open = Some(Open {
            dir: dir.clone(),
            manifest,
            window: (start, end),
            linked: HashSet::new(),
            segments: HashMap::new(),
            bytes: 0,
            full: false,
        });
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

    /// A trigger while a snapshot is open: its window grows, up to `--snapshot-max-window`.
    fn extend(&mut self, req: &Request, current: &RecordingWriter) -> Result<PathBuf> {
        let max = duration_ns(self.limits.max_window);
        let (start, end) = capped_window(req, self.limits.max_window);
        let Some(open) = self.open.as_mut() else { unreachable!("called with a snapshot open") };
        let ws = open.window.0.min(start);
        let we = open.window.1.max(end).min(ws.saturating_add(max));
        if we < end || ws > start {
            tracing::warn!("snapshot {}: window kept within --snapshot-max-window", open.dir.display());
        }
        open.window = (ws, we);
        if let Some(s) = open.manifest.snapshot.as_mut() {
            s.triggers += 1;
            s.window_start = rfc3339(ws);
            s.window_end = rfc3339(we);
            if !s.reason.split("; ").any(|r| r == req.reason) && s.reason.len() + req.reason.len() < MAX_REASONS_BYTES {
                s.reason = format!("{}; {}", s.reason, req.reason);
            }
        }
        let dir = open.dir.clone();
        open.manifest.store(&dir)?;
        self.link(current)?;
        Ok(dir)
    }

    /// Whether the open snapshot's window has ended by `watermark_ns` (all rows up to
    /// it have been handed to the writer), or it is full: then rotate, and call
    /// [`Self::update`].
    pub fn window_passed(&self, watermark_ns: i64) -> bool {
        self.open.as_ref().is_some_and(|o| o.full || watermark_ns >= o.window.1)
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
        self.enforce_limits(0)?;
        Ok(Some(open.dir))
    }

    fn link(&mut self, current: &RecordingWriter) -> Result<()> {
        let dir = current.dir().to_path_buf();
        self.link_from(&dir, current.manifest())
    }

    /// Hard-links every file of `m`'s closed segments that overlap the open window.
    fn link_from(&mut self, rec: &Path, m: &Manifest) -> Result<()> {
        let max_bytes = self.limits.max_bytes;
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
            let key = (rec.to_path_buf(), seg);
            if !open.segments.contains_key(&key) {
                let bytes: u64 = files.iter().map(|f| f.bytes).sum();
                if max_bytes.is_some_and(|max| open.bytes.saturating_add(bytes) > max) {
                    tracing::warn!("snapshot {} is full (--max-snapshot-disk): it ends here", open.dir.display());
                    open.full = true;
                    break;
                }
                open.bytes += bytes;
                let next = open.segments.len() as u64 + 1;
                open.segments.insert(key.clone(), next);
            }
            let segment = open.segments[&key];
            for f in files {
                changed |= open.link_file(rec, f, segment)?;
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
        let open_bytes = self.open.as_ref().map_or(0, |o| o.bytes);
        let mut snaps: Vec<(PathBuf, u64)> = list(&self.root)
            .into_iter()
            .filter(|d| self.open.as_ref().is_none_or(|o| &o.dir != d))
            .map(|d| {
                let bytes = Manifest::load(&d.join(layout::MANIFEST)).map(|m| m.files.iter().map(|f| f.bytes).sum()).unwrap_or(0);
                (d, bytes)
            })
            .collect();
        snaps.sort();
        // The open snapshot counts too; only complete ones can go.
        let mut total: u64 = snaps.iter().map(|s| s.1).sum::<u64>() + open_bytes;
        let mut count = snaps.len() + usize::from(self.open.is_some());
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

use std::os::unix::fs::{DirBuilderExt, MetadataExt};

/// Bytes that only snapshots hold in `out/snapshots` (their files' ring links are
/// gone): what snapshots add to the output directory's disk use, each inode once. A
/// file whose links are all in snapshots is theirs alone.
pub fn snapshot_only_bytes(out: &Path) -> u64 {
    // (dev, ino) → (links found in snapshots, the file's link count, its size)
    let mut inodes: HashMap<(u64, u64), (u64, u64, u64)> = HashMap::new();
    for dir in list(&out.join(layout::SNAPSHOTS)) {
        let Ok(m) = Manifest::load(&dir.join(layout::MANIFEST)) else { continue };
        for f in &m.files {
            let Ok(meta) = std::fs::symlink_metadata(Manifest::file_path(&dir, f)) else { continue };
            if meta.is_file() {
                inodes.entry((meta.dev(), meta.ino())).or_insert((0, meta.nlink(), meta.len())).0 += 1;
            }
        }
    }
    inodes.values().filter(|(found, nlink, _)| found >= nlink).map(|(_, _, len)| len).sum()
}

/// A span of ns as people read it, to the millisecond.
fn millis(ns: i64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis((ns.max(0) / 1_000_000) as u64))
}

/// The window a request asks for, at most `max` long: `before` first, then what is
/// left of `max` for `after`.
fn capped_window(req: &Request, max: Duration) -> (i64, i64) {
    let before = req.before.min(max);
    let after = req.after.min(max.saturating_sub(before));
    (req.at_ns.saturating_sub(duration_ns(before)), req.at_ns.saturating_add(duration_ns(after)))
}

/// Subdirectories of `dir` (not links to directories) that hold a manifest, sorted.
fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = crate::outdir::subdirectories(dir)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p.join(layout::MANIFEST)).is_ok_and(|m| m.is_file()))
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
