//! The `/metrics` endpoint: a deliberately small HTTP/1.1 responder on a thread (and
//! tokio runtime) of its own, so that scrapes never share a thread with the recording.
//!
//! Strict on purpose: `GET` (or `HEAD`) `/metrics` only, 404 for other paths, 405 for
//! other methods; the request head must arrive within 5 s and fit in 8 KiB; at most 8
//! connections at a time; one response per connection (`Connection: close`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Exporter;

const MAX_HEAD: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 8;

/// `--metrics-listen`: `PORT` or `:PORT` (127.0.0.1), `HOST:PORT`, `[V6]:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("{s:?} is not PORT, :PORT, HOST:PORT or [IPV6]:PORT ({e})")),
    }
}

/// Binds now, so that a busy port is an error at start-up, before anything is loaded.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} for --metrics-listen (choose another port or address)"))?;
    l.set_nonblocking(true)?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "metrics on {addr}: not a loopback address, so anyone who can reach it sees service names, peer addresses and process names"
        );
    }
    Ok(l)
}

/// Serves `/metrics` on `listener` until the process exits.
pub fn spawn(listener: std::net::TcpListener, exporter: Arc<Exporter>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    std::thread::Builder::new().name("tcpfr-metrics".into()).spawn(move || {
        crate::privileges::confine_thread(crate::privileges::Role::Worker);
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("metrics endpoint: {e}");
                    return;
                }
            };
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors and the like: try again a little later.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                // Over the limit: the connection is closed at once.
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let exporter = exporter.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &exporter).await;
                    drop(slot);
                });
            }
        })
    })?;
    Ok(())
}

/// What to answer to a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Decides on the request line (the rest of the head is not needed).
pub fn route(head: &[u8]) -> Answer {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else { return Answer::BadRequest };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (words.next(), words.next(), words.next(), words.next()) else {
        return Answer::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Answer::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Answer::NotFound;
    }
    match method {
        "GET" => Answer::Metrics { head_only: false },
        "HEAD" => Answer::Metrics { head_only: true },
        _ => Answer::MethodNotAllowed,
    }
}

async fn serve(mut stream: tokio::net::TcpStream, exporter: &Exporter) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() >= MAX_HEAD {
                return Ok(false);
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let (status, body, extra) = match complete {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) => ("431 Request Header Fields Too Large", String::new(), ""),
        Ok(Ok(true)) => match route(&head) {
            Answer::Metrics { head_only } => {
                let body = exporter.render();
                if head_only {
                    let head = response("200 OK", super::text::CONTENT_TYPE, body.len(), "");
                    return write(&mut stream, head.as_bytes()).await;
                }
                ("200 OK", body, "")
            }
            Answer::NotFound => ("404 Not Found", "Not found: the metrics are at /metrics\n".into(), ""),
            Answer::MethodNotAllowed => ("405 Method Not Allowed", "Only GET and HEAD\n".into(), "Allow: GET, HEAD\r\n"),
            Answer::BadRequest => ("400 Bad Request", "Bad request\n".into(), ""),
        },
    };
    let ctype = if status.starts_with("200") { super::text::CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let mut out = response(status, ctype, body.len(), extra).into_bytes();
    out.extend_from_slice(body.as_bytes());
    write(&mut stream, &out).await
}

fn response(status: &str, ctype: &str, len: usize, extra: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n")
}

async fn write(stream: &mut tokio::net::TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9464").unwrap(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(parse_listen(":9464").unwrap(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(parse_listen("0.0.0.0:80").unwrap(), "0.0.0.0:80".parse().unwrap());
        assert_eq!(parse_listen("[::1]:9464").unwrap(), "[::1]:9464".parse().unwrap());
        assert!(parse_listen("localhost:9464").unwrap().ip().is_loopback());
        assert!(parse_listen("nope").is_err());
        assert!(parse_listen("70000").is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Answer::Metrics { head_only: false });
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Answer::Metrics { head_only: false });
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Answer::Metrics { head_only: true });
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(route(b"GET /metrics/ HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Answer::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Answer::BadRequest);
        assert_eq!(route(b"GET http://x/metrics HTTP/1.1\r\n\r\n"), Answer::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Answer::BadRequest);
    }
}
