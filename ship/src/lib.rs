//! Shipping recordings into an object store, in the partitioned layout of FORMAT.md
//! ("Shipped recordings"; keys from `tcpfr_schema::layout::shipped`).
//!
//! One code path for `tcpfr ship REC… URL` (a recording made earlier) and, later, the
//! recorder's `--ship URL` (each file as it closes):
//!
//! * only the complete files a recording's manifest lists are sent — never files being
//!   written, crash sidecars, `.recovering` files, `quarantine/` or `snapshots/`;
//! * idempotent and resumable: an object already in the store with the file's size is
//!   skipped (object stores write whole objects, so a present object is a complete
//!   one), so a re-run after an interruption sends only what is missing;
//! * transient errors are retried with exponential backoff (on top of the S3 client's
//!   own retries of single requests);
//! * the manifest goes last, after every object it lists, so a reader that sees a
//!   manifest finds all its files.
//!
//! Stores are [`object_store`] (the copy DataFusion links): `file:///abs/dir` or a plain
//! path (created if missing), `s3://bucket/prefix` (credentials, region and
//! `AWS_ENDPOINT`/`AWS_ALLOW_HTTP` for S3-compatible servers from the environment, via
//! `AmazonS3Builder::from_env`; they are never printed).

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tcpfr_schema::layout::shipped;
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
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{url}: no bucket (expected s3://BUCKET[/PREFIX])");
            }
            let store = AmazonS3Builder::from_env()
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
        ship_one(store, rec, opts, &done, progress, &mut summary).await?;
        summary.recordings += 1;
    }
    Ok(summary)
}

async fn ship_one(
    store: &Store,
    rec: &Recording,
    opts: &Options,
    done: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
    summary: &mut Summary,
) -> Result<()> {
    let m = &rec.manifest;
    if tcpfr_schema::read::is_shipped_store(&rec.dir) {
        bail!("{} is already in the shipped layout (ship the original recordings)", rec.dir.display());
    }
    let results: Vec<(bool, u64)> = stream::iter(m.files.iter().map(|entry| async move {
        let r = ship_file(store, rec, entry, opts).await;
        progress(done.fetch_add(entry.bytes, Ordering::Relaxed) + entry.bytes);
        r.map(|uploaded| (uploaded, entry.bytes))
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect()
    .await
    .with_context(|| format!("shipping {} (host {}) to {}; what was sent stays, run again to complete it", rec.dir.display(), m.host, store.url))?;
    for (uploaded, bytes) in results {
        if uploaded {
            summary.uploaded += 1;
            summary.uploaded_bytes += bytes;
        } else {
            summary.skipped += 1;
            summary.skipped_bytes += bytes;
        }
    }
    // Last: the manifest, now that every file it lists is in the store.
    let shipped_manifest = shipped::manifest_for_store(m);
    let mut json = serde_json_bytes(&shipped_manifest);
    json.push(b'\n');
    let key = store.key(&shipped::manifest_key(m))?;
    let unchanged = match store.store.get(&key).await {
        Ok(r) => r.bytes().await.map(|b| b.as_ref() == json.as_slice()).unwrap_or(false),
        Err(_) => false,
    };
    if !unchanged {
        with_retries(opts, &key, || {
            let payload = PutPayload::from(json.clone());
            async { store.store.put(&key, payload).await.map(|_| ()) }
        })
        .await
        .with_context(|| format!("writing the manifest {key} of {}", rec.dir.display()))?;
        summary.manifests_written += 1;
    }
    Ok(())
}

fn serde_json_bytes(m: &Manifest) -> Vec<u8> {
    serde_json::to_vec_pretty(m).expect("manifest serializes")
}

/// Uploads one file unless an object of its size is there; `true` if it was uploaded.
async fn ship_file(store: &Store, rec: &Recording, entry: &FileEntry, opts: &Options) -> Result<bool> {
    let key = store.key(&shipped::data_key(&rec.manifest, entry))?;
    match store.store.head(&key).await {
        Ok(meta) if meta.size == entry.bytes => return Ok(false),
        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(anyhow!("cannot look up {key} in {}: {}", store.url, short(&e))),
    }
    let local = Manifest::file_path(&rec.dir, entry);
    let size = std::fs::metadata(&local).with_context(|| format!("cannot read {}", local.display()))?.len();
    if size != entry.bytes {
        bail!(
            "{} has {size} bytes but the manifest says {}: the recording is damaged (see `tcpfr verify {}`)",
            local.display(),
            entry.bytes,
            rec.dir.display()
        );
    }
    with_retries(opts, &key, || upload(store.store.clone(), key.clone(), local.clone(), size))
        .await
        .with_context(|| format!("uploading {} to {key}", local.display()))?;
    tracing::debug!(file = %local.display(), %key, size, "uploaded");
    Ok(true)
}

async fn upload(store: Arc<dyn ObjectStore>, key: Path, local: PathBuf, size: u64) -> object_store::Result<()> {
    let io = |e: std::io::Error| object_store::Error::Generic { store: "local file", source: Box::new(e) };
    if size <= SINGLE_PUT_MAX {
        let bytes = tokio::fs::read(&local).await.map_err(io)?;
        store.put(&key, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(&local).await.map_err(io)?;
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
