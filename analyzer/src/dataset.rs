//! What the user pointed us at: recordings (one, or a directory of many hosts) and
//! single Parquet files, and bundles (`*.tcpfr`, see `bundle`), checked against their manifests before any query runs.
//! Recordings shipped by `tcpfr ship` (a directory, `file://` or `s3://` URL in the
//! partitioned layout of FORMAT.md) are read too: `session` then registers each table
//! over the store's prefix with `host`/`date`/`hour` as partition columns (`store` reads
//! the manifests of stores named by URL).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use tcpfr_schema::manifest::{parse_rfc3339, Manifest};
use tcpfr_schema::read::{discover_all, is_shipped_store, read_footer, Recording, Source, Verify};
use tcpfr_schema::TABLES;

use crate::env::Env;

/// Files of every table across all sources, and what we know about them.
#[derive(Debug, Default)]
pub struct Dataset {
    pub recordings: Vec<Recording>,
    /// Table name → files (time-ordered within each source).
    pub files: BTreeMap<&'static str, Vec<PathBuf>>,
    /// Earliest and latest `time` of any row, when known (manifests, file statistics).
    pub time_range: Option<(i64, i64)>,
    /// Stores in the shipped layout whose recordings are in `recordings` (and, for
    /// local ones, `files`); tables are read from these prefixes.
    pub shipped: Vec<Shipped>,
    /// Parquet files given alone (not a recording's).
    pub lone_files: Vec<PathBuf>,
    /// Bundles given, extracted for as long as the dataset lives.
    bundles: crate::bundle::Resolved,
}

/// A store in the shipped layout.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// Its URL or directory, no trailing slash: `<base>/<table>/` holds a table.
    pub base: String,
    /// The directory of a local store.
    pub local: Option<PathBuf>,
    /// A store read over the network, and the URL (`s3://BUCKET`) to register it under.
    pub remote: Option<(url::Url, Arc<dyn object_store::ObjectStore>)>,
}

impl Shipped {
    fn local(dir: &std::path::Path) -> Shipped {
        Shipped { base: dir.to_string_lossy().trim_end_matches('/').to_string(), local: Some(dir.to_path_buf()), remote: None }
    }
}

impl Dataset {
    /// Resolves paths and checks every recording's files exist with their recorded
    /// sizes (a cheap check; `tcpfr verify` does the full one).
    pub async fn open(env: &Env, paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            bail!("no recording given: name a recording directory, a directory of recordings, or a Parquet file");
        }
        let mut ds = Dataset::empty();
        // Stores named by URL: their manifests are all we read now.
        let (urls, paths): (Vec<&PathBuf>, Vec<&PathBuf>) = paths.iter().partition(|p| crate::store::is_remote(&p.to_string_lossy()));
        for url in urls {
            let remote = crate::store::open(&url.to_string_lossy(), &env.reads).await?;
            for rec in remote.recordings {
                ds.extend_range(manifest_range(&rec.manifest));
                ds.recordings.push(rec);
            }
            ds.shipped.push(Shipped { base: remote.base, local: None, remote: Some((remote.root, remote.store)) });
        }
        if paths.is_empty() {
            return Ok(ds);
        }
        let paths = store_paths(&paths.into_iter().cloned().collect::<Vec<_>>())?;
        require_exist(&paths)?;
        // Bundles (`tcpfr bundle`) are checked and extracted, then read as recordings.
        ds.bundles = crate::bundle::resolve(&paths)?;
        let found = discover_all(&ds.bundles.paths)?;
        for e in &found.skipped {
            eprintln!("tcpfr: warning: skipped a recording that cannot be read: {e} (`tcpfr verify` checks it; tcpfr-recorder repairs a damaged manifest of a recording in its --out directory when it starts)");
        }
        for source in found.sources {
            match source {
                Source::Recording(rec) => {
                    let problems = rec.verify(Verify::Sizes);
                    if !problems.is_empty() {
                        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                        bail!(
                            "recording {} is damaged:\n{}\n(run `tcpfr verify {}` for a full check)",
                            rec.dir.display(),
                            list.join("\n"),
                            rec.dir.display()
                        );
                    }
                    for t in TABLES {
                        ds.files.get_mut(t).expect("all tables").extend(rec.paths(t));
                    }
                    if is_shipped_store(&rec.dir) && !ds.shipped.iter().any(|s| s.local.as_ref() == Some(&rec.dir)) {
                        ds.shipped.push(Shipped::local(&rec.dir));
                    }
                    if ds.bundles.is_bundled(&rec.dir) {
                        ds.extend_range(crate::bundle::bundled_range(&rec).or_else(|| manifest_range(&rec.manifest)));
                    } else {
                        ds.extend_range(manifest_range(&rec.manifest));
                    }
                    ds.recordings.push(rec);
                }
                Source::File { path, table } => {
                    ds.lone_files.push(path.clone());
                    let Some(slot) = TABLES.iter().find(|t| **t == table) else { continue };
                    if let Ok(md) = read_footer(&path) {
                        ds.extend_range(footer_range(&md));
                    }
                    ds.files.get_mut(slot).expect("all tables").push(path);
                }
            }
        }
        Ok(ds)
    }

    /// No recordings: every table empty (SQL over captures alone, `--pcap`).
    pub fn empty() -> Self {
        let mut ds = Dataset::default();
        for t in TABLES {
            ds.files.insert(t, Vec::new());
        }
        ds
    }

    fn extend_range(&mut self, r: Option<(i64, i64)>) {
        if let Some((a, b)) = r {
            self.time_range = Some(match self.time_range {
                Some((x, y)) => (x.min(a), y.max(b)),
                None => (a, b),
            });
        }
    }

    pub fn hosts(&self) -> Vec<String> {
        let mut h: Vec<String> = self.recordings.iter().map(|r| r.manifest.host.clone()).collect();
        h.sort();
        h.dedup();
        h
    }

    pub fn file_count(&self) -> usize {
        self.files.values().map(|v| v.len()).sum()
    }

    /// Fails for data read over the network, for commands that need the files here.
    pub fn require_local(&self, what: &str) -> Result<()> {
        if let Some(s) = self.shipped.iter().find(|s| s.remote.is_some()) {
            bail!("{what} needs the files on this machine; {} is a remote store: copy the data first (e.g. with `aws s3 sync`) and name the directory", s.base);
        }
        Ok(())
    }
}

/// Local recordings named on the command line exist; else what to give instead.
pub fn require_exist(paths: &[PathBuf]) -> Result<()> {
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        bail!(
            "{} does not exist: give a recording directory (tcpfr-recorder --out makes one per run), a directory \
             of recordings, a Parquet file of one, a bundle (FILE.tcpfr) or a store (s3://BUCKET/PREFIX)",
            missing.display()
        );
    }
    Ok(())
}

/// `file://` URLs as local paths (other URLs are read by `store`).
fn store_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            let s = p.to_string_lossy();
            if s.starts_with("file:") {
                let url = url::Url::parse(&s).map_err(|e| anyhow::anyhow!("{s}: not a valid file:// URL ({e}); write file:///absolute/dir"))?;
                return url.to_file_path().map_err(|_| anyhow::anyhow!("{s}: not a local directory; write file:///absolute/dir"));
            }
            Ok(p.clone())
        })
        .collect()
}

fn manifest_range(m: &Manifest) -> Option<(i64, i64)> {
    let lo = m.files.iter().filter_map(|f| f.time_min.as_deref().and_then(parse_rfc3339)).min();
    let hi = m.files.iter().filter_map(|f| f.time_max.as_deref().and_then(parse_rfc3339)).max();
    let start = parse_rfc3339(&m.start);
    let end = m.end.as_deref().and_then(parse_rfc3339);
    Some((lo.or(start)?, hi.or(end).or(start)?))
}

/// Time range of a lone file from its `time` column statistics.
fn footer_range(md: &parquet::file::metadata::ParquetMetaData) -> Option<(i64, i64)> {
    let idx = md.file_metadata().schema_descr().columns().iter().position(|c| c.name() == "time")?;
    let mut range: Option<(i64, i64)> = None;
    for rg in md.row_groups() {
        if let Some(parquet::file::statistics::Statistics::Int64(s)) = rg.column(idx).statistics() {
            if let (Some(a), Some(b)) = (s.min_opt(), s.max_opt()) {
                range = Some(range.map_or((*a, *b), |(x, y)| (x.min(*a), y.max(*b))));
            }
        }
    }
    range
}
