//! Flight-recorder ring: keeps the output directory within `--max-disk` and
//! `--max-age` by deleting the oldest closed segments.
//!
//! Runs on the writer thread after every rotation (and once at start). The unit is a
//! segment — one file per table covering the same span — so the tables stay aligned in
//! time. Candidates are the closed segments of the recording being written and of every
//! earlier recording in the directory (earlier runs count against the same budget), the
//! oldest (by last row) first; the open segment is never touched. Each recording's
//! manifest is rewritten before its files go, so it never lists a missing file; an
//! earlier recording whose last segment goes is removed altogether, manifest first
//! (which needs no free space: the ring must work on a full disk). Snapshots live in
//! `snapshots/` and are not candidates, but the bytes only they still hold count
//! against `--max-disk` (they have their own `--max-snapshot-disk`, within it).
//!
//! With `--ship`, files waiting for upload are ordinary files of their recording and
//! count like any other; the ring does not wait for them (recording comes first). The
//! files deleted are returned ([`Evicted::files`]) so the uploader can count those it
//! had not shipped as lost, with a warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tcpfr_schema::manifest::{parse_rfc3339, FileEntry, Manifest};
use tcpfr_schema::write::{remove_segment, RecordingWriter};

/// The limits; both optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }
}

/// What one [`enforce`] did.
#[derive(Debug, Default, Clone)]
pub struct Evicted {
    pub segments: u64,
    pub bytes: u64,
    /// Bytes in use afterwards (closed files of all recordings + files being written).
    pub in_use: u64,
    /// The files deleted, with their recording's id (for `--ship`'s lost-to-shipping count).
    pub files: Vec<(String, FileEntry)>,
}

struct Candidate {
    /// `None`: the recording being written.
    dir: Option<PathBuf>,
    segment: u64,
    bytes: u64,
    last_ns: i64,
}

/// Deletes the oldest closed segments under `out` until the limits hold at `now_ns`.
pub fn enforce(out: &Path, current: &mut RecordingWriter, r: &Retention, now_ns: i64) -> anyhow::Result<Evicted> {
    let mut cands = segments_of(None, current.manifest());
    let mut others: Vec<(PathBuf, Manifest)> = Vec::new();
    for dir in crate::outdir::subdirectories(out) {
        if dir == current.dir() {
            continue;
        }
        // Only closed recordings: an unfinished one belongs to crash recovery.
        let Ok(m) = Manifest::load(&dir.join(tcpfr_schema::layout::MANIFEST)) else { continue };
        if m.end.is_none() {
            continue;
        }
        cands.extend(segments_of(Some(&dir), &m));
        others.push((dir, m));
    }
    cands.sort_by_key(|c| (c.last_ns, c.segment));
    // Snapshots' files are hard links: they cost nothing until the ring deletes its
    // link, then they are the snapshots' alone and count here, or --max-disk would
    // not bound the directory.
    let mut in_use: u64 = cands.iter().map(|c| c.bytes).sum::<u64>()
        + unlisted_bytes(current.dir(), current.manifest())
        + crate::snapshot::snapshot_only_bytes(out);
    let oldest_allowed = r.max_age.map(|a| now_ns.saturating_sub(crate::clock::duration_ns(a)));
    let mut done = Evicted::default();
    for c in cands {
        let over_size = r.max_bytes.is_some_and(|m| in_use > m);
        let too_old = oldest_allowed.is_some_and(|t| c.last_ns < t);
        if !over_size && !too_old {
            break;
        }
        let of_segment = |m: &Manifest| m.files.iter().filter(|f| f.segment == c.segment).map(|f| (m.recording_id.clone(), f.clone())).collect::<Vec<_>>();
        let freed = match &c.dir {
            None => {
                done.files.extend(of_segment(current.manifest()));
                current.remove_segment(c.segment)?
            }
            Some(dir) => {
                let (_, m) = others.iter_mut().find(|(d, _)| d == dir).expect("listed above");
                done.files.extend(of_segment(m));
                if m.files.iter().all(|f| f.segment == c.segment) {
                    // Its last segment: unlinking the manifest needs no space, where
                    // rewriting it would fail on the full disk the ring must heal.
                    remove_recording(dir, m)?
                } else {
                    remove_segment(dir, m, c.segment)?
                }
            }
        };
        // Only what was freed: a segment a snapshot also links stays on disk (and from
        // now on counts as the snapshot's).
        in_use = in_use.saturating_sub(freed);
        done.segments += 1;
        done.bytes += freed;
    }
    done.in_use = in_use;
    Ok(done)
}

/// Closed segments of a recording: bytes and last row time (the recording's start for
/// segments without rows).
fn segments_of(dir: Option<&Path>, m: &Manifest) -> Vec<Candidate> {
    let start = parse_rfc3339(&m.start).unwrap_or(0);
    let mut out: Vec<Candidate> = Vec::new();
    for f in &m.files {
        let last = f.time_max.as_deref().and_then(parse_rfc3339).unwrap_or(start);
        match out.iter_mut().find(|c| c.segment == f.segment) {
            Some(c) => {
                c.bytes += f.bytes;
                c.last_ns = c.last_ns.max(last);
            }
            None => out.push(Candidate { dir: dir.map(Path::to_path_buf), segment: f.segment, bytes: f.bytes, last_ns: last }),
        }
    }
    out
}

/// Bytes on disk of a recording's files that its manifest does not list: the files
/// being written and their crash-recovery sidecars (the write-ahead log can be a good
/// part of a small budget).
fn unlisted_bytes(dir: &Path, m: &Manifest) -> u64 {
    tcpfr_schema::read::unlisted_files(dir, m).iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum()
}

/// Removes an earlier recording whose last segment is due: the manifest first (so it
/// is no longer a recording), then what remains. Returns the bytes freed by its listed
/// files (a file a snapshot also links frees nothing).
fn remove_recording(dir: &Path, m: &mut Manifest) -> anyhow::Result<u64> {
    let freed = m
        .files
        .iter()
        .filter(|f| {
            let p = Manifest::file_path(dir, f);
            std::fs::symlink_metadata(p).is_ok_and(|md| std::os::unix::fs::MetadataExt::nlink(&md) <= 1)
        })
        .map(|f| f.bytes)
        .sum();
    m.files.clear();
    std::fs::remove_file(dir.join(tcpfr_schema::layout::MANIFEST))?;
    std::fs::remove_dir_all(dir)?;
    Ok(freed)
}
