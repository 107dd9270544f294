//! Damaged, foreign and future recordings give a precise error naming the file — never
//! a panic, never silently wrong data.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use tcpfr_schema::read::{discover, discover_all, inspect_parquet, read_file, Recording, Source, Verify};
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::FormatError;

fn first_retransmit_file(rec: &Path) -> PathBuf {
    Recording::open(rec).unwrap().paths("retransmits")[0].clone()
}

#[test]
fn truncated_file_is_reported_by_size_and_by_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "web1", 500);
    let path = first_retransmit_file(&rec);
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();

    let problems = Recording::open(&rec).unwrap().verify(Verify::Sizes);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let msg = problems[0].to_string();
    assert!(matches!(problems[0], FormatError::SizeMismatch { .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()) && msg.contains("truncated"), "{msg}");

    let err = inspect_parquet(&path).unwrap_err();
    assert!(matches!(err, FormatError::BadParquet { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn flipped_byte_is_a_checksum_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "web1", 500);
    let path = first_retransmit_file(&rec);
    let mut f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    f.write_all(&[0xff]).unwrap();
    drop(f);
    assert!(Recording::open(&rec).unwrap().verify(Verify::Sizes).is_empty(), "same size: the cheap check passes");
    let problems = Recording::open(&rec).unwrap().verify(Verify::Full);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(matches!(problems[0], FormatError::ChecksumMismatch { .. }), "{}", problems[0]);
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "web1", 10);
    let path = first_retransmit_file(&rec);
    std::fs::remove_file(&path).unwrap();
    let problems = Recording::open(&rec).unwrap().verify(Verify::Sizes);
    assert_eq!(problems.len(), 1);
    assert!(matches!(&problems[0], FormatError::MissingFile { path: p } if *p == path), "{}", problems[0]);
}

#[test]
fn random_bytes_and_empty_files_are_not_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng::new(7);
    for (name, len) in [("garbage.parquet", 5000usize), ("tiny.parquet", 3), ("empty.parquet", 0)] {
        let path = dir.path().join(name);
        let bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        let err = inspect_parquet(&path).unwrap_err();
        assert!(matches!(err, FormatError::BadParquet { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        // The same error through the user-facing entry point.
        let err = discover(&[path.clone()]).unwrap_err();
        assert!(matches!(err, FormatError::BadParquet { .. }), "{name}: {err}");
    }
    // Parquet magic at both ends but nonsense in between.
    let path = dir.path().join("magic.parquet");
    let mut bytes = b"PAR1".to_vec();
    bytes.extend((0..100).map(|_| r.next() as u8));
    bytes.extend(50u32.to_le_bytes());
    bytes.extend(b"PAR1");
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(inspect_parquet(&path), Err(FormatError::BadParquet { .. })));
}

#[test]
fn foreign_parquet_is_recognised_as_foreign() {
    use arrow_array::{Int64Array, RecordBatch};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sales.parquet");
    let batch = RecordBatch::try_from_iter([("amount", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = inspect_parquet(&path).unwrap_err();
    assert!(matches!(err, FormatError::ForeignParquet { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("sales.parquet") && msg.contains("not one written by tcpfr"), "{msg}");
}

/// Writes a tcpfr-looking Parquet file with chosen metadata and columns.
fn fake_tcpfr_file(path: &Path, version: &str, table: &str, batch: arrow_array::RecordBatch) {
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![
            KeyValue::new("tcpfr.format_version".into(), version.to_string()),
            KeyValue::new("tcpfr.table".into(), table.to_string()),
        ]))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn newer_major_in_a_file_says_which_version_is_needed() {
    use tcpfr_schema::{Table, TableBuilder};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.parquet");
    let mut b = Retransmit::builder(1);
    b.push(&retransmit(T0, 1));
    fake_tcpfr_file(&path, "2.1", "retransmits", b.finish());
    let err = inspect_parquet(&path).unwrap_err();
    assert!(matches!(err, FormatError::UnsupportedVersion { .. }), "{err}");
    assert!(err.to_string().contains("format 2.1") && err.to_string().contains("reads format 2"), "{err}");
    // An older/newer minor of our major is fine.
    fake_tcpfr_file(&path, "1.9", "retransmits", {
        let mut b = Retransmit::builder(1);
        b.push(&retransmit(T0, 1));
        b.finish()
    });
    assert_eq!(read_file::<Retransmit>(&path).unwrap(), vec![retransmit(T0, 1)]);
}

#[test]
fn a_file_that_lost_a_column_names_the_column() {
    use arrow_array::{Int64Array, RecordBatch};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.parquet");
    let batch = RecordBatch::try_from_iter([("socket_id", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
    fake_tcpfr_file(&path, "1.0", "retransmits", batch);
    let err = inspect_parquet(&path).unwrap_err().to_string();
    assert!(err.contains("retransmits.host is missing"), "{err}");
}

#[test]
fn newer_major_recording_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "web1", 10);
    let m = rec.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap().replace(&format!("\"format_version\": \"1.{}\"", tcpfr_schema::FORMAT_MINOR), "\"format_version\": \"3.0\"");
    std::fs::write(&m, text).unwrap();
    let err = Recording::open(&rec).unwrap_err();
    assert!(matches!(err, FormatError::UnsupportedVersion { .. }), "{err}");
    assert!(err.to_string().contains("reads format 3"), "{err}");
    let err = discover(&[dir.path().to_path_buf()]).unwrap_err();
    assert!(matches!(err, FormatError::UnsupportedVersion { .. }), "{err}");
}

#[test]
fn damaged_manifest_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "web1", 10);
    let m = rec.join("manifest.json");
    let text = std::fs::read(&m).unwrap();
    std::fs::write(&m, &text[..text.len() / 2]).unwrap();
    let err = Recording::open(&rec).unwrap_err();
    assert!(matches!(err, FormatError::Manifest { .. }), "{err}");
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[test]
fn discover_finds_recordings_of_many_hosts_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    write_recording(&fleet.join("dc1"), "web1", 5);
    write_recording(&fleet.join("dc1"), "web2", 7);
    write_recording(&fleet.join("dc2"), "db1", 9);
    let sources = discover(&[fleet.clone()]).unwrap();
    let mut hosts: Vec<String> = sources
        .iter()
        .map(|s| match s {
            Source::Recording(r) => r.manifest.host.clone(),
            Source::File { .. } => panic!("only recordings here"),
        })
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["db1", "web1", "web2"]);
    // A single file works too, and knows its table.
    let file = first_retransmit_file(&fleet.join("dc1").join("host=web1"));
    match &discover(&[file]).unwrap()[0] {
        Source::File { table, .. } => assert_eq!(table, "retransmits"),
        other => panic!("{other:?}"),
    }
    // An empty directory or a missing path: an error that names it.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = discover(&[empty.clone()]).unwrap_err().to_string();
    assert!(err.contains("empty") && err.contains("no manifest.json"), "{err}");
    let err = discover(&[dir.path().join("nope")]).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn unreadable_recordings_among_many_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_recording(&dir.path().join("a"), "web1", 10);
    // What a power cut under a writer that did not fsync leaves, and worse.
    let mut broken = Vec::new();
    for (host, damage) in [("web2", "empty"), ("web3", "zeros"), ("web4", "truncated")] {
        let rec = write_recording(&dir.path().join("b"), host, 10);
        let m = rec.join("manifest.json");
        let text = std::fs::read(&m).unwrap();
        let bytes = match damage {
            "empty" => Vec::new(),
            "zeros" => vec![0; text.len()],
            _ => text[..text.len() / 2].to_vec(),
        };
        std::fs::write(&m, bytes).unwrap();
        broken.push(m);
    }
    let found = discover_all(&[dir.path().to_path_buf()]).unwrap();
    let dirs: Vec<PathBuf> = found
        .sources
        .iter()
        .map(|s| match s {
            Source::Recording(r) => r.dir.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(dirs, [good]);
    assert_eq!(found.skipped.len(), 3);
    for (e, m) in found.skipped.iter().zip(&broken) {
        assert!(matches!(e, FormatError::Manifest { .. }), "{e}");
        assert!(e.to_string().contains(&m.display().to_string()), "names the manifest: {e}");
    }
    // Where every recording must be there, the first one missing is the error.
    let err = discover(&[dir.path().to_path_buf()]).unwrap_err();
    assert!(err.to_string().contains(&broken[0].display().to_string()), "{err}");
    // Named alone, a broken recording is an error; so is a directory of nothing else.
    let err = discover_all(&[broken[0].parent().unwrap().to_path_buf()]).unwrap_err();
    assert!(matches!(err, FormatError::Manifest { .. }), "{err}");
    let err = discover_all(&[dir.path().join("b")]).unwrap_err().to_string();
    assert!(err.contains("none of the 3 recordings") && err.contains("web2"), "{err}");
}
