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
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key and secret the test server accepts (and nothing else).
pub const ACCESS_KEY: &str = "tcpfrtest";
pub const SECRET_KEY: &str = "tcpfrtestsecret";

/// A running SeaweedFS (master, volume, filer and S3 gateway in one process) with one
/// bucket. Killed, with its data, on drop.
pub struct Seaweed {
    child: Child,
    /// `http://127.0.0.1:PORT`: the S3 endpoint.
    pub endpoint: String,
    pub bucket: String,
    master: String,
    dir: tempfile::TempDir,
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// A free loopback port `p` with `p + 10000` free as well.
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

impl Seaweed {
    /// Starts the server and creates `bucket`; waits (≤ 60 s) until S3 answers.
    /// Panics with the server's log when it does not come up (this is test support).
    pub fn start(bucket: &str) -> Seaweed {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"tcpfr","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .expect("write s3.json");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("log file");
        // weed finds its gRPC ports at port + 10000 in places (raft among them), so each
        // port is chosen with that one free too.
        let [master, volume, filer, s3] = [free_pair(), free_pair(), free_pair(), free_pair()];
        let grpc = |p: u16| p + 10000;
        let mut cmd = Command::new(weed_binary());
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={}", grpc(master)))
            .arg(format!("-master.dir={}", data.display()))
            // Small volumes, as many as the disk takes (a fixed 50 filled up at 3.2 GB
            // in the fleet benchmark).
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=0"])
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={}", grpc(volume)))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={}", grpc(filer)))
            .arg(format!("-filer.localSocket={}", dir.path().join("filer.sock").display()))
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
            dir,
        };
        sw.wait_up(s3);
        sw.create_bucket(bucket);
        sw
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    fn wait_up(&mut self, s3: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weed server exited ({status}) while starting:\n{}", self.log());
            }
            // The S3 gateway answers HTTP once the filer behind it is up.
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", s3)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
                    let mut buf = [0u8; 12];
                    if std::io::Read::read(&mut s, &mut buf).is_ok_and(|n| n >= 12 && buf.starts_with(b"HTTP/1.")) {
                        return;
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
        let out = self.dir.path().join("shell.out");
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
