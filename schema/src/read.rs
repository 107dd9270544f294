//! Opening recordings: find them (a recording, a directory of many, single files),
//! check them against their manifests, and report every problem precisely.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};
use crate::layout;
use crate::shipped;
use crate::manifest::{check_version, FileEntry, Manifest};
use crate::table::Table;

/// A recording directory with its (valid, supported) manifest.
#[derive(Debug, Clone)]
pub struct Recording {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// How thoroughly [`Recording::verify`] checks files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Every listed file exists with the listed size (cheap: one `stat` per file).
    Sizes,
    /// Also: checksums, Parquet footers, tcpfr metadata and schemas (reads every byte).
    Full,
}

impl Recording {
    /// Opens a recording directory: reads and checks `manifest.json` (format, version).
    pub fn open(dir: &Path) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|e| FormatError::io(dir, e))?;
        if !meta.is_dir() {
            return Err(FormatError::NotARecording {
                path: dir.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        let manifest = Manifest::load(&dir.join(layout::MANIFEST))?;
        Ok(Recording {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Absolute paths of the complete files of `table`, in time order.
    pub fn paths(&self, table: &str) -> Vec<PathBuf> {
        self.manifest
            .files_of(table)
            .map(|f| Manifest::file_path(&self.dir, f))
            .collect()
    }

    /// Checks every file the manifest lists; returns all problems found (empty = fine).
    pub fn verify(&self, level: Verify) -> Vec<FormatError> {
        let mut problems = Vec::new();
        for entry in &self.manifest.files {
            if let Err(e) = self.verify_file(entry, level) {
                problems.push(e);
            }
        }
        problems
    }

    fn verify_file(&self, entry: &FileEntry, level: Verify) -> Result<()> {
        let path = Manifest::file_path(&self.dir, entry);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FormatError::MissingFile { path }),
            Err(e) => return Err(FormatError::io(&path, e)),
        };
        if meta.len() != entry.bytes {
            return Err(FormatError::SizeMismatch {
                path,
                expected: entry.bytes,
                actual: meta.len(),
            });
        }
        if level == Verify::Full {
            let actual = sha256_file(&path)?;
            if actual != entry.sha256 {
                return Err(FormatError::ChecksumMismatch {
                    path,
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
            let info = inspect_parquet(&path)?;
            if info.table != entry.table {
                return Err(FormatError::Manifest {
                    path: self.dir.join(layout::MANIFEST),
                    reason: format!("lists {} as table {}, but the file says {}", entry.path, entry.table, info.table),
                });
            }
            if info.rows != entry.rows {
                return Err(FormatError::Manifest {
                    path: self.dir.join(layout::MANIFEST),
                    reason: format!("lists {} with {} rows, but the file has {}", entry.path, entry.rows, info.rows),
                });
            }
        }
        Ok(())
    }

    /// Files under the table directories that the manifest does not list: files still
    /// being written (`.inprogress`), crash leftovers, or foreign files. Not errors —
    /// readers ignore them — but worth telling the user about.
    pub fn unlisted_files(&self) -> Vec<PathBuf> {
        unlisted_files(&self.dir, &self.manifest)
    }

    /// Reads a whole table into rows (tests, small recordings; the analyzer streams).
    pub fn read_table<T: Table>(&self) -> Result<Vec<T>> {
        let mut rows = Vec::new();
        for path in self.paths(T::NAME) {
            rows.extend(read_file::<T>(&path)?);
        }
        Ok(rows)
    }
}

/// What a tcpfr Parquet file says about itself.
#[derive(Debug, Clone)]
pub struct ParquetFileInfo {
    pub table: String,
    pub recording_id: Option<String>,
    pub host: Option<String>,
    pub format_version: String,
    pub rows: u64,
}

/// Opens a Parquet file's footer and checks that it is a tcpfr file of a readable
/// version whose schema has every column of its table (a nullable column may be
/// missing: columns added in a minor version are nullable, and read as null from files
/// of an earlier one).
pub fn inspect_parquet(path: &Path) -> Result<ParquetFileInfo> {
    let md = read_footer(path)?;
    let kv = md.file_metadata().key_value_metadata();
    let get = |k: &str| kv.and_then(|kv| kv.iter().find(|e| e.key == k)).and_then(|e| e.value.clone());
    let Some(table) = get(layout::kv::TABLE) else {
        return Err(FormatError::ForeignParquet {
            path: path.to_path_buf(),
            reason: format!("no {} metadata", layout::kv::TABLE),
        });
    };
    let version = get(layout::kv::FORMAT_VERSION).ok_or_else(|| FormatError::ForeignParquet {
        path: path.to_path_buf(),
        reason: format!("no {} metadata", layout::kv::FORMAT_VERSION),
    })?;
    check_version(&version, path)?;
    let Some(expected) = crate::schema_of(&table) else {
        return Err(FormatError::ForeignParquet {
            path: path.to_path_buf(),
            reason: format!("unknown table {table:?} (known: {})", crate::TABLES.join(", ")),
        });
    };
    let actual = parquet::arrow::parquet_to_arrow_schema(
        md.file_metadata().schema_descr(),
        md.file_metadata().key_value_metadata(),
    )
    .map_err(|e| FormatError::BadParquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for field in expected.fields() {
        match actual.field_with_name(field.name()) {
            Ok(f) if f.data_type() == field.data_type() => {}
            Ok(f) => {
                return Err(FormatError::Schema(format!(
                    "{}: column {}.{} has type {}, expected {}",
                    path.display(),
                    table,
                    field.name(),
                    f.data_type(),
                    field.data_type()
                )))
            }
            Err(_) if field.is_nullable() => {}
            Err(_) => {
                return Err(FormatError::Schema(format!(
                    "{}: column {}.{} is missing",
                    path.display(),
                    table,
                    field.name()
                )))
            }
        }
    }
    Ok(ParquetFileInfo {
        table,
        recording_id: get(layout::kv::RECORDING_ID),
        host: get(layout::kv::HOST),
        format_version: version,
        rows: md.file_metadata().num_rows().max(0) as u64,
    })
}

/// [`Recording::unlisted_files`] for a recording directory and its manifest (also one
/// being written).
pub fn unlisted_files(dir: &Path, manifest: &Manifest) -> Vec<PathBuf> {
    let listed: std::collections::HashSet<PathBuf> = manifest.files.iter().map(|f| Manifest::file_path(dir, f)).collect();
    let mut out = Vec::new();
    for table in crate::TABLES {
        let Ok(rd) = std::fs::read_dir(dir.join(table)) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() && !listed.contains(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Reads a Parquet footer, turning every failure into "not a readable Parquet file".
pub fn read_footer(path: &Path) -> Result<ParquetMetaData> {
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| FormatError::BadParquet {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Reads one tcpfr Parquet file of table `T` into rows.
pub fn read_file<T: Table>(path: &Path) -> Result<Vec<T>> {
    let info = inspect_parquet(path)?;
    if info.table != T::NAME {
        return Err(FormatError::Schema(format!(
            "{}: holds table {}, not {}",
            path.display(),
            info.table,
            T::NAME
        )));
    }
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let bad = |e: parquet::errors::ParquetError| FormatError::BadParquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?.build().map_err(bad)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| FormatError::BadParquet {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        rows.extend(T::from_batch(&batch)?);
    }
    Ok(rows)
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| FormatError::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

/// Something the user pointed us at.
#[derive(Debug, Clone)]
pub enum Source {
    Recording(Recording),
    /// A single tcpfr Parquet file given directly.
    File { path: PathBuf, table: String },
}

/// How deep [`discover`] looks below a directory for recordings.
const MAX_DEPTH: usize = 6;

/// What [`discover_all`] found.
#[derive(Debug, Default)]
pub struct Discovered {
    pub sources: Vec<Source>,
    /// Recordings found below a directory given that cannot be opened (a damaged
    /// manifest, another format version), each with why: skipped.
    pub skipped: Vec<FormatError>,
}

/// [`discover_all`], failing on the first recording that cannot be opened (for
/// commands that must have every one, like checking a bundle).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Source>> {
    let found = discover_all(paths)?;
    match found.skipped.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(found.sources),
    }
}

/// Resolves user-given paths: a recording directory, a directory holding recordings
/// (of many hosts) at any depth, a single tcpfr Parquet file, or a `manifest.json`.
/// A directory that is a recording is not searched further, and `snapshots/`
/// directories are skipped: snapshots are recordings of their own, hard links of data
/// that is also in the ring, reached by naming them.
///
/// One unreadable recording does not make a directory of many unreadable: recordings
/// found below a directory that cannot be opened are returned in
/// [`Discovered::skipped`] (the caller names them) — unless none below it can, which is
/// an error, as is a path given that is itself an unreadable recording or file.
pub fn discover_all(paths: &[PathBuf]) -> Result<Discovered> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| FormatError::io(path, e))?;
        if meta.is_file() {
            if path.file_name().is_some_and(|n| n == layout::MANIFEST) {
                out.push(Source::Recording(Recording::open(path.parent().unwrap_or(Path::new(".")))?));
            } else {
                let info = inspect_parquet(path)?;
                out.push(Source::File {
                    path: path.clone(),
                    table: info.table,
                });
            }
            continue;
        }
        let (before, skipped_before) = (out.len(), skipped.len());
        find_recordings(path, 0, &mut out, &mut skipped)?;
        if out.len() == before && skipped.len() > skipped_before {
            let mut bad = skipped.split_off(skipped_before);
            return Err(if bad.len() == 1 {
                bad.remove(0)
            } else {
                FormatError::NotARecording {
                    path: path.clone(),
                    reason: format!("none of the {} recordings in it can be read; the first: {}", bad.len(), bad[0]),
                }
            });
        }
        if out.len() == before {
            return Err(FormatError::NotARecording {
                path: path.clone(),
                reason: format!(
                    "no {} in it or in its subdirectories, and no {}/ of shipped recordings (a recording is a directory made by tcpfr-recorder --out DIR; `tcpfr ship` makes the other)",
                    layout::MANIFEST,
                    shipped::MANIFESTS
                ),
            });
        }
    }
    Ok(Discovered { sources: out, skipped })
}

fn find_recordings(dir: &Path, depth: usize, out: &mut Vec<Source>, skipped: &mut Vec<FormatError>) -> Result<()> {
    if is_shipped_store(dir) {
        out.extend(open_shipped(dir)?.into_iter().map(Source::Recording));
        return Ok(());
    }
    if dir.join(layout::MANIFEST).is_file() {
        match Recording::open(dir) {
            Ok(rec) => out.push(Source::Recording(rec)),
            // Named by the user: say so. One of many below: the others still count.
            Err(e) if depth == 0 => return Err(e),
            Err(e) => skipped.push(e),
        }
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| FormatError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_none_or(|n| n != layout::SNAPSHOTS))
        .collect();
    subdirs.sort();
    for sub in subdirs {
        find_recordings(&sub, depth + 1, out, skipped)?;
    }
    Ok(())
}

/// Whether `dir` is the prefix of shipped recordings (`tcpfr ship`): it has a
/// `_manifests/` directory.
pub fn is_shipped_store(dir: &Path) -> bool {
    dir.join(shipped::MANIFESTS).is_dir()
}

/// The recordings shipped under `prefix` (a local directory in the shipped layout),
/// one per manifest in `_manifests/host=*/`, each with `dir` = `prefix` (the shipped
/// manifests' paths are relative to it). Sorted by host, then recording id.
pub fn open_shipped(prefix: &Path) -> Result<Vec<Recording>> {
    let manifests = prefix.join(shipped::MANIFESTS);
    let mut paths = Vec::new();
    for host in std::fs::read_dir(&manifests).map_err(|e| FormatError::io(&manifests, e))?.flatten() {
        let hp = host.path();
        if !hp.is_dir() || !host.file_name().to_string_lossy().starts_with("host=") {
            continue;
        }
        for m in std::fs::read_dir(&hp).map_err(|e| FormatError::io(&hp, e))?.flatten() {
            let mp = m.path();
            let name = m.file_name().to_string_lossy().into_owned();
            // Partial uploads of a manifest (object_store's `name#N` staging files) and
            // hidden files are not manifests.
            if mp.is_file() && name.ends_with(".json") && !name.starts_with('.') {
                paths.push(mp);
            }
        }
    }
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        out.push(Recording { dir: prefix.to_path_buf(), manifest: Manifest::load(&p)? });
    }
    Ok(out)
}
