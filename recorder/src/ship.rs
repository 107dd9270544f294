//! `--ship URL`: uploads every closed file of the recordings in `--out` into an object
//! store, in the shipped layout of FORMAT.md, with the same code as `tcpfr ship` (the
//! `tcpfr-ship` crate's [`Shipment`]).
//!
//! **Never in the way of recording.** The uploader is a thread of its own with a small
//! tokio runtime. The writer thread only pokes it ([`ShipStats::wake`], a
//! `tokio::sync::Notify`: never blocks, never queues) after a rotation closed files, and
//! tells it which files the flight-recorder ring deleted (a short mutex, no I/O). No
//! channel the writer could fill, nothing the writer waits for.
//!
//! **What to ship: the manifests on disk.** Each round reads the `manifest.json` of every
//! recording in `--out` (re-reading only those whose modification time changed) and
//! sends the files a manifest lists that are not in the store. The manifest is the
//! truth about complete files (it lists a file only once it is closed, and the ring
//! removes a file from it before deleting it), it also covers the recordings of earlier
//! runs (completed by crash recovery before the uploader starts) and files the ring
//! deleted before their turn, and it needs nothing from the writer but the poke; a
//! message per closed file would have to be persisted to survive a restart anyway. The
//! poke makes the lag small (milliseconds after a rotation); a poll every
//! [`POLL`] catches anything else.
//!
//! **Resume.** What is in the store is kept in memory (per recording, a [`Shipment`]),
//! so an old file is never looked up again. After a restart, the store's manifest of
//! each recording (written after its files) says what is there; files it does not list
//! are looked up (HEAD) once before being sent, so a file uploaded just before a kill is
//! not sent twice, and sending one twice would only overwrite an object with the same
//! bytes. The store's manifest is rewritten after each round that shipped something: it
//! only ever lists objects that are in the store, with `end` once the shipment is
//! complete.
//!
//! **Failures.** A round that fails (store unreachable, refused) is counted
//! ([`ShipStats::errors`], the last error's text in `recorder_stats`' note and the log —
//! `object_store` errors carry URLs and keys, never credentials, which come from the
//! environment or the AWS config files) and the next round waits, doubling from 1 s up
//! to `--ship-backoff-max`. Recording goes on meanwhile; the store coming back is
//! caught up with by the next round.
//!
//! **Disk.** Files waiting for upload stay where they are, in the recording, so they
//! count against `--max-disk` like every file there; nothing is copied. The ring still
//! owns local retention: a shipped file stays until the ring deletes it, and a file the
//! ring deletes before it was shipped is counted as lost to shipping
//! (`ship_lost_files`, `tcpfr_ship_lost_files_total`) with a warning — never silently.
//!
//! **Stopping.** The pipeline waits (bounded, [`DRAIN_TIMEOUT`]) for the uploader to
//! ship what is closed before it writes the last `recorder_stats` rows (so they say
//! what was left), and again for the last segment and the final manifest after the
//! recording is closed. Whatever is left is shipped by the next start.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use tcpfr_schema::manifest::{FileEntry, Manifest};
use tcpfr_ship::{Options, Shipment, Store};

/// Rounds without a poke: to pick up whatever was missed (at most this late).
pub const POLL: Duration = Duration::from_secs(10);
/// First wait after a failed round (doubled each time up to `--ship-backoff-max`).
const BACKOFF_START: Duration = Duration::from_secs(1);
/// How long stopping waits for the uploads, each time.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// A file of a recording: (recording id, table, segment).
type FileKey = (String, String, u64);

fn key(recording_id: &str, f: &FileEntry) -> FileKey {
    (recording_id.to_string(), f.table.clone(), f.segment)
}

/// What the uploader did, for `recorder_stats` and the live metrics. Totals since the
/// recorder started; `unshipped_*` is the state at the end of the last round.
#[derive(Default)]
pub struct ShipStats {
    pub shipped_files: AtomicU64,
    pub shipped_bytes: AtomicU64,
    pub unshipped_files: AtomicU64,
    pub unshipped_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub lost_files: AtomicU64,
    pub lost_bytes: AtomicU64,
    /// The last error, until the pipeline puts it in a `recorder_stats` note.
    pub last_error: Mutex<Option<String>>,
    /// When a round last completed without error (UTC ns; 0: never).
    pub last_success_ns: AtomicU64,
    /// Files known to be in the store; files deleted by the ring before they were.
    known: Mutex<Known>,
    wake: tokio::sync::Notify,
    /// Drain requests made / completed (a completed round with nothing left
    /// completes the requests made before it started).
    drain_requested: AtomicU64,
    drain_done: AtomicU64,
    stop: AtomicBool,
    /// The last round failed (the store is down or refuses): stopping does not wait.
    failing: AtomicBool,
}

#[derive(Default)]
struct Known {
    shipped: HashSet<FileKey>,
    /// Lost to the ring before shipping (with their bytes): taken back if the upload
    /// in flight completes after all.
    lost: HashMap<FileKey, u64>,
}

impl ShipStats {
    /// Something changed (files closed): start a round now. Never blocks.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The ring deleted these files of a recording: those not in the store are lost
    /// to shipping (counted, and said in the log).
    pub fn evicted(&self, recording_id: &str, files: &[FileEntry]) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let (mut n, mut bytes) = (0u64, 0u64);
        for f in files {
            let k = key(recording_id, f);
            if !known.shipped.contains(&k) && known.lost.insert(k, f.bytes).is_none() {
                n += 1;
                bytes += f.bytes;
            }
        }
        drop(known);
        if n > 0 {
            self.lost_files.fetch_add(n, Ordering::Relaxed);
            self.lost_bytes.fetch_add(bytes, Ordering::Relaxed);
            tracing::warn!(
                "--max-disk/--max-age deleted {n} file(s) ({bytes} bytes) of recording {recording_id} before they were shipped: \
                 the store cannot keep up or is unreachable (see ship errors); raise --max-disk or fix the store"
            );
        }
    }

    fn mark_shipped(&self, recording_id: &str, f: &FileEntry) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(recording_id, f);
        if let Some(bytes) = known.lost.remove(&k) {
            // Deleted locally while its upload was in flight: it made it after all.
            self.lost_files.fetch_sub(1, Ordering::Relaxed);
            self.lost_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        if known.shipped.insert(k) {
            self.shipped_files.fetch_add(1, Ordering::Relaxed);
            self.shipped_bytes.fetch_add(f.bytes, Ordering::Relaxed);
        }
    }

    fn error(&self, text: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }
}

/// The uploader thread.
pub struct Uploader {
    pub stats: Arc<ShipStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Uploader {
    /// Starts shipping the recordings in `out` (`current` is the one this run writes).
    /// Nothing is sent before the thread runs; an unreachable store is not an error.
    pub fn spawn(store: Store, out: PathBuf, current: PathBuf, backoff_max: Duration) -> Result<Uploader> {
        let stats = Arc::new(ShipStats::default());
        let st = stats.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("tcpfr-ship".into()).spawn(move || {
            crate::privileges::confine_thread(crate::privileges::Role::Worker);
            let mut u = Rounds { store, out, current, stats: st, recs: HashMap::new() };
            rt.block_on(u.run(backoff_max));
        })?;
        Ok(Uploader { stats, thread: Some(thread) })
    }

    /// Waits (at most `timeout`) until everything closed by now is in the store and
    /// the manifests there are current; `false` on timeout, or at once while the store
    /// is failing (one more attempt is made, not waited for long).
    pub fn drain(&self, timeout: Duration) -> bool {
        let want = self.stats.drain_requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.wake();
        let deadline = Instant::now() + timeout;
        let give_up = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if self.stats.failing.load(Ordering::SeqCst) && Instant::now() > give_up {
                return false;
            }
            if self.stats.drain_done.load(Ordering::SeqCst) >= want {
                return true;
            }
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops after the round under way (not waiting for it if it hangs: the process
    /// exits anyway, and the next start resumes).
    pub fn stop(mut self) {
        self.stats.stop.store(true, Ordering::SeqCst);
        self.stats.wake();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// A recording in `--out` and what of it is in the store.
struct Tracked {
    /// Modification time of its manifest when last read.
    mtime: Option<SystemTime>,
    manifest: Manifest,
    /// `None` until the store's manifest could be read (resume).
    shipment: Option<Shipment>,
    /// Everything listed is shipped and the store's manifest is current.
    done: bool,
}

struct Rounds {
    store: Store,
    out: PathBuf,
    current: PathBuf,
    stats: Arc<ShipStats>,
    recs: HashMap<PathBuf, Tracked>,
}

impl Rounds {
    async fn run(&mut self, backoff_max: Duration) {
        let mut backoff = BACKOFF_START;
        let mut failing = false;
        loop {
            let requested = self.stats.drain_requested.load(Ordering::SeqCst);
            match self.round(failing).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("shipping to {} works again", self.store.url());
                        failing = false;
                        self.stats.failing.store(false, Ordering::SeqCst);
                    }
                    backoff = BACKOFF_START;
                    self.stats.last_success_ns.store(crate::clock::realtime_ns().max(0) as u64, Ordering::Relaxed);
                    self.stats.drain_done.fetch_max(requested, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!("shipping to {} failed (retrying in {backoff:?}; recording goes on): {e}", self.store.url());
                    failing = true;
                    self.stats.failing.store(true, Ordering::SeqCst);
                }
            }
            if self.stats.stop.load(Ordering::SeqCst) {
                return;
            }
            let wait = if failing { backoff } else { POLL };
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.stats.wake.notified() => {
                        // After a failure, only a stop or a drain cuts the wait short.
                        let drain = self.stats.drain_requested.load(Ordering::SeqCst) > self.stats.drain_done.load(Ordering::SeqCst);
                        if !failing || drain || self.stats.stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                }
            }
            if self.stats.stop.load(Ordering::SeqCst) {
                return;
            }
            if failing {
                backoff = (backoff * 2).min(backoff_max.max(BACKOFF_START));
            }
        }
    }

    /// Recording directories in `--out` (not snapshots), oldest first.
    fn recordings(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = crate::outdir::subdirectories(&self.out)
            .into_iter()
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.') && n != tcpfr_schema::layout::SNAPSHOTS)
                    && p.join(tcpfr_schema::layout::MANIFEST).is_file()
            })
            .collect();
        dirs.sort();
        dirs
    }

    /// One round over every recording; the first error (after trying them all). After
    /// a failed round, one cheap request first tells whether the store is back, so a
    /// long outage costs a request per round, not one per waiting file.
    async fn round(&mut self, after_failure: bool) -> Result<(), String> {
        let dirs = self.recordings();
        self.recs.retain(|d, _| dirs.contains(d));
        self.scan(&dirs);
        self.count_unshipped();
        if after_failure {
            if let Err(e) = self.store.check().await {
                let e = crate::error_text(&e);
                self.stats.error(e.clone());
                return Err(e);
            }
        }
        let mut first_error: Option<String> = None;
        // No retries of single files here: the next round (after a backoff) is the retry.
        let opts = Options { retries: 0, backoff: Duration::from_millis(500) };
        for dir in dirs {
            let Some(t) = self.recs.get_mut(&dir) else { continue };
            if t.done {
                continue;
            }
            if t.shipment.is_none() {
                match Shipment::resume(&self.store, &t.manifest, true).await {
                    Ok(s) => {
                        for f in s.in_store() {
                            self.stats.mark_shipped(&t.manifest.recording_id, f);
                        }
                        t.shipment = Some(s);
                    }
                    Err(e) => {
                        let e = crate::error_text(&e);
                        self.stats.error(e.clone());
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            let shipment = t.shipment.as_mut().expect("resumed");
            let m = &t.manifest;
            if shipment.pending(m).is_empty() && shipment.manifest_current(m) {
                t.done = true;
                continue;
            }
            match shipment.ship(&self.store, &dir, m, &opts, true, &|_| {}).await {
                Ok(round) => {
                    for f in round.uploaded.iter().chain(&round.found) {
                        self.stats.mark_shipped(&m.recording_id, f);
                    }
                    for (f, why) in &round.gone {
                        tracing::debug!("not shipped, deleted locally first: {} ({why})", f.path);
                    }
                    for (_, e) in &round.failed {
                        self.stats.error(e.clone());
                    }
                    if let Some(e) = &round.manifest_error {
                        self.stats.error(e.clone());
                    }
                    match round.failed.first().map(|(_, e)| e.clone()).or(round.manifest_error) {
                        Some(e) => {
                            first_error.get_or_insert(e);
                        }
                        None => t.done = round.gone.is_empty() && shipment.pending(m).is_empty(),
                    }
                    if !round.uploaded.is_empty() {
                        tracing::debug!("shipped {} file(s) of {}", round.uploaded.len(), dir.display());
                    }
                }
                Err(e) => {
                    let e = crate::error_text(&e);
                    self.stats.error(e.clone());
                    first_error.get_or_insert(e);
                }
            }
        }
        self.count_unshipped();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads the manifests that changed since the last round (no network).
    fn scan(&mut self, dirs: &[PathBuf]) {
        for dir in dirs {
            let path = dir.join(tcpfr_schema::layout::MANIFEST);
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let fresh = match self.recs.get(dir) {
                Some(t) => t.mtime != mtime || mtime.is_none(),
                None => true,
            };
            if !fresh {
                continue;
            }
            let m = match Manifest::load(&path) {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!("not shipping {}: {e}", dir.display());
                    continue;
                }
            };
            // An unfinished recording of another run belongs to crash recovery (done
            // before we start); it is shipped once completed.
            if m.end.is_none() && *dir != self.current {
                continue;
            }
            match self.recs.get_mut(dir) {
                Some(t) => {
                    t.mtime = mtime;
                    t.manifest = m;
                    t.done = false;
                }
                None => {
                    let shipment = (*dir == self.current).then(|| Shipment::new_recording(&m));
                    self.recs.insert(dir.clone(), Tracked { mtime, manifest: m, shipment, done: false });
                }
            }
        }
    }

    /// Closed files listed locally and not in the store.
    fn count_unshipped(&self) {
        let (mut n, mut bytes) = (0u64, 0u64);
        let known = self.stats.known.lock().unwrap_or_else(|e| e.into_inner());
        for t in self.recs.values() {
            for f in &t.manifest.files {
                if !known.shipped.contains(&key(&t.manifest.recording_id, f)) {
                    n += 1;
                    bytes += f.bytes;
                }
            }
        }
        drop(known);
        self.stats.unshipped_files.store(n, Ordering::Relaxed);
        self.stats.unshipped_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// `--ship` pointing into `--out` would ship the store into itself.
pub fn check_not_inside(store: &Store, out: &Path) -> Result<()> {
    if let (Some(dir), Ok(out)) = (store.local_dir(), out.canonicalize()) {
        if dir.starts_with(&out) {
            anyhow::bail!("--ship {}: is inside --out {}; ship to a directory outside it", store.url(), out.display());
        }
    }
    Ok(())
}
