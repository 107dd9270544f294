//! Shipped stores read over the network (`s3://BUCKET/PREFIX`, FORMAT.md "Shipped
//! recordings"): the store is opened like `tcpfr ship` opens it (tcpfr-ship: credentials,
//! region and endpoint from the environment, never printed), its manifests are listed
//! and read here (hosts, time range and the report's metadata come from them), and the
//! session registers the object store so DataFusion lists `<prefix>/<table>/` itself,
//! prunes host/date/hour directories from paths, and fetches only the byte ranges of
//! the columns and row groups a question needs. Every store is wrapped in [`Counted`],
//! so `tcpfr -v …` tells how much of it a question fetched ([`Reads::report`]).

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};
use tcpfr_schema::shipped;
use tcpfr_schema::manifest::Manifest;
use tcpfr_schema::read::Recording;

/// A store named by URL, with its recordings.
pub struct Remote {
    /// The URL without a trailing slash: `<base>/<table>/` lists a table's files.
    pub base: String,
    /// `s3://BUCKET`: what the object store is registered under in a session.
    pub root: url::Url,
    pub store: Arc<dyn ObjectStore>,
    /// One per manifest, `dir` = the base URL (the manifests' paths are relative to it).
    pub recordings: Vec<Recording>,
}

/// Whether `arg` names a store by URL that [`open`] reads (not a local path or `file://`).
pub fn is_remote(arg: &str) -> bool {
    arg.split_once("://").is_some_and(|(scheme, _)| scheme != "file")
}

/// Opens the store at `url` and reads every manifest in it; the store is counted in
/// `reads` for `-v`.
pub async fn open(url: &str, reads: &Reads) -> Result<Remote> {
    if !url.starts_with("s3://") {
        let scheme = url.split_once("://").map_or(url, |(s, _)| s);
        bail!("{url}: {scheme}:// stores cannot be read; use s3://BUCKET/PREFIX, file:///DIR or a local directory");
    }
    let store = tcpfr_ship::Store::open(url)?;
    let base = url.trim_end_matches('/').to_string();
    let bucket = base["s3://".len()..].split('/').next().unwrap_or_default();
    let root = url::Url::parse(&format!("s3://{bucket}")).map_err(|e| anyhow!("{url}: not a valid URL ({e})"))?;
    let recordings = read_manifests(&store, &base).await?;
    if recordings.is_empty() {
        bail!("{url}: no shipped recordings there (nothing under {}/); check the bucket and prefix, or ship some with `tcpfr ship REC {url}`", shipped::MANIFESTS);
    }
    let total = recordings.iter().flat_map(|r| &r.manifest.files).fold((0, 0), |(n, b), f| (n + 1, b + f.bytes));
    let counted = Arc::new(Counted { inner: store.object_store(), url: base.clone(), total, ..Default::default() });
    reads.0.lock().expect("reads").push(counted.clone());
    Ok(Remote { base, root, store: counted, recordings })
}

/// The stores a run opened, for [`Reads::report`] (`tcpfr -v`).
#[derive(Default)]
pub struct Reads(Mutex<Vec<Arc<Counted>>>);

impl Reads {
    /// One line per store read over the network: bytes and requests fetched by the
    /// questions (the manifests read at opening are not counted) against what its
    /// recordings hold.
    pub fn report(&self) {
        for c in self.0.lock().expect("reads").iter() {
            let objects = c.objects.lock().expect("objects").len();
            eprintln!(
                "tcpfr: {}: fetched {} in {} request(s) from {} object(s); its recordings hold {} in {} file(s)",
                c.url,
                human(c.bytes.load(Ordering::Relaxed)),
                c.requests.load(Ordering::Relaxed),
                objects,
                human(c.total.1),
                c.total.0
            );
        }
    }
}

fn human(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// An object store that counts what is fetched through it (bytes of the ranges
/// returned, GET requests, distinct objects); everything else passes through.
#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn ObjectStore>,
    url: String,
    /// (files, bytes) listed in the store's manifests.
    total: (u64, u64),
    bytes: AtomicU64,
    requests: AtomicU64,
    objects: Mutex<HashSet<Path>>,
}

impl Default for Counted {
    fn default() -> Self {
        Counted {
            inner: Arc::new(object_store::memory::InMemory::new()),
            url: String::new(),
            total: (0, 0),
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            objects: Mutex::new(HashSet::new()),
        }
    }
}

impl Counted {
    fn count(&self, location: &Path, bytes: u64, requests: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.objects.lock().expect("objects").insert(location.clone());
    }
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counted {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        self.count(location, if head { 0 } else { r.range.end - r.range.start }, 1);
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await?;
        self.count(location, r.iter().map(|b| b.len() as u64).sum(), ranges.len() as u64);
        Ok(r)
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Every `<prefix>/_manifests/host=*/<id>.json`, parsed and checked (format, version),
/// sorted by host and recording id.
async fn read_manifests(store: &tcpfr_ship::Store, base: &str) -> Result<Vec<Recording>> {
    let os = store.object_store();
    let prefix = if store.prefix().as_ref().is_empty() {
        Path::from(shipped::MANIFESTS)
    } else {
        Path::from(format!("{}/{}", store.prefix(), shipped::MANIFESTS))
    };
    let unreachable = |e: object_store::Error| {
        anyhow!(
            "cannot read the store {}: {}\n(the S3 client takes AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION and, for S3-compatible servers, AWS_ENDPOINT and AWS_ALLOW_HTTP from the environment)",
            store.url(),
            first_line(&e.to_string())
        )
    };
    let mut keys: Vec<Path> = os
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
        .map_err(unreachable)?
        .into_iter()
        .filter(|k| {
            let name = k.filename().unwrap_or_default();
            name.ends_with(".json") && !name.starts_with('.') && k.as_ref().contains("/host=")
        })
        .collect();
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let shown = PathBuf::from(format!("{base}/{}", key.as_ref().strip_prefix(store.prefix().as_ref()).unwrap_or(key.as_ref()).trim_start_matches('/')));
        let bytes = os.get(&key).await.map_err(unreachable)?.bytes().await.map_err(unreachable)?;
        let manifest = Manifest::parse(&bytes, &shown)?;
        out.push(Recording { dir: PathBuf::from(base), manifest });
    }
    out.sort_by(|a, b| (&a.manifest.host, &a.manifest.recording_id).cmp(&(&b.manifest.host, &b.manifest.recording_id)));
    Ok(out)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
