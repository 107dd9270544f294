//! What the crates' tests share: servers started for real and stopped on drop, and the
//! fleet tests' recordings and questions.
//!
//! [`Seaweed`]: a SeaweedFS `weed server -s3` on loopback — a real S3-compatible object
//! store for the shipping and fleet tests (scripts/bootstrap.sh installs `weed` into
//! `$TCPFR_TOOLS/bin`). Every port is chosen at run time, the data lives in a temp dir,
//! and the access key is required (so credentials from the environment are exercised).
//!
//! [`fleet`]: generated hosts' recordings and the questions the fleet tests compare.
//!
//! [`powercut`]: a FUSE file system, kept in memory, that forgets what was not fsynced
//! when told the power went off (the durability tests).

pub mod fleet;
pub mod powercut;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key and secret the test server accepts (and nothing else).
pub const ACCESS_KEY: &str = "tcpfrtest";
pub const SECRET_KEY: &str = "tcpfrtestsecret";

/// A running SeaweedFS (master, volume, filer and S3 gateway in one process) with one
/// bucket. Killed on drop, with its data unless it was started to keep it
/// ([`Seaweed::start_kept`], [`Seaweed::reuse`]).
pub struct Seaweed {
    child: Child,
    /// `http://127.0.0.1:PORT`: the S3 endpoint.
    pub endpoint: String,
    pub bucket: String,
    master: String,
    home: Home,
}

/// Where a server's data, configuration and log live.
enum Home {
    /// Deleted with the server.
    Temp(tempfile::TempDir),
    /// Kept for a later [`Seaweed::reuse`].
    Kept(PathBuf),
}

impl Home {
    fn path(&self) -> &Path {
        match self {
            Home::Temp(t) => t.path(),
            Home::Kept(p) => p,
        }
    }
}

/// The file in a kept home that records its ports: the master's metadata names the
/// master and volume servers by address, so a reused store runs on the same ports.
const PORTS_FILE: &str = "ports";

/// The `weed` binary: `$TCPFR_TOOLS/bin/weed`, else `~/.cache/tcpfr-tools/bin/weed`, else PATH.
pub fn weed_binary() -> PathBuf {
    let tools = std::env::var_os("TCPFR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tcpfr-tools"));
    let p = tools.join("bin/weed");
    if p.exists() {
        p
    } else {
        PathBuf::from("weed")
    }
}

/// A free loopback port `p` with `p + 10000` free as well, both below the ephemeral
/// range (32768–60999 by default) that outgoing connections and `bind(0)` draw from:
/// a port chosen there, released, and handed to `weed` can be taken by someone's
/// outgoing connection before `weed` binds it. Chosen at random in 10000–19999, so
/// servers started at the same time by other tests rarely pick the same.
fn free_pair() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let p = 10_000 + (h.finish() % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// A free loopback port below the ephemeral range, at random (see [`free_pair`]): for a
/// server a test starts, which binds it a moment later.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let p = 20_000 + (h.finish() % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Starts left to a server whose ports were taken between choosing and binding them.
const START_ATTEMPTS: usize = 3;

impl Seaweed {
    /// Starts the server and creates `bucket`; waits (≤ 60 s) until S3 answers.
    /// Panics with the server's log when it does not come up (this is test support).
    pub fn start(bucket: &str) -> Seaweed {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let home = Home::Temp(tempfile::tempdir().expect("temp dir"));
            match Self::start_in(home, bucket, [free_pair(), free_pair(), free_pair(), free_pair()]) {
                Ok(sw) => return sw,
                // Another process bound a chosen port first: choose again.
                Err(log) if log.contains("address already in use") => last = log,
                Err(log) => panic!("weed server exited while starting:\n{log}"),
            }
        }
        panic!("weed server could not bind its ports in {START_ATTEMPTS} attempts:\n{last}")
    }

    /// [`Seaweed::start`] with its data in `dir` (which must not exist, or be empty),
    /// kept after the server stops, for [`Seaweed::reuse`]: a benchmark's store is made
    /// once and asked many times.
    pub fn start_kept(dir: &Path, bucket: &str) -> Result<Seaweed, String> {
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(format!("{} is not empty: give a new directory to keep a store in (or --reuse it)", dir.display()));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let ports = [free_pair(), free_pair(), free_pair(), free_pair()];
        let text = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        std::fs::write(dir.join(PORTS_FILE), text).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
        Self::start_in(Home::Kept(dir.to_path_buf()), bucket, ports).map_err(|log| format!("weed server exited while starting:\n{log}"))
    }

    /// Starts again on the data a [`Seaweed::start_kept`] server left in `dir`, on the
    /// ports it had; `bucket` is created if it is not there.
    pub fn reuse(dir: &Path, bucket: &str) -> Result<Seaweed, String> {
        let text = std::fs::read_to_string(dir.join(PORTS_FILE))
            .map_err(|e| format!("{} holds no store kept by with-seaweed --keep ({PORTS_FILE}: {e})", dir.display()))?;
        let ports: Vec<u16> = text.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        let Ok(ports) = <[u16; 4]>::try_from(ports) else {
            return Err(format!("{}/{PORTS_FILE} is damaged: {text:?}", dir.display()));
        };
        if let Some(p) = ports.iter().find(|p| TcpListener::bind(("127.0.0.1", **p)).is_err()) {
            return Err(format!("port {p} of the kept store is in use: is another server running on {}?", dir.display()));
        }
        Self::start_in(Home::Kept(dir.to_path_buf()), bucket, ports).map_err(|log| format!("weed server exited while starting:\n{log}"))
    }

    /// Starts `weed` on `ports` with its files in `home`; its log if it exits while
    /// starting.
    fn start_in(home: Home, bucket: &str, [master, volume, filer, s3]: [u16; 4]) -> Result<Seaweed, String> {
        let dir = home.path();
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"tcpfr","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .expect("write s3.json");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let log = std::fs::File::create(dir.join("weed.log")).expect("log file");
        // weed finds its gRPC ports at port + 10000 in places (raft among them), so each
        // port is chosen with that one free too.
        let grpc = |p: u16| p + 10000;
        let mut cmd = Command::new(weed_binary());
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={}", grpc(master)))
            .arg(format!("-master.dir={}", data.display()))
            // Small volumes, as many as the disk takes (a fixed number fills up).
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=0"])
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={}", grpc(volume)))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={}", grpc(filer)))
            .arg(format!("-filer.localSocket={}", dir.join("filer.sock").display()))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={}", grpc(s3)))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.config={}", config.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start {} ({e}): run scripts/bootstrap.sh to install SeaweedFS", weed_binary().display()),
        };
        let mut sw = Seaweed {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: bucket.to_string(),
            master: format!("127.0.0.1:{master}"),
            home,
        };
        sw.wait_up(s3)?;
        sw.create_bucket(bucket);
        Ok(sw)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("weed.log")).unwrap_or_default()
    }

    fn wait_up(&mut self, s3: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("({status}) {}", self.log()));
            }
            // The S3 gateway answers HTTP once the filer behind it is up.
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", s3)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
                    let mut buf = [0u8; 12];
                    if std::io::Read::read(&mut s, &mut buf).is_ok_and(|n| n >= 12 && buf.starts_with(b"HTTP/1.")) {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("SeaweedFS S3 did not answer within 60 s:\n{}", self.log());
    }

    /// Creates a bucket through `weed shell` (object_store does not create buckets).
    pub fn create_bucket(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.shell(&format!("s3.bucket.create -name {name}"));
            if text.contains("created bucket") || text.contains("already exist") {
                return;
            }
            if Instant::now() > deadline {
                panic!("cannot create bucket {name}: {text}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs one `weed shell` command; its output. Bounded to 20 s (a shell that cannot
    /// reach the master waits forever).
    fn shell(&self, command: &str) -> String {
        let out = self.home.path().join("shell.out");
        let file = std::fs::File::create(&out).expect("shell output");
        let mut child = Command::new(weed_binary())
            .arg("shell")
            .arg(format!("-master={}", self.master))
            .stdin(Stdio::piped())
            .stdout(file.try_clone().expect("shell output"))
            .stderr(file)
            .spawn()
            .expect("run weed shell");
        let _ = child.stdin.take().expect("stdin").write_all(format!("{command}\n").as_bytes());
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        std::fs::read_to_string(&out).unwrap_or_default()
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_matches('/'))
    }

    /// The environment an S3 client (object_store's `AmazonS3Builder::from_env`, DuckDB,
    /// Spark) needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// Applies [`Seaweed::env`] to a command.
    pub fn configure(&self, cmd: &mut Command) {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server comes up, refuses a wrong key, and takes a bucket.
    #[test]
    fn a_kept_store_is_reused_with_its_objects() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("store");
        {
            let sw = Seaweed::start_kept(&dir, "keep").unwrap();
            sw.shell("fs.mkdir /buckets/keep/kept-dir");
            assert!(sw.shell("fs.ls /buckets/keep").contains("kept-dir"));
            assert!(Seaweed::start_kept(&dir, "keep").is_err(), "a second server on a kept store");
        }
        let sw = Seaweed::reuse(&dir, "keep").unwrap();
        let ls = sw.shell("fs.ls /buckets/keep");
        assert!(ls.contains("kept-dir"), "the kept directory is gone: {ls}");
        drop(sw);
        assert!(Seaweed::reuse(t.path(), "keep").err().unwrap().contains("no store kept"));
    }

    #[test]
    fn starts_and_requires_the_key() {
        let sw = Seaweed::start("probe");
        sw.create_bucket("probe"); // twice is fine
        let mut s = TcpStream::connect(sw.endpoint.trim_start_matches("http://")).unwrap();
        s.write_all(b"GET /probe HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 403") || text.starts_with("HTTP/1.0 403"), "anonymous listing must be refused: {text}");
    }
}
