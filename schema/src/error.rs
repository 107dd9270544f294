//! Errors of reading and writing recordings. Every message names the file and says
//! what the user can do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a tcpfr recording: {reason}")]
    NotARecording { path: PathBuf, reason: String },

    #[error("{path}: the manifest is damaged: {reason}")]
    Manifest { path: PathBuf, reason: String },

    #[error(
        "{path}: recorded in format {found}, but this tcpfr reads format {supported_major}.x \
         (and older minor versions). {advice}"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported_major: u32,
        advice: String,
    },

    #[error("{path}: listed in the manifest but missing on disk (deleted, or the recording was copied incompletely)")]
    MissingFile { path: PathBuf },

    #[error("{path}: size is {actual} bytes but the manifest says {expected}: the file was truncated or changed after it was written")]
    SizeMismatch { path: PathBuf, expected: u64, actual: u64 },

    #[error("{path}: checksum mismatch (sha256 {actual}, manifest says {expected}): the file was damaged or changed after it was written")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{path}: not a readable Parquet file ({reason}); it may be truncated (copy interrupted, disk full) — re-copy it, or move it aside to read the rest")]
    BadParquet { path: PathBuf, reason: String },

    #[error("{path}: a Parquet file, but not one written by tcpfr ({reason}); move it out of the recording or query it directly with `tcpfr query FILE`")]
    ForeignParquet { path: PathBuf, reason: String },

    #[error("{0}")]
    Schema(String),

    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl FormatError {
    /// The file system is full (or the user's quota is): freeing space may cure it.
    pub fn is_storage_full(&self) -> bool {
        use std::io::ErrorKind::{QuotaExceeded, StorageFull};
        matches!(self, FormatError::Io { source, .. } if matches!(source.kind(), StorageFull | QuotaExceeded))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: inner: …`, each cause said once: many
/// errors already name their cause in their own text (`{path}: {source}`), and printing
/// the chain as well said it twice ("No such file or directory (os error 2): No such
/// file or directory (os error 2)").
pub fn chain_text<'a>(chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut text = String::new();
    for cause in chain {
        let t = cause.to_string();
        if text.contains(&t) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&t);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_text_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = FormatError::io("/nonexistent", io);
        let s = chain_text(std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| e.source()));
        assert_eq!(s, format!("/nonexistent: {}", std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
}
