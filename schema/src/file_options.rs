//! How every table file of a recording is written: the options (rotation, row groups,
//! compression, modes, fsync), the Parquet writer properties, and the key-value
//! metadata that makes a lone file self-describing. Shared by the writer and crash
//! recovery (which rewrites files the same way).

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::layout;
use crate::table::Table;
use crate::{FORMAT_MAJOR, FORMAT_MINOR};

/// How files are cut and encoded.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rotate (all tables) once any table's current file has this many bytes.
    pub rotate_size: u64,
    /// Rotate (all tables) once a segment is this old, in ns.
    pub rotate_interval_ns: i64,
    /// A flush closes a row group only when at least this many rows are buffered;
    /// smaller flushes go to the write-ahead log. Keeps row groups large at low rates.
    pub min_row_group_rows: usize,
    /// Upper bound on rows per row group.
    pub max_row_group_rows: usize,
    pub zstd_level: i32,
    /// Permissions of created files and directories (recordings hold addresses and
    /// process names: not world-readable by default).
    pub file_mode: u32,
    pub dir_mode: u32,
    /// Make every flush durable (power-loss safety; FORMAT.md, "Durability"): fsync
    /// data files, write-ahead logs, partial footers and the directories whose names
    /// change. Off only for throwaway recordings (benchmarks, extracted bundles);
    /// manifests are fsynced either way.
    pub fsync: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            rotate_size: 64 << 20,
            rotate_interval_ns: 60_000_000_000,
            min_row_group_rows: 16 * 1024,
            max_row_group_rows: 1 << 20,
            zstd_level: 3,
            file_mode: 0o640,
            dir_mode: 0o750,
            fsync: true,
        }
    }
}

/// Parquet writer properties for a table: zstd, dictionaries (addresses, ports, names
/// repeat), delta encoding and page statistics on the time column (row-group and page
/// pruning on time ranges), and our key-value metadata so a lone file is self-describing.
pub fn writer_properties<T: Table>(opts: &WriterOptions, kv: Vec<KeyValue>) -> WriterProperties {
    properties(T::TIME_COLUMN, opts, kv)
}

/// [`writer_properties`] for a table known by name (its time column).
pub(crate) fn properties(time_column: &str, opts: &WriterOptions, kv: Vec<KeyValue>) -> WriterProperties {
    let time = ColumnPath::from(time_column);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level).unwrap_or_default()))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(time.clone(), EnabledStatistics::Page)
        .set_column_dictionary_enabled(time.clone(), false)
        .set_column_encoding(time, Encoding::DELTA_BINARY_PACKED)
        // We decide where row groups end (see TableWriter::flush); never split one here.
        .set_max_row_group_row_count(Some(usize::MAX / 2))
        .set_created_by(format!("tcpfr {} (parquet-rs)", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(kv))
        .build()
}

/// Our key-value metadata of a file (see [`layout::kv`]).
pub(crate) fn file_kv(recording_id: &str, table: &str, host: &str, segment: u64) -> Vec<KeyValue> {
    vec![
        KeyValue::new(layout::kv::FORMAT_VERSION.into(), format!("{FORMAT_MAJOR}.{FORMAT_MINOR}")),
        KeyValue::new(layout::kv::RECORDING_ID.into(), recording_id.to_string()),
        KeyValue::new(layout::kv::TABLE.into(), table.to_string()),
        KeyValue::new(layout::kv::HOST.into(), host.to_string()),
        KeyValue::new(layout::kv::SEGMENT.into(), segment.to_string()),
    ]
}
