//! Bundles: one file (`*.tcpfr`) holding a time window of recordings, to attach to a
//! bug report and to open anywhere a recording is accepted.
//!
//! A bundle is an uncompressed tar (Parquet is compressed already) of
//!
//! ```text
//! SHA256SUMS                          sha256sum-style list of every other member
//! rec-N/manifest.json                 a valid tcpfr manifest of the window (one per source recording)
//! rec-N/<table>/<file>.parquet        the window's rows, rewritten (zstd)
//! ```
//!
//! Rows are rewritten, not copied, so Parquet statistics and dictionaries hold only
//! what is in the bundle (and, with `--redact`, only pseudonyms; see `redact`). The
//! `sockets` table is a dimension the analyzer never cuts by time (samples and events
//! look their socket up in it), so it is bundled whole. Reading a bundle checks
//! SHA256SUMS and the manifests, then extracts it into a private temporary directory
//! (0700), removed with the dataset that opened it.
//!
//! This module reads bundles (checks and extracts them, for `Dataset`) and knows their
//! format; `bundler` makes them from a `Dataset`. Reading does not depend on the
//! analyzer's data model, so the two do not depend on each other in a circle.

mod open;

pub use open::{bundled_range, resolve, Resolved};

/// Name of the checksum list inside a bundle.
pub const SUMS: &str = "SHA256SUMS";

/// A private temporary directory (0700): bundles are staged and extracted there.
pub fn private_tempdir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::Builder::new().prefix(prefix).tempdir().context("cannot create a temporary directory")?;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).context("cannot protect a temporary directory")?;
    Ok(t)
}
