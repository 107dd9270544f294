//! `tcpfr-traffic`: the small client/server the test bed and benchmarks make traffic
//! with. Not part of the product; run it inside the namespaces a test creates.
//!
//! ```text
//! tcpfr-traffic serve --listen ADDR:PORT [--abort-after BYTES] [--duration 30s] [--backlog N] [--no-accept]
//!                     [--rcvbuf BYTES] [--read-rate BYTES_PER_S]
//! tcpfr-traffic send  --to ADDR:PORT --bytes N [--conns K] [--connect-timeout 2s] [--rate BYTES_PER_S] [--connect-only]
//!                     [--sndbuf BYTES] [--hold 2s]
//! ```
//! `serve` reads and discards everything; with `--abort-after` it resets each
//! connection (SO_LINGER 0) once it has read that many bytes; `--backlog` sets
//! listen()'s backlog and `--no-accept` never accepts (a full accept queue). `send` opens K
//! connections one after another and writes N bytes on each; it prints one line per
//! connection: `ok <bytes>`, `connect-error <kind>` or `write-error <kind>`; with
//! `--connect-only` it closes at once after connect() (`connected`).
//! `--rcvbuf`/`--sndbuf` set SO_RCVBUF/SO_SNDBUF (the kernel doubles them); `--read-rate`
//! makes the server a slow reader; `--hold` makes the sender wait, once everything it
//! wrote is acknowledged, print `drained <local port>` and keep the connection open that
//! long before closing (a test reads `ss -ti` then).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|s| s.as_str())
}

fn duration(s: &str) -> Duration {
    humantime::parse_duration(s).unwrap_or_else(|e| die(&format!("bad duration {s:?}: {e}")))
}

fn die(msg: &str) -> ! {
    eprintln!("tcpfr-traffic: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(|s| s.as_str()) {
        Some("serve") => serve(&args),
        Some("send") => send(&args),
        _ => die("usage: tcpfr-traffic serve --listen ADDR:PORT | send --to ADDR:PORT --bytes N"),
    }
}

fn serve(args: &[String]) {
    let addr: SocketAddr = arg(args, "--listen").unwrap_or_else(|| die("--listen needed")).parse().unwrap_or_else(|e| die(&format!("{e}")));
    let abort_after: Option<u64> = arg(args, "--abort-after").map(|s| s.parse().unwrap_or_else(|_| die("bad --abort-after")));
    let stop = arg(args, "--duration").map(|d| Instant::now() + duration(d));
    let l = TcpListener::bind(addr).unwrap_or_else(|e| die(&format!("bind {addr}: {e}")));
    // Accepted sockets inherit the listener's buffer size (and its lock against autotuning).
    set_buf(l.as_raw_fd(), libc::SO_RCVBUF, arg(args, "--rcvbuf"));
    let read_rate: Option<f64> = arg(args, "--read-rate").map(|r| r.parse().unwrap_or_else(|_| die("bad --read-rate")));
    if let Some(backlog) = arg(args, "--backlog") {
        let n: i32 = backlog.parse().unwrap_or_else(|_| die("bad --backlog"));
        // listen() again on a listening socket sets its backlog.
        // SAFETY: a valid listening socket.
        if unsafe { libc::listen(l.as_raw_fd(), n) } != 0 {
            die(&format!("listen: {}", std::io::Error::last_os_error()));
        }
    }
    println!("listening {}", l.local_addr().unwrap());
    std::io::stdout().flush().ok();
    if args.iter().any(|a| a == "--no-accept") {
        std::thread::sleep(stop.map_or(Duration::from_secs(3600), |s| s.saturating_duration_since(Instant::now())));
        return;
    }
    l.set_nonblocking(true).ok();
    loop {
        if stop.is_some_and(|s| Instant::now() > s) {
            return;
        }
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).ok();
                std::thread::spawn(move || handle(c, abort_after, read_rate));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Sets a socket buffer option from a command-line value, if given.
fn set_buf(fd: i32, opt: i32, value: Option<&str>) {
    let Some(v) = value else { return };
    let n: i32 = v.parse().unwrap_or_else(|_| die(&format!("bad buffer size {v:?}")));
    // SAFETY: valid socket and an int option.
    if unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&n as *const i32).cast(), 4) } != 0 {
        die(&format!("setsockopt: {}", std::io::Error::last_os_error()));
    }
}

fn handle(mut c: TcpStream, abort_after: Option<u64>, read_rate: Option<f64>) {
    // A slow reader takes little at a time, so the window opens in small steps.
    let mut buf = vec![0u8; if read_rate.is_some() { 4096 } else { 256 * 1024 }];
    let mut total = 0u64;
    let started = Instant::now();
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n as u64,
        }
        if let Some(r) = read_rate {
            std::thread::sleep(Duration::from_secs_f64(total as f64 / r).saturating_sub(started.elapsed()));
        }
        if abort_after.is_some_and(|a| total >= a) {
            // SO_LINGER {on, 0}: close() sends a reset instead of a FIN.
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: valid socket and option struct.
            unsafe {
                libc::setsockopt(
                    c.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                )
            };
            return;
        }
    }
}

fn send(args: &[String]) {
    let to: SocketAddr = arg(args, "--to").unwrap_or_else(|| die("--to needed")).parse().unwrap_or_else(|e| die(&format!("{e}")));
    let bytes: u64 = arg(args, "--bytes").unwrap_or("0").parse().unwrap_or_else(|_| die("bad --bytes"));
    let conns: u32 = arg(args, "--conns").unwrap_or("1").parse().unwrap_or_else(|_| die("bad --conns"));
    let timeout = arg(args, "--connect-timeout").map(duration);
    // Paced: on average no faster than this (benchmarks of cost against traffic).
    let rate: Option<f64> = arg(args, "--rate").map(|r| r.parse().unwrap_or_else(|_| die("bad --rate")));
    let chunk = vec![0x5au8; 64 * 1024];
    for _ in 0..conns {
        let c = match timeout {
            Some(t) => TcpStream::connect_timeout(&to, t),
            None => TcpStream::connect(to),
        };
        let mut c = match c {
            Ok(c) => c,
            Err(e) => {
                println!("connect-error {:?}", e.kind());
                continue;
            }
        };
        set_buf(c.as_raw_fd(), libc::SO_SNDBUF, arg(args, "--sndbuf"));
        if args.iter().any(|a| a == "--connect-only") {
            println!("connected");
            continue;
        }
        let mut left = bytes;
        let mut result = Ok(());
        let started = Instant::now();
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if let Err(e) = c.write_all(&chunk[..n]) {
                result = Err(e);
                break;
            }
            left -= n as u64;
            if let Some(r) = rate {
                let due = Duration::from_secs_f64((bytes - left) as f64 / r);
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
        }
        if let (Ok(()), Some(hold)) = (&result, arg(args, "--hold").map(duration)) {
            wait_acked(&c);
            println!("drained {}", c.local_addr().map(|a| a.port()).unwrap_or(0));
            std::io::stdout().flush().ok();
            std::thread::sleep(hold);
        }
        match result {
            Ok(()) => {
                // Orderly close: wait for the peer to have read everything.
                c.shutdown(std::net::Shutdown::Write).ok();
                let mut sink = [0u8; 1024];
                while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
                println!("ok {bytes}");
            }
            Err(e) => println!("write-error {:?}", e.kind()),
        }
    }
}

/// Waits (up to a minute) until the peer has acknowledged everything written.
fn wait_acked(c: &TcpStream) {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let mut outq: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) on a TCP socket writes one int: bytes not yet acknowledged.
        if unsafe { libc::ioctl(c.as_raw_fd(), libc::TIOCOUTQ, &mut outq) } != 0 || outq == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
