//! Writing recordings: rows → sorted batches → Parquet files, rotated in segments.
//!
//! The recorder and every generator of recordings (benchmarks, tests) go through this
//! one writer, so all recordings have the same layout and guarantees:
//!
//! * A file is written under a hidden temporary name and renamed when complete; the
//!   manifest (rewritten atomically) lists only complete files.
//! * All tables rotate together: a *segment* is one file per table covering the same
//!   time span. Flight-recorder eviction and snapshots work on whole segments.
//! * Rows are handed over with [`RecordingWriter::flush`] and a *watermark*: rows up to
//!   it are sorted by time and written; later ones wait, so events that arrive slightly
//!   out of order still end up sorted.
//! * Crash safety without tiny row groups: each flush either closes a row group (when
//!   enough rows are buffered; a partial footer is then saved next to the file) or
//!   appends the new rows to a small Arrow IPC write-ahead log. Either way, what was
//!   flushed survives a crash of the process: the complete row groups can be given a
//!   footer again and the log replayed (see `recover.rs`).
//! * Power loss: with [`WriterOptions::fsync`] (the default) every flush returns only
//!   once its rows are on the disk, and names (new files, renames, new directories) are
//!   made durable by fsyncing their directory, in the order FORMAT.md ("Durability")
//!   gives: data before the footer or manifest that describes it, a replaced file's
//!   new contents before the rename, the rename before anything that relies on it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter};

use crate::error::{FormatError, Result};
pub use crate::file_options::{writer_properties, WriterOptions};
use crate::file_options::file_kv;
use crate::fs::{create_dir_all, create_file, sync_dir, sync_parent, write_atomically, write_err, HashingWriter};
use crate::layout;
use crate::TableId;
use crate::manifest::{FileEntry, Manifest};
use crate::table::{Table, TableBuilder};
use crate::time::rfc3339;

/// Who/what a new recording is; turned into its manifest.
#[derive(Debug, Clone)]
pub struct RecordingInfo {
    pub recording_id: String,
    pub host: String,
    pub kernel: Option<String>,
    pub boot_id: Option<String>,
    pub clock: crate::manifest::ClockInfo,
    pub recorder: crate::manifest::RecorderInfo,
    pub start_ns: i64,
}

/// Result of one [`RecordingWriter::flush`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FlushReport {
    /// Rows written per table, in [`TableId::ALL`] order.
    pub rows_written: [u64; TableId::COUNT],
    /// Whether this flush rotated to a new segment.
    pub rotated: bool,
}

macro_rules! recording_writer {
    ($($id:ident $name:ident $row:path;)*) => {
        /// Writes one recording directory.
        pub struct RecordingWriter {
            dir: PathBuf,
            manifest: Manifest,
            opts: WriterOptions,
            segment: u64,
            segment_start_ns: i64,
            /// Files given up by [`Self::abandon`] whose complete row groups could not be
            /// kept yet.
            unsalvaged: Vec<(TableId, PathBuf)>,
            $(pub $name: TableWriter<$row>,)*
        }

        impl RecordingWriter {
            fn with_tables(dir: &Path, manifest: Manifest, opts: WriterOptions, start_ns: i64, ctx: Arc<FileContext>) -> Self {
                RecordingWriter {
                    dir: dir.to_path_buf(),
                    manifest,
                    opts,
                    segment: 1,
                    segment_start_ns: start_ns,
                    unsalvaged: Vec::new(),
                    $($name: TableWriter::new(ctx.clone()),)*
                }
            }

            /// Every table's writer, in [`TableId::ALL`] order.
            fn tables(&mut self) -> [&mut dyn AnyTableWriter; TableId::COUNT] {
                [$(&mut self.$name,)*]
            }

            /// Rows buffered and not yet written, per table in [`TableId::ALL`] order.
            pub fn pending_rows(&self) -> [u64; TableId::COUNT] {
                [$(self.$name.pending() as u64,)*]
            }
        }
    };
}
crate::for_each_table!(recording_writer);

impl RecordingWriter {
    /// Creates `dir` (must not already hold a recording) and its first manifest.
    pub fn create(dir: &Path, info: RecordingInfo, opts: WriterOptions) -> Result<Self> {
        if dir.join(layout::MANIFEST).exists() {
            return Err(FormatError::Write {
                path: dir.to_path_buf(),
                reason: "already holds a recording; choose a new directory".into(),
            });
        }
        create_dir_all(dir, opts.dir_mode, opts.fsync)?;
        let mut manifest = Manifest::new(info.recording_id, info.host, info.start_ns, info.clock, info.recorder);
        manifest.kernel = info.kernel;
        manifest.boot_id = info.boot_id;
        manifest.store(dir)?;
        let ctx = FileContext {
            root: dir.to_path_buf(),
            recording_id: manifest.recording_id.clone(),
            host: manifest.host.clone(),
            opts: opts.clone(),
        };
        Ok(RecordingWriter::with_tables(dir, manifest, opts, info.start_ns, Arc::new(ctx)))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Writes buffered rows with time ≤ `watermark_ns`, then rotates if the segment is
    /// older than the rotation interval at `now_ns` or a file outgrew the size limit.
    pub fn flush(&mut self, watermark_ns: i64, now_ns: i64) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        let (segment, start) = (self.segment, self.segment_start_ns);
        let results = self.tables().map(|t| t.flush(Some(watermark_ns), segment, start));
        let mut first_err = None;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(n) => report.rows_written[i] = n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let biggest = self.tables().map(|t| t.current_bytes()).into_iter().max().unwrap_or(0);
        if now_ns - self.segment_start_ns >= self.opts.rotate_interval_ns || biggest >= self.opts.rotate_size {
            self.rotate(now_ns)?;
            report.rotated = true;
        }
        Ok(report)
    }

    /// Closes the current segment's files (all rows buffered so far go in) and starts
    /// a new segment at `now_ns`.
    pub fn rotate(&mut self, now_ns: i64) -> Result<()> {
        let (segment, start) = (self.segment, self.segment_start_ns);
        // Everything still pending belongs to the closing segment.
        let flushed = self.tables().map(|t| t.flush(None, segment, start));
        let closed = self.tables().map(|t| t.close());
        let mut first_err = flushed.into_iter().find_map(|r| r.err());
        for c in closed {
            match c {
                Ok(Some(entry)) => self.manifest.files.push(entry),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.manifest.store(&self.dir)?;
        self.segment += 1;
        self.segment_start_ns = now_ns.max(self.segment_start_ns + 1);
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Gives up the files being written after a write error (disk full, read-only file
    /// system), without needing free space: each keeps its complete row groups (sealed
    /// in place, listed in the manifest if it can still be stored); rows buffered or in
    /// write-ahead logs are dropped and counted, per table in [`TableId::ALL`] order.
    /// Writing continues with a new segment at `now_ns` once the caller sees space again.
    pub fn abandon(&mut self, now_ns: i64) -> [u64; TableId::COUNT] {
        let given_up = self.tables().map(|t| t.abandon());
        let mut lost = [0u64; TableId::COUNT];
        for ((path, n), table) in given_up.into_iter().zip(TableId::ALL) {
            let i = table.index();
            lost[i] = n;
            if let Some(path) = path {
                match crate::recover::salvage(&self.dir, table.name(), &path) {
                    Ok(Some(entry)) => {
                        lost[i] = lost[i].saturating_sub(entry.rows);
                        self.manifest.files.push(entry);
                    }
                    Ok(None) => {}
                    // E.g. a read-only file system: try again when it can be written.
                    Err(_) => self.unsalvaged.push((table, path)),
                }
            }
        }
        let _ = self.manifest.store(&self.dir);
        self.segment += 1;
        self.segment_start_ns = now_ns.max(self.segment_start_ns + 1);
        lost
    }

    /// Salvages what [`Self::abandon`] could not (the output was not writable then).
    /// Returns the rows kept.
    pub fn retry_salvage(&mut self) -> u64 {
        let mut kept = 0;
        for (table, path) in std::mem::take(&mut self.unsalvaged) {
            match crate::recover::salvage(&self.dir, table.name(), &path) {
                Ok(Some(entry)) => {
                    kept += entry.rows;
                    self.manifest.files.push(entry);
                }
                Ok(None) => {}
                Err(_) => self.unsalvaged.push((table, path)),
            }
        }
        if kept > 0 {
            let _ = self.manifest.store(&self.dir);
        }
        kept
    }

    /// Segment being written (not in the manifest yet).
    pub fn current_segment(&self) -> u64 {
        self.segment
    }

    /// Deletes a closed segment (all its tables): the manifest first, so that it never
    /// lists a missing file. Returns the bytes freed. The current segment is refused.
    pub fn remove_segment(&mut self, segment: u64) -> Result<u64> {
        if segment >= self.segment {
            return Err(FormatError::Write {
                path: self.dir.clone(),
                reason: format!("segment {segment} is still being written"),
            });
        }
        remove_segment(&self.dir, &mut self.manifest, segment)
    }

    /// Writes everything, closes all files, gives tables that never had a row one empty
    /// file (so every table can be globbed), and stores the final manifest.
    pub fn finish(mut self, end_ns: i64) -> Result<Manifest> {
        self.rotate(end_ns)?;
        let segment = self.segment - 1;
        let start = self.segment_start_ns;
        for table in TableId::ALL {
            if self.manifest.files_of(table.name()).next().is_none() {
                let entry = self.tables()[table.index()].write_empty(segment, start)?;
                self.manifest.files.push(entry);
            }
        }
        self.manifest.end = Some(rfc3339(end_ns));
        self.manifest.store(&self.dir)?;
        Ok(self.manifest)
    }
}

/// Deletes segment `segment` of the recording in `dir` whose manifest is `manifest`:
/// stores the manifest without its files, then deletes them. Returns the bytes freed:
/// a file another link still holds (a snapshot's) frees nothing.
///
/// On a full disk the manifest cannot be rewritten until something is freed, so the
/// files go first there: until the manifest is stored it lists files that are gone
/// (a reader names them as missing), which beats a ring that can never free space.
pub fn remove_segment(dir: &Path, manifest: &mut Manifest, segment: u64) -> Result<u64> {
    let (gone, kept): (Vec<FileEntry>, Vec<FileEntry>) =
        std::mem::take(&mut manifest.files).into_iter().partition(|f| f.segment == segment);
    manifest.files = kept;
    if gone.is_empty() {
        return Ok(0);
    }
    match manifest.store(dir) {
        Ok(()) => delete_files(dir, &gone),
        Err(e) if e.is_storage_full() => {
            let freed = delete_files(dir, &gone)?;
            manifest.store(dir)?;
            Ok(freed)
        }
        Err(e) => Err(e),
    }
}

/// Deletes the files `gone` of the recording in `dir`; the bytes freed.
fn delete_files(dir: &Path, gone: &[FileEntry]) -> Result<u64> {
    let mut freed = 0;
    let mut dirs = std::collections::BTreeSet::new();
    for f in gone {
        let p = Manifest::file_path(dir, f);
        let last_link = std::fs::symlink_metadata(&p).map_or(true, |m| std::os::unix::fs::MetadataExt::nlink(&m) <= 1);
        match std::fs::remove_file(&p) {
            Ok(()) if last_link => freed += f.bytes,
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FormatError::io(p, e)),
        }
        dirs.extend(p.parent().map(Path::to_path_buf));
    }
    // Unlisted files that a power cut brought back would hold disk space that no
    // manifest accounts for.
    for d in dirs {
        sync_dir(&d)?;
    }
    Ok(freed)
}

/// What every table's writer shares.
struct FileContext {
    root: PathBuf,
    recording_id: String,
    host: String,
    opts: WriterOptions,
}

/// Table-independent view of a [`TableWriter`], so a recording can loop over tables.
trait AnyTableWriter {
    fn flush(&mut self, watermark_ns: Option<i64>, segment: u64, segment_start_ns: i64) -> Result<u64>;
    fn write_empty(&mut self, segment: u64, segment_start_ns: i64) -> Result<FileEntry>;
    fn close(&mut self) -> Result<Option<FileEntry>>;
    fn current_bytes(&self) -> u64;
    /// Drops the open file and every buffered row: the file's final path (to salvage)
    /// and how many rows it and the buffers held.
    fn abandon(&mut self) -> (Option<PathBuf>, u64);
}

/// Buffers rows of one table and writes its files.
pub struct TableWriter<T: Table> {
    ctx: Arc<FileContext>,
    /// Rows pushed one at a time since the last flush.
    builder: T::Builder,
    /// Batches not yet written (pushed, or after the last flush's watermark).
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    open: Option<OpenFile>,
    /// Latest time written to the current file (rows must not go before it).
    max_written_ns: i64,
    /// Rows that arrived after later rows had already been written (counted, written anyway).
    pub late_rows: u64,
}

struct OpenFile {
    final_path: PathBuf,
    rel_path: String,
    segment: u64,
    writer: ArrowWriter<HashingWriter>,
    /// The rows of the row group in progress (the same rows as the write-ahead log),
    /// handed to `writer` only when the row group is closed: Parquet's column writers
    /// (encoders, dictionaries, a zstd compression and decompression context per column)
    /// then live for the moment of a flush, not for the whole time a quiet table takes
    /// to fill a row group.
    staged: Staged,
    /// Key-value metadata as it will be in the final footer (for partial footers).
    kv: Vec<KeyValue>,
    rows: u64,
    time_min: i64,
    time_max: i64,
    sorted: bool,
    wal: Option<arrow_ipc::writer::StreamWriter<File>>,
    /// Whether the current log's directory entry has been made durable.
    wal_named: bool,
}

impl<T: Table> TableWriter<T> {
    fn new(ctx: Arc<FileContext>) -> Self {
        TableWriter {
            ctx,
            builder: T::builder(0),
            pending: Vec::new(),
            pending_rows: 0,
            open: None,
            max_written_ns: i64::MIN,
            late_rows: 0,
        }
    }

    /// Buffers a row; it is written by the next flush whose watermark reaches its time.
    #[inline]
    pub fn push(&mut self, row: T) {
        self.builder.push(&row);
    }

    /// Buffers a batch of rows of this table (built with `T::builder`).
    pub fn push_batch(&mut self, batch: RecordBatch) {
        debug_assert_eq!(batch.schema(), T::schema());
        if batch.num_rows() > 0 {
            self.pending_rows += batch.num_rows();
            self.pending.push(batch);
        }
    }

    /// Bytes Parquet's writer holds for the file in progress between flushes (column
    /// writers, encoders, buffered pages): zero while the row group in progress is only
    /// staged.
    pub fn parquet_memory(&self) -> usize {
        self.open.as_ref().map_or(0, |f| f.writer.memory_size())
    }

    /// Rows buffered and not yet handed to Parquet.
    pub fn pending(&self) -> usize {
        self.pending_rows + self.builder.len()
    }

    /// Everything buffered, as batches in time order (usually the batches as they
    /// came; merged and sorted only when they overlap or are out of order).
    fn take_sorted(&mut self) -> Result<Vec<RecordBatch>> {
        if !self.builder.is_empty() {
            let b = self.builder.finish();
            self.push_batch(b);
        }
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let mut prev_last = i64::MIN;
        let in_order = batches.iter().all(|b| {
            let t = time_column::<T>(b);
            let v = t.values();
            let ok = v[0] >= prev_last && v.windows(2).all(|w| w[0] <= w[1]);
            prev_last = v[v.len() - 1];
            ok
        });
        if in_order || batches.is_empty() {
            return Ok(batches);
        }
        let batch = arrow_select::concat::concat_batches(&T::schema(), &batches).map_err(|e| FormatError::Schema(e.to_string()))?;
        let time = time_column::<T>(&batch);
        // A stable sort: rows with equal times keep their arrival order.
        let values = time.values();
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_by_key(|&i| values[i as usize]);
        let idx = arrow_array::UInt32Array::from(order);
        let sorted = arrow_select::take::take_record_batch(&batch, &idx).map_err(|e| FormatError::Schema(e.to_string()))?;
        Ok(vec![sorted])
    }

    fn open_file(&mut self, segment: u64, segment_start_ns: i64) -> Result<&mut OpenFile> {
        if self.open.is_none() {
            let table_dir = self.ctx.root.join(T::NAME);
            create_dir_all(&table_dir, self.ctx.opts.dir_mode, self.ctx.opts.fsync)?;
            let rel = layout::relative_path(T::NAME, segment_start_ns, segment);
            let final_path = self.ctx.root.join(&rel);
            let tmp = layout::inprogress_path(&final_path);
            let file = create_file(&tmp, self.ctx.opts.file_mode)?;
            let kv = file_kv(&self.ctx.recording_id, T::NAME, &self.ctx.host, segment);
            let mut props = writer_properties::<T>(&self.ctx.opts, kv);
            parquet::arrow::add_encoded_arrow_schema_to_metadata(&T::schema(), &mut props);
            let kv = props.key_value_metadata().cloned().unwrap_or_default();
            let writer = ArrowWriter::try_new(HashingWriter::new(file), T::schema(), Some(props))
                .map_err(|e| write_err(&tmp, e))?;
            self.max_written_ns = i64::MIN;
            self.open = Some(OpenFile {
                final_path,
                rel_path: rel.to_string_lossy().replace('\\', "/"),
                segment,
                writer,
                staged: Staged::default(),
                kv,
                rows: 0,
                time_min: i64::MAX,
                time_max: i64::MIN,
                sorted: true,
                wal: None,
                wal_named: false,
            });
        }
        Ok(self.open.as_mut().expect("just opened"))
    }

    fn sidecar_paths(f: &OpenFile) -> (PathBuf, PathBuf, PathBuf) {
        (
            layout::inprogress_path(&f.final_path),
            layout::footer_path(&f.final_path),
            layout::wal_path(&f.final_path),
        )
    }
}

impl<T: Table> AnyTableWriter for TableWriter<T> {
    /// Writes an empty file (schema only) for a table that had no rows at all.
    fn write_empty(&mut self, segment: u64, segment_start_ns: i64) -> Result<FileEntry> {
        self.open_file(segment, segment_start_ns)?;
        Ok(self.close()?.expect("a file was open"))
    }

    fn flush(&mut self, watermark_ns: Option<i64>, segment: u64, segment_start_ns: i64) -> Result<u64> {
        let mut written = Vec::new();
        let mut rest = Vec::new();
        for batch in self.take_sorted()? {
            if !rest.is_empty() {
                rest.push(batch);
                continue;
            }
            let time = time_column::<T>(&batch);
            let cut = match watermark_ns {
                Some(w) => time.values().partition_point(|t| *t <= w),
                None => batch.num_rows(),
            };
            if cut > 0 {
                self.write_sorted(&batch.slice(0, cut), segment, segment_start_ns, &mut written)?;
            }
            if cut < batch.num_rows() {
                rest.push(batch.slice(cut, batch.num_rows() - cut));
            }
        }
        for b in rest {
            self.push_batch(b);
        }
        let n: usize = written.iter().map(|b: &RecordBatch| b.num_rows()).sum();
        // One decision per flush: a row group once enough rows are buffered, otherwise
        // the rows go to the write-ahead log (which always holds exactly the rows of
        // the row group in progress).
        if let Some(f) = self.open.as_mut() {
            let (tmp, footer, wal) = Self::sidecar_paths(f);
            let durable = self.ctx.opts.fsync;
            if f.staged.rows >= self.ctx.opts.min_row_group_rows {
                flush_row_group(f, &tmp, &footer, &wal, durable)?;
            } else if !written.is_empty() {
                for b in &written {
                    append_wal(f, &wal, b)?;
                }
                if durable {
                    sync_wal(f, &wal)?;
                }
            }
        }
        Ok(n as u64)
    }

    fn close(&mut self) -> Result<Option<FileEntry>> {
        self.close_file()
    }

    fn abandon(&mut self) -> (Option<PathBuf>, u64) {
        let mut rows = self.builder.len() as u64 + self.pending_rows as u64;
        self.builder = T::builder(0);
        self.pending.clear();
        self.pending_rows = 0;
        self.max_written_ns = i64::MIN;
        let path = self.open.take().map(|f| {
            rows += f.rows;
            f.final_path
        });
        (path, rows)
    }

    fn current_bytes(&self) -> u64 {
        self.open
            .as_ref()
            .map(|f| (f.writer.bytes_written() + f.staged.bytes) as u64)
            .unwrap_or(0)
    }
}

impl<T: Table> TableWriter<T> {
    /// Writes rows already sorted by time into the current file, closing a row group
    /// when enough rows are buffered and logging smaller amounts to the WAL.
    fn write_sorted(&mut self, ready: &RecordBatch, segment: u64, segment_start_ns: i64, written: &mut Vec<RecordBatch>) -> Result<()> {
        let cut = ready.num_rows();
        let time = time_column::<T>(ready);
        let first = time.value(0);
        let last = time.value(cut - 1);
        self.open_file(segment, segment_start_ns)?;
        let late = first < self.max_written_ns;
        if late {
            self.late_rows += time.values().partition_point(|t| *t < self.max_written_ns) as u64;
        }
        self.max_written_ns = self.max_written_ns.max(last);
        let max_rg = self.ctx.opts.max_row_group_rows;
        let f = self.open.as_mut().expect("opened above");
        if late {
            f.sorted = false;
        }
        let (tmp, footer, wal) = Self::sidecar_paths(f);
        let mut offset = 0;
        while offset < cut {
            let room = max_rg - f.staged.rows.min(max_rg);
            if room == 0 {
                flush_row_group(f, &tmp, &footer, &wal, self.ctx.opts.fsync)?;
                written.clear();
                continue;
            }
            let chunk = ready.slice(offset, room.min(cut - offset));
            offset += chunk.num_rows();
            f.staged.push(chunk.clone());
            written.push(chunk);
        }
        f.rows += cut as u64;
        f.time_min = f.time_min.min(first);
        f.time_max = f.time_max.max(last);
        Ok(())
    }

    fn close_file(&mut self) -> Result<Option<FileEntry>> {
        let Some(mut f) = self.open.take() else {
            return Ok(None);
        };
        let (tmp, footer, wal) = Self::sidecar_paths(&f);
        if f.sorted && f.rows > 0 {
            f.writer.append_key_value_metadata(KeyValue::new(layout::kv::SORTED_BY.into(), T::TIME_COLUMN.to_string()));
        }
        // Writes the last row group and the footer.
        for b in f.staged.take() {
            f.writer.write(&b).map_err(|e| write_err(&tmp, e))?;
        }
        let hw = f.writer.into_inner().map_err(|e| write_err(&tmp, e))?;
        let (file, digest, bytes) = hw.finish();
        if self.ctx.opts.fsync {
            file.sync_all().map_err(|e| FormatError::io(&tmp, e))?;
        }
        drop(file);
        std::fs::rename(&tmp, &f.final_path).map_err(|e| FormatError::io(&f.final_path, e))?;
        if self.ctx.opts.fsync {
            sync_parent(&f.final_path)?;
        }
        // The sidecars only matter while the file is in progress. Their deletion is made
        // durable too: a closed recording is never recovered again, so sidecars that a
        // power cut brought back would stay for good.
        let _ = std::fs::remove_file(&footer);
        let _ = std::fs::remove_file(&wal);
        if self.ctx.opts.fsync {
            sync_parent(&f.final_path)?;
        }
        self.max_written_ns = i64::MIN;
        Ok(Some(FileEntry {
            table: T::NAME.to_string(),
            path: f.rel_path,
            segment: f.segment,
            rows: f.rows,
            bytes,
            sha256: hex::encode(digest),
            time_min: (f.rows > 0).then(|| rfc3339(f.time_min)),
            time_max: (f.rows > 0).then(|| rfc3339(f.time_max)),
        }))
    }

}


/// Closes the in-progress row group, makes it reach the file, saves the partial footer
/// (all complete row groups) and drops the write-ahead log, whose rows are now safe.
/// `durable`: the row group is fsynced before the footer that describes it is saved
/// (durably too), and the log deleted only then.
fn flush_row_group(f: &mut OpenFile, tmp: &Path, footer: &Path, wal: &Path, durable: bool) -> Result<()> {
    if f.staged.rows == 0 {
        return Ok(());
    }
    for b in f.staged.take() {
        f.writer.write(&b).map_err(|e| write_err(tmp, e))?;
    }
    f.writer.flush().map_err(|e| write_err(tmp, e))?;
    // Only hands the buffered bytes to the file; the fdatasync is ours.
    f.writer.sync().map_err(|e| FormatError::io(tmp, e))?;
    if durable {
        f.writer.inner().file.sync_data().map_err(|e| FormatError::io(tmp, e))?;
    }
    let groups = f.writer.flushed_row_groups().to_vec();
    let schema = groups[0].schema_descr_ptr();
    let num_rows = groups.iter().map(|g| g.num_rows()).sum();
    let md = ParquetMetaData::new(
        FileMetaData::new(1, num_rows, Some(format!("tcpfr {} (partial footer)", env!("CARGO_PKG_VERSION"))), Some(f.kv.clone()), schema, None),
        groups,
    );
    let mut bytes = Vec::new();
    ParquetMetaDataWriter::new(&mut bytes, &md)
        .finish()
        .map_err(|e| write_err(footer, e))?;
    write_atomically(&layout::footer_tmp_path(&f.final_path), footer, &bytes, durable)?;
    f.wal = None;
    let _ = std::fs::remove_file(wal);
    Ok(())
}

/// Batches of the row group in progress, with their row count and an estimate of their
/// size in the file (Arrow's size of the rows, before encoding and compression).
#[derive(Default)]
struct Staged {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

impl Staged {
    fn push(&mut self, batch: RecordBatch) {
        self.rows += batch.num_rows();
        // The slice's own bytes: a slice shares its parent's buffers.
        self.bytes += batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum::<usize>();
        self.batches.push(batch);
    }

    fn take(&mut self) -> Vec<RecordBatch> {
        self.rows = 0;
        self.bytes = 0;
        std::mem::take(&mut self.batches)
    }
}

fn append_wal(f: &mut OpenFile, wal: &Path, batch: &RecordBatch) -> Result<()> {
    if f.wal.is_none() {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(wal)
            .map_err(|e| FormatError::io(wal, e))?;
        // The log holds the rows after the complete row groups: it says how many rows
        // those had, so recovery can tell a log whose rows already reached a row group
        // (a crash between saving the footer and deleting the log) from a current one.
        let base: i64 = f.writer.flushed_row_groups().iter().map(|g| g.num_rows()).sum();
        let mut md = batch.schema().metadata().clone();
        md.insert(layout::kv::WAL_BASE_ROWS.to_string(), base.to_string());
        let schema: SchemaRef = Arc::new(batch.schema().as_ref().clone().with_metadata(md));
        f.wal = Some(arrow_ipc::writer::StreamWriter::try_new(file, &schema).map_err(|e| write_err(wal, e))?);
        f.wal_named = false;
    }
    let w = f.wal.as_mut().expect("just opened");
    w.write(batch).map_err(|e| write_err(wal, e))?;
    w.flush().map_err(|e| write_err(wal, e))?;
    Ok(())
}

/// Makes the write-ahead log's rows durable: fdatasync; and the first time, its name
/// (and the data file's, created in the same directory) by fsyncing the directory.
fn sync_wal(f: &mut OpenFile, wal: &Path) -> Result<()> {
    let Some(w) = f.wal.as_ref() else { return Ok(()) };
    w.get_ref().sync_data().map_err(|e| FormatError::io(wal, e))?;
    if !f.wal_named {
        sync_parent(wal)?;
        f.wal_named = true;
    }
    Ok(())
}

/// The time column of a batch of table `T`.
fn time_column<T: Table>(batch: &RecordBatch) -> arrow_array::TimestampNanosecondArray {
    use arrow_array::Array;
    let col = batch.column_by_name(T::TIME_COLUMN).expect("table has its time column");
    let arr = col
        .as_any()
        .downcast_ref::<arrow_array::TimestampNanosecondArray>()
        .expect("time columns are Timestamp(ns)")
        .clone();
    debug_assert_eq!(arr.null_count(), 0, "time is not null");
    arr
}

