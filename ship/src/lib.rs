//! Shipping recordings into an object store, in the partitioned layout of FORMAT.md
//! ("Shipped recordings"; keys from `tcpfr_schema::shipped`).
//!
//! One code path, [`Shipment`], for `tcpfr ship REC… URL` (a recording made earlier: one
//! round per recording) and the recorder's `--ship URL` (a round whenever files have
//! closed; what is in the store is kept in memory, so old files are not asked about
//! again, and after a restart the store's manifest says what is there):
//!
//! * only the complete files a recording's manifest lists are sent — never files being
//!   written, crash sidecars, `.recovering` files, `quarantine/` or `snapshots/`;
//! * idempotent and resumable: an object already in the store with the file's size is
//!   skipped (object stores write whole objects, so a present object is a complete
//!   one), so a re-run after an interruption sends only what is missing;
//! * transient errors are retried with exponential backoff (on top of the S3 client's
//!   own retries of single requests);
//! * the manifest goes last, after every object it lists, so a reader that sees a
//!   manifest finds all its files; rewritten as more files arrive, it lists only what is
//!   in the store, and has `end` only when the whole (closed) recording is there.
//!
//! Stores are [`object_store`] (the copy DataFusion links): `file:///abs/dir` or a plain
//! path (created if missing), `s3://bucket/prefix` (credentials, region and
//! `AWS_ENDPOINT`/`AWS_ALLOW_HTTP` for S3-compatible servers from the environment, via
//! `AmazonS3Builder::from_env`, then from the profile of the AWS shared files
//! ([`profile`]), then the instance's role; they are never printed).

pub mod profile;

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::stream::{self, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tcpfr_schema::shipped;
use tcpfr_schema::manifest::{FileEntry, Manifest};
use tcpfr_schema::read::Recording;

/// Files up to this size go in one request; bigger ones as a multipart upload.
const SINGLE_PUT_MAX: u64 = 32 << 20;
/// Part size of multipart uploads (S3 wants at least 5 MiB).
const PART_SIZE: usize = 16 << 20;
/// Files uploaded at the same time.
const CONCURRENCY: usize = 4;

/// Where recordings go: a store and the prefix inside it.
#[derive(Debug, Clone)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The URL as given, for messages (URLs carry no credentials here).
    url: String,
    /// For local stores: the directory (to read the shipped layout back).
    local_dir: Option<PathBuf>,
}

impl Store {
    /// Opens `url`: `file:///abs/dir`, a plain local path, or `s3://bucket[/prefix]`.
    /// Local directories are created if missing. Nothing is sent yet; see [`Store::check`].
    pub fn open(url: &str) -> Result<Store> {
        if redact_url(url) != url {
            bail!(
                "{}: credentials do not go in the URL (they would end up in logs and manifests); \
                 give them in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                redact_url(url)
            );
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{url}: no bucket (expected s3://BUCKET[/PREFIX])");
            }
            let mut builder = AmazonS3Builder::from_env();
            let profile = profile::from_files().with_context(|| format!("{url}: AWS shared config"))?;
            if let Some((id, secret, token)) = profile.keys {
                builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = token {
                    builder = builder.with_token(t);
                }
            }
            if let Some(region) = profile.region {
                builder = builder.with_region(region);
            }
            if let Some(endpoint) = profile.endpoint {
                // An http:// endpoint configured on purpose (an S3-compatible server).
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                builder = builder.with_endpoint(endpoint);
            }
            let store = builder
                .with_bucket_name(bucket)
                // Single requests: a few quick retries, so an unreachable endpoint is
                // reported in seconds; whole files are retried again by `ship`.
                .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() })
                .build()
                .map_err(|e| anyhow!("{url}: cannot set up the S3 client: {e}"))?;
            return Ok(Store { store: Arc::new(store), prefix: parse_prefix(prefix, url)?, url: url.to_string(), local_dir: None });
        }
        let dir = if url.starts_with("file:") {
            let parsed = url::Url::parse(url).map_err(|e| anyhow!("{url}: not a valid file:// URL ({e}); write file:///absolute/dir"))?;
            if parsed.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                bail!("{url}: file URLs name a local directory (file:///absolute/dir), not a host");
            }
            parsed.to_file_path().map_err(|_| anyhow!("{url}: not a local directory; write file:///absolute/dir"))?
        } else if let Some((scheme, _)) = url.split_once("://") {
            bail!("{url}: unsupported store {scheme}:// (use s3://BUCKET/PREFIX, file:///DIR or a local path)");
        } else {
            PathBuf::from(url)
        };
        if dir.exists() && !dir.is_dir() {
            bail!("{}: exists and is not a directory", dir.display());
        }
        if dir.join(tcpfr_schema::layout::MANIFEST).exists() {
            bail!("{}: is a recording, not a store (the last argument is where to ship to)", dir.display());
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize().with_context(|| format!("cannot open {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
        Ok(Store { store: Arc::new(store), prefix: Path::default(), url: url.to_string(), local_dir: Some(dir) })
    }

    /// A store made elsewhere (tests, the recorder) with keys below `prefix`.
    pub fn from_parts(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Result<Store> {
        Ok(Store { store, prefix: parse_prefix(prefix, url)?, url: url.to_string(), local_dir: None })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local directory of a `file://` or path store.
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local_dir.as_deref()
    }

    /// The object store and the prefix of keys inside it, for readers of the store.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// One cheap request, to tell "cannot reach / not allowed" before any upload.
    pub async fn check(&self) -> Result<()> {
        let probe = self.key(shipped::MANIFESTS)?;
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow!("cannot reach the store {}: {}", self.url, short(&e))),
        }
    }

    fn key(&self, relative: &str) -> Result<Path> {
        let full = if self.prefix.as_ref().is_empty() { relative.to_string() } else { format!("{}/{relative}", self.prefix) };
        // `parse`, not `from`: keys hold `%XX` escapes of host names that must stay as they are.
        Path::parse(&full).map_err(|e| anyhow!("bad object key {full:?}: {e}"))
    }
}

/// `url` without a `user[:password]@` part (for messages and records; the stores here
/// take credentials from the environment, but a URL may still carry some).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn parse_prefix(prefix: &str, url: &str) -> Result<Path> {
    Path::parse(prefix.trim_matches('/')).map_err(|e| anyhow!("{url}: bad prefix: {e}"))
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Options {
    /// Further attempts of a file after a transient failure.
    pub retries: u32,
    /// Wait before the first retry; doubled each time (capped at 30 s).
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { retries: 5, backoff: Duration::from_millis(500) }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub recordings: usize,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Already in the store with the right size.
    pub skipped: usize,
    pub skipped_bytes: u64,
    /// Manifests written (new or changed); unchanged ones are not rewritten.
    pub manifests_written: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recording(s): {} file(s) uploaded ({} bytes), {} already there ({} bytes), {} manifest(s) written",
            self.recordings, self.uploaded, self.uploaded_bytes, self.skipped, self.skipped_bytes, self.manifests_written
        )
    }
}

/// Total bytes of the files of `recs` (for a progress bar).
pub fn total_bytes(recs: &[Recording]) -> u64 {
    recs.iter().flat_map(|r| r.manifest.files.iter()).map(|f| f.bytes).sum()
}

/// Ships recordings one after another; `progress` gets the bytes done so far (uploaded
/// or found already there). Stops at the first file that cannot be sent: what was sent
/// stays, the recording's manifest is not written, and a re-run completes it.
pub async fn ship(store: &Store, recs: &[Recording], opts: &Options, progress: &(dyn Fn(u64) + Sync)) -> Result<Summary> {
    let mut summary = Summary::default();
    let done = AtomicU64::new(0);
    for rec in recs {
        if tcpfr_schema::read::is_shipped_store(&rec.dir) {
            bail!("{} is already in the shipped layout (ship the original recordings)", rec.dir.display());
        }
        let m = &rec.manifest;
        // Every file is looked up: the store's manifest is not taken on trust here.
        let mut shipment = Shipment::resume(store, m, false).await?;
        let round = shipment.ship(store, &rec.dir, m, opts, false, &|bytes| progress(done.fetch_add(bytes, Ordering::Relaxed) + bytes)).await;
        let round = round.with_context(|| {
            format!("shipping {} (host {}) to {}; what was sent stays, run again to complete it", rec.dir.display(), m.host, store.url)
        })?;
        if let Some((entry, _)) = round.gone.first() {
            bail!("{}: listed in the manifest but missing: the recording is damaged (see `tcpfr verify {}`)",
                Manifest::file_path(&rec.dir, entry).display(), rec.dir.display());
        }
        summary.uploaded += round.uploaded.len();
        summary.uploaded_bytes += round.uploaded.iter().map(|f| f.bytes).sum::<u64>();
        summary.skipped += round.found.len();
        summary.skipped_bytes += round.found.iter().map(|f| f.bytes).sum::<u64>();
        summary.manifests_written += usize::from(round.manifest_written);
        summary.recordings += 1;
    }
    Ok(summary)
}

/// What the store holds of one recording, as far as this process knows, and the way to
/// add to it — shared by `tcpfr ship` (one round per recording) and the recorder's
/// `--ship` (a round whenever files have closed). Knowing what is there avoids asking
/// the store about every old file again each round.
#[derive(Debug, Clone)]
pub struct Shipment {
    /// Entries (of the local manifest) whose objects are in the store.
    in_store: Vec<FileEntry>,
    /// Whether a file not known to be there must be looked up (HEAD) before it is sent:
    /// an earlier run may have uploaded it and stopped before writing the manifest.
    look_up: bool,
    /// The store's manifest as last written or read (not rewritten while unchanged).
    written: Option<Vec<u8>>,
}

/// What one [`Shipment::ship`] round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Uploaded now.
    pub uploaded: Vec<FileEntry>,
    /// Already in the store (looked up).
    pub found: Vec<FileEntry>,
    /// Listed locally but gone from the disk before they could be read (deleted by the
    /// recorder's ring in the meantime); not an error, not shipped.
    pub gone: Vec<(FileEntry, String)>,
    /// Files that could not be sent, with the error (after the retries of [`Options`]).
    pub failed: Vec<(FileEntry, String)>,
    /// The store's manifest was (re)written.
    pub manifest_written: bool,
    /// Writing the manifest failed (the files stay; the next round writes it).
    pub manifest_error: Option<String>,
}

fn same(a: &FileEntry, b: &FileEntry) -> bool {
    a.table == b.table && a.segment == b.segment && a.bytes == b.bytes && a.sha256 == b.sha256
}

impl Shipment {
    /// Nothing known: every file is looked up before it is sent (`tcpfr ship`).
    pub fn unknown(_m: &Manifest) -> Shipment {
        Shipment { in_store: Vec::new(), look_up: true, written: None }
    }

    /// A recording this process is making: none of its files can be in the store yet,
    /// so none is looked up.
    pub fn new_recording(_m: &Manifest) -> Shipment {
        Shipment { in_store: Vec::new(), look_up: false, written: None }
    }

    /// A recording that may be in the store already (after a restart, or `tcpfr ship`
    /// run again): with `trust`, the files the store's manifest of the recording lists
    /// are taken as there (it is written after its files) and only the others are
    /// looked up; without, every file is. One request; fails when the store cannot be
    /// reached.
    pub async fn resume(store: &Store, m: &Manifest, trust: bool) -> Result<Shipment> {
        let key = store.key(&shipped::manifest_key(m))?;
        let bytes = match store.store.get(&key).await {
            Ok(r) => r.bytes().await.map_err(|e| anyhow!("cannot read {key} in {}: {}", store.url, short(&e)))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(Shipment::unknown(m)),
            Err(e) => bail!("cannot read {key} in {}: {}", store.url, short(&e)),
        };
        let in_store = match Manifest::parse(&bytes, std::path::Path::new(key.as_ref())) {
            Ok(shipped) if trust && shipped.recording_id == m.recording_id => shipped.files,
            // Unreadable: start over (objects present are found by their look-ups).
            _ => Vec::new(),
        };
        Ok(Shipment { in_store, look_up: true, written: Some(bytes.to_vec()) })
    }

    /// Entries known to be in the store.
    pub fn in_store(&self) -> &[FileEntry] {
        &self.in_store
    }

    pub fn is_shipped(&self, e: &FileEntry) -> bool {
        self.in_store.iter().any(|s| same(s, e))
    }

    /// Files of `m` not known to be in the store.
    pub fn pending<'a>(&self, m: &'a Manifest) -> Vec<&'a FileEntry> {
        m.files.iter().filter(|f| !self.is_shipped(f)).collect()
    }

    /// Whether the store's manifest says what `m` would make it say.
    pub fn manifest_current(&self, m: &Manifest) -> bool {
        self.written.as_deref() == Some(self.store_manifest(m).as_slice())
    }

    /// The store's manifest: `m`'s, listing the files in the store (also those the
    /// recorder's ring has deleted locally since), with `end` only once every file of
    /// a closed recording is there — a reader can tell a complete shipment.
    fn store_manifest(&self, m: &Manifest) -> Vec<u8> {
        let mut out = m.clone();
        let complete = m.files.iter().all(|f| self.is_shipped(f));
        if !complete {
            out.end = None;
        }
        let mut files = self.in_store.clone();
        let order = |t: &str| tcpfr_schema::TABLES.iter().position(|x| *x == t).unwrap_or(usize::MAX);
        files.sort_by(|a, b| (a.segment, order(&a.table), &a.table).cmp(&(b.segment, order(&b.table), &b.table)));
        out.files = files;
        let mut json = serde_json_bytes(&shipped::manifest_for_store(&out));
        json.push(b'\n');
        json
    }

    /// Sends `m`'s files that are not in the store (from the recording in `dir`), then
    /// writes the store's manifest, listing only what is in the store. A file that
    /// cannot be sent (after [`Options`]' retries) is an error unless `partial`; with
    /// `partial` (the recorder) it is reported in the round and what was sent is listed.
    /// `progress` gets the bytes of each file done (sent or found).
    pub async fn ship(
        &mut self,
        store: &Store,
        dir: &FsPath,
        m: &Manifest,
        opts: &Options,
        partial: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Round> {
        let mut round = Round::default();
        let look_up = self.look_up;
        let pending = self.pending(m);
        let results: Vec<(FileEntry, Result<Outcome>)> = stream::iter(pending.into_iter().map(|entry| async move {
            let r = ship_file(store, dir, m, entry, opts, look_up).await;
            if r.is_ok() {
                progress(entry.bytes);
            }
            (entry.clone(), r)
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        for (entry, r) in results {
            match r {
                Ok(Outcome::Uploaded) => {
                    self.in_store.push(entry.clone());
                    round.uploaded.push(entry);
                }
                Ok(Outcome::Found) => {
                    self.in_store.push(entry.clone());
                    round.found.push(entry);
                }
                Ok(Outcome::Gone(why)) => round.gone.push((entry, why)),
                Err(e) => round.failed.push((entry, format!("{e:#}"))),
            }
        }
        if let Some((_, e)) = round.failed.first() {
            if !partial {
                bail!("{e}");
            }
        }
        // Last: the manifest, listing only files now in the store.
        let json = self.store_manifest(m);
        if self.written.as_deref() != Some(json.as_slice()) {
            let key = store.key(&shipped::manifest_key(m))?;
            let put = with_retries(opts, &key, || {
                let payload = PutPayload::from(json.clone());
                async { store.store.put(&key, payload).await.map(|_| ()) }
            })
            .await;
            match put {
                Ok(()) => {
                    self.written = Some(json);
                    round.manifest_written = true;
                }
                Err(e) if partial => round.manifest_error = Some(format!("writing the manifest {key}: {e:#}")),
                Err(e) => return Err(e.context(format!("writing the manifest {key} of {}", dir.display()))),
            }
        }
        Ok(round)
    }
}

fn serde_json_bytes(m: &Manifest) -> Vec<u8> {
    serde_json::to_vec_pretty(m).expect("manifest serializes")
}

/// What became of one file.
enum Outcome {
    Uploaded,
    /// An object of its size was there.
    Found,
    /// The local file is gone (why).
    Gone(String),
}

/// Uploads one file unless (with `look_up`) an object of its size is there.
async fn ship_file(store: &Store, dir: &FsPath, m: &Manifest, entry: &FileEntry, opts: &Options, look_up: bool) -> Result<Outcome> {
    let key = store.key(&shipped::data_key(m, entry))?;
    if look_up {
        match store.store.head(&key).await {
            Ok(meta) if meta.size == entry.bytes => return Ok(Outcome::Found),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow!("cannot look up {key} in {}: {}", store.url, short(&e))),
        }
    }
    let local = Manifest::file_path(dir, entry);
    let size = match std::fs::metadata(&local) {
        Ok(md) => md.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Gone(format!("{}: {e}", local.display()))),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", local.display())),
    };
    if size != entry.bytes {
        bail!(
            "{} has {size} bytes but the manifest says {}: the recording is damaged (see `tcpfr verify {}`)",
            local.display(),
            entry.bytes,
            dir.display()
        );
    }
    let r = with_retries(opts, &key, || upload(store.store.clone(), key.clone(), local.clone(), size)).await;
    if r.is_err() && !local.exists() {
        return Ok(Outcome::Gone(format!("{} was deleted while it was uploaded", local.display())));
    }
    r.with_context(|| format!("uploading {} to {key}", local.display()))?;
    tracing::debug!(file = %local.display(), %key, size, "uploaded");
    Ok(Outcome::Uploaded)
}

async fn upload(store: Arc<dyn ObjectStore>, key: Path, local: PathBuf, size: u64) -> object_store::Result<()> {
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| object_store::Error::Generic { store: "local file", source: Box::new(e) };
    // The recorder uploads as root: a link where a recording's file should be is not
    // followed (it could name any file on the host).
    let mut file = tokio::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&local).await.map_err(io)?;
    if size <= SINGLE_PUT_MAX {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).await.map_err(io)?;
        store.put(&key, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let mut writer = WriteMultipart::new_with_chunk_size(store.put_multipart(&key).await?, PART_SIZE);
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(io(e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(CONCURRENCY).await {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await?;
    Ok(())
}

/// Errors worth another attempt: network trouble, server errors, timeouts (all
/// `Generic` in object_store), not "no such bucket", "not allowed" or bad requests.
fn transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
        && !short(e).to_ascii_lowercase().contains("no such bucket")
}

async fn with_retries<F, Fut>(opts: &Options, key: &Path, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<()>>,
{
    let mut wait = opts.backoff;
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < opts.retries && transient(&e) => {
                attempt += 1;
                tracing::warn!(%key, attempt, error = %short(&e), "upload failed, retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                let tries = if attempt > 0 { format!(" (after {} attempts)", attempt + 1) } else { String::new() };
                return Err(anyhow!("{}{tries}", short(&e)));
            }
        }
    }
}

/// An object_store error in one line, its causes included.
fn short(e: &object_store::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}
