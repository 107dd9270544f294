//! The control socket, `DIR/.tcpfr-recorder.sock`: how `tcpfr-recorder snapshot` asks a
//! running recorder for a snapshot.
//!
//! One JSON object per line each way. Request: `{"before": "5m", "after": "1m",
//! "reason": "…"}` (all optional). Reply: `{"ok": true, "snapshot": "DIR/snapshots/…"}`
//! or `{"ok": false, "error": "…"}`. The socket is 0660, owned by root and `--group`:
//! only root and that group can trigger snapshots.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
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

impl SnapshotRequest {
    /// The snapshot this request asks for now; durations default to the recorder's
    /// `--snapshot-before`/`--snapshot-after` (the snapshot module caps the window).
    pub fn to_request(self, (before, after): (Duration, Duration)) -> Result<crate::snapshot::Request, String> {
        let parse = |s: Option<String>, d| match s {
            Some(s) => humantime::parse_duration(&s).map_err(|e| format!("bad duration {:?}: {e}", clean_reason(&s))),
            None => Ok(d),
        };
        Ok(crate::snapshot::Request {
            at_ns: crate::clock::realtime_ns(),
            before: parse(self.before, before)?,
            after: parse(self.after, after)?,
            reason: clean_reason(self.reason.as_deref().unwrap_or("requested")),
            source: "control socket".into(),
        })
    }
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
/// there is a dead recorder's) with mode 0660 and group `gid`. The socket is created
/// under a umask that leaves it 0660 from the start (a chmod after `bind` would leave a
/// moment when anyone could connect, and follow a link put in its place); the group is
/// set without following links. The umask is process-wide: call this before other
/// threads create files.
pub fn bind(out: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener> {
    let path = out.join(SOCKET);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&path)?,
        Ok(_) => bail!("{} is not a socket: remove it and start again", path.display()),
        Err(_) => {}
    }
    // SAFETY: umask only swaps the process's mask; restored right after bind.
    let old = unsafe { libc::umask(0o117) };
    let bound = std::os::unix::net::UnixListener::bind(&path);
    unsafe { libc::umask(old) };
    let l = bound.with_context(|| format!("cannot create control socket {}", path.display()))?;
    if let Some(gid) = gid {
        std::os::unix::fs::lchown(&path, None, Some(gid))?;
    }
    l.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(l)?)
}

/// At most this many control connections are served at once; more are answered busy
/// and closed (each one is a task holding a buffer).
pub const MAX_CONNECTIONS: usize = 4;

/// Longest reason kept from a request, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A request's reason as kept: control characters replaced, at most
/// [`MAX_REASON_CHARS`].
pub fn clean_reason(reason: &str) -> String {
    reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_REASON_CHARS).collect()
}

/// Answers a connection beyond [`MAX_CONNECTIONS`] without waiting for it.
pub fn refuse_busy(stream: tokio::net::UnixStream) {
    let mut bytes = serde_json::to_vec(&Reply {
        ok: false,
        snapshot: None,
        error: Some(format!("busy: {MAX_CONNECTIONS} control requests are being served; try again")),
    })
    .unwrap_or_default();
    bytes.push(b'\n');
    let _ = stream.try_write(&bytes);
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
