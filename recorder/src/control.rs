//! The control socket, `DIR/.tcpfr-recorder.sock`: how `tcpfr-recorder snapshot` asks a
//! running recorder for a snapshot.
//!
//! One JSON object per line each way. Request: `{"before": "5m", "after": "1m",
//! "reason": "…"}` (all optional). Reply: `{"ok": true, "snapshot": "DIR/snapshots/…"}`
//! or `{"ok": false, "error": "…"}`. The socket is 0660, owned by root and `--group`:
//! only root and that group can trigger snapshots.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

pub const SOCKET: &str = ".tcpfr-recorder.sock";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SnapshotRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Binds the socket in `out` (we hold the directory's lock, so a socket file already
/// there is a dead recorder's) with mode 0660 and group `gid`.
pub fn bind(out: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener> {
    let path = out.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path).with_context(|| format!("cannot create control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(&path, None, Some(gid))?;
    }
    Ok(l)
}

/// Serves one connection: reads a request, asks `trigger` for a snapshot, replies.
pub async fn serve<F, Fut>(stream: tokio::net::UnixStream, trigger: F)
where
    F: FnOnce(SnapshotRequest) -> Fut,
    Fut: std::future::Future<Output = Result<PathBuf, String>>,
{
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tokio::io::BufReader::new(rd).take(64 * 1024).read_line(&mut line)).await;
    let reply = match read {
        Ok(Ok(_)) => match serde_json::from_str::<SnapshotRequest>(&line) {
            Ok(req) => match trigger(req).await {
                Ok(dir) => Reply { ok: true, snapshot: Some(dir), error: None },
                Err(e) => Reply { ok: false, snapshot: None, error: Some(e) },
            },
            Err(e) => Reply { ok: false, snapshot: None, error: Some(format!("bad request ({e})")) },
        },
        _ => return,
    };
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
    bytes.push(b'\n');
    let _ = wr.write_all(&bytes).await;
}

use tokio::io::AsyncReadExt;

/// Client side: asks the recorder writing to `out` for a snapshot.
pub fn request_snapshot(out: &Path, req: &SnapshotRequest) -> Result<PathBuf> {
    let path = out.join(SOCKET);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            anyhow::anyhow!("no tcpfr-recorder is running with --out {} ({} is missing or dead)", out.display(), path.display())
        }
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "not allowed to use {}: run as root or as a member of the recorder's --group",
            path.display()
        ),
        _ => anyhow::anyhow!("cannot connect to {}: {e}", path.display()),
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut bytes = serde_json::to_vec(req)?;
    bytes.push(b'\n');
    s.write_all(&bytes)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).context("no answer from the recorder")?;
    let reply: Reply = serde_json::from_str(&line).with_context(|| format!("unexpected answer from the recorder: {line:?}"))?;
    match (reply.ok, reply.snapshot, reply.error) {
        (true, Some(dir), _) => Ok(dir),
        (_, _, Some(e)) => bail!("the recorder could not make the snapshot: {e}"),
        _ => bail!("unexpected answer from the recorder: {line:?}"),
    }
}

/// Numeric id of a group name (or a number).
pub fn group_id(name: &str) -> Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(name)?;
    // SAFETY: getgrnam returns a pointer to static storage or null; read at once.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        bail!("--group {name}: no such group (see /etc/group)");
    }
    Ok(unsafe { (*g).gr_gid })
}
