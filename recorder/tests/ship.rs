//! `tcpfr-recorder --ship s3://…` against a real S3 (SeaweedFS, `tcpfr_testsupport`):
//! every closed file ends up in the store at its layout key with identical bytes, the
//! store's manifest lists exactly the local files, and `recorder_stats` agrees with a
//! listing of the store made here with object_store; a store that is down at start is
//! caught up with once it comes up (a TCP relay in front of SeaweedFS plays the outage:
//! nothing listens on its port until the test opens it); a recorder killed with SIGKILL
//! while shipping is completed by the next start. Credentials never reach the log.

mod testbed;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::Digest;
use tcpfr_schema::shipped;
use tcpfr_schema::manifest::Manifest;
use tcpfr_schema::read::Recording;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_testsupport::{Seaweed, ACCESS_KEY, SECRET_KEY};
use testbed::*;

const PREFIX: &str = "fleet";

/// A recorder with `--ship`, its log kept (for the credential check) and echoed.
struct Shipper {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Shipper {
    fn start(out: &Path, env: &[(&'static str, String)], extra: &[&str]) -> Shipper {
        let mut child = Command::new(recorder_bin())
            .arg("--out")
            .arg(out)
            .args(["--rotate-interval", "2s", "--ship-backoff-max", "2s", "--log", "info"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpfr-recorder starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[recorder] {line}");
                if line.contains("recording to") {
                    let _ = tx.send(());
                }
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut s = Shipper { child: Some(child), log };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            s.kill();
            panic!("recorder did not start within 30 s:\n{}", s.log());
        }
        s
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGINT and a clean exit (bounded).
    fn stop(&mut self) -> Duration {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                assert!(s.success(), "recorder exited with {s}");
                std::thread::sleep(Duration::from_millis(100)); // the log thread
                return t.elapsed();
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("recorder did not stop within 60 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP relay on a loopback port to `upstream`: nothing listens on the port until
/// [`Relay::open`] (connections are refused, as by a store that is down).
struct Relay {
    port: u16,
    upstream: String,
}

impl Relay {
    fn new(upstream: &str) -> Relay {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Relay { port, upstream: upstream.trim_start_matches("http://").to_string() }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts relaying (for the rest of the test process).
    fn open(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("the relay's port is still free");
        let upstream = self.upstream.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let Ok(up) = TcpStream::connect(&upstream) else { continue };
                let (mut a, mut b) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
                let (mut c, mut d) = (up, conn);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c, &mut d);
                    let _ = d.shutdown(std::net::Shutdown::Write);
                });
            }
        });
    }
}

/// `/metrics` of a recorder on 127.0.0.1:`port`.
fn scrape(port: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The recorder's environment: the server's, with `endpoint` in place of its own.
fn env_with(sw: &Seaweed, endpoint: &str) -> Vec<(&'static str, String)> {
    sw.env().into_iter().map(|(k, v)| if k == "AWS_ENDPOINT" { (k, endpoint.to_string()) } else { (k, v) }).collect()
}

/// Our own client of the store (not the recorder's code): every object under the
/// prefix with its bytes.
fn store_objects(sw: &Seaweed) -> BTreeMap<String, Vec<u8>> {
    objects(sw, true)
}

/// Keys of the data objects (a listing only).
fn store_keys(sw: &Seaweed) -> BTreeSet<String> {
    data_keys(&objects(sw, false))
}

fn objects(sw: &Seaweed, with_bytes: bool) -> BTreeMap<String, Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&sw.endpoint)
            .with_allow_http(true)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region("us-east-1")
            .with_bucket_name(&sw.bucket)
            .build()
            .unwrap();
        let prefix = object_store::path::Path::from(PREFIX);
        let metas: Vec<_> = s3.list(Some(&prefix)).try_collect().await.unwrap();
        let mut out = BTreeMap::new();
        for m in metas {
            let bytes = if with_bytes { s3.get(&m.location).await.unwrap().bytes().await.unwrap() } else { Default::default() };
            let key = m.location.as_ref().strip_prefix(&format!("{PREFIX}/")).unwrap().to_string();
            out.insert(key, bytes.to_vec());
        }
        out
    })
}

/// Keys (below the prefix) of data objects only.
fn data_keys(objects: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    objects.keys().filter(|k| !k.starts_with(shipped::MANIFESTS)).cloned().collect()
}

fn recordings(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Every file of each recording is in the store at its key with the manifest's
/// checksum; each store manifest lists exactly the local files (and `end`); nothing
/// else is there. Returns the number of data objects.
fn assert_store_complete(sw: &Seaweed, recs: &[Recording]) -> usize {
    let objects = store_objects(sw);
    let mut expected = BTreeSet::new();
    for rec in recs {
        let m = &rec.manifest;
        assert!(m.end.is_some(), "{}: closed", rec.dir.display());
        for f in &m.files {
            let key = shipped::data_key(m, f);
            let bytes = objects.get(&key).unwrap_or_else(|| panic!("{key} is not in the store ({} objects)", objects.len()));
            assert_eq!(hex(&sha2::Sha256::digest(bytes)), f.sha256, "{key}: bytes differ from the manifest's checksum");
            let local = std::fs::read(Manifest::file_path(&rec.dir, f)).unwrap();
            assert!(local == *bytes, "{key}: bytes differ from the local file");
            expected.insert(key);
        }
        let mkey = shipped::manifest_key(m);
        let shipped_m = Manifest::parse(objects.get(&mkey).unwrap_or_else(|| panic!("no manifest {mkey}")), Path::new(&mkey)).unwrap();
        let list = |m: &Manifest| m.files.iter().map(|f| (f.table.clone(), f.segment, f.bytes, f.sha256.clone())).collect::<BTreeSet<_>>();
        assert_eq!(list(&shipped_m), list(m), "{mkey}: the store's manifest lists the local files");
        assert_eq!(shipped_m.end, m.end, "{mkey}: end");
        assert!(shipped_m.files.iter().all(|f| f.path == shipped::data_key(m, f)), "{mkey}: paths are the keys");
    }
    assert_eq!(data_keys(&objects), expected, "the store holds exactly the recordings' files");
    expected.len()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ship_rows(rec: &Recording) -> Vec<RecorderStats> {
    let mut rows: Vec<RecorderStats> = rec.read_table::<RecorderStats>().unwrap().into_iter().filter(|r| &*r.stream == "ship").collect();
    rows.sort_by_key(|r| r.time.0);
    rows
}

/// The final `ship` row: nothing waiting, and as many shipped files and bytes as the
/// store holds but for the last segment (closed after that row was written).
fn assert_final_row(sw: &Seaweed, recs: &[Recording]) -> RecorderStats {
    let last = recs.last().unwrap();
    let row = ship_rows(last).pop().expect("ship rows");
    assert_eq!((row.unshipped_files, row.unshipped_bytes), (Some(0), Some(0)), "nothing waits at the end: {row:?}");
    let objects = store_objects(sw);
    let max_seg = last.manifest.files.iter().map(|f| f.segment).max().unwrap();
    let last_keys: BTreeSet<String> =
        last.manifest.files.iter().filter(|f| f.segment == max_seg).map(|f| shipped::data_key(&last.manifest, f)).collect();
    let before: Vec<(&String, &Vec<u8>)> = objects.iter().filter(|(k, _)| !k.starts_with(shipped::MANIFESTS) && !last_keys.contains(*k)).collect();
    assert_eq!(row.shipped_files, Some(before.len() as i64), "shipped files vs a listing of the store: {row:?}");
    assert_eq!(row.shipped_bytes, Some(before.iter().map(|(_, b)| b.len() as i64).sum()), "shipped bytes: {row:?}");
    assert_eq!((row.ship_lost_files, row.ship_lost_bytes), (Some(0), Some(0)));
    row
}

fn assert_no_credentials(log: &str) {
    assert!(!log.contains(SECRET_KEY), "the secret key is in the recorder's log");
    assert!(!log.contains(ACCESS_KEY), "the access key is in the recorder's log");
}

#[test]
fn every_closed_file_is_shipped_with_its_manifest_while_recording() {
    let _serial = serial();
    let sw = Seaweed::start("ship1");
    let bed = Bed::new("ship", 17, false);
    let _traffic = bed.lossy_bulk(5701, 0.02);
    let out = tempfile::tempdir().unwrap();
    let mut rec = Shipper::start(out.path(), &sw.env(), &["--ship", &sw.url(PREFIX)]);

    // Shipping lag: when a file is first listed locally vs first in the store.
    let mut local_seen: BTreeMap<String, Instant> = BTreeMap::new();
    let mut store_seen: BTreeMap<String, Instant> = BTreeMap::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(9) {
        if let Some(dir) = recordings(out.path()).first() {
            if let Ok(m) = Manifest::load(&dir.join("manifest.json")) {
                for f in &m.files {
                    local_seen.entry(shipped::data_key(&m, f)).or_insert_with(Instant::now);
                }
            }
        }
        for k in store_keys(&sw) {
            store_seen.entry(k).or_insert_with(Instant::now);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let lags: Vec<Duration> = store_seen.iter().filter_map(|(k, t)| local_seen.get(k).map(|l| t.saturating_duration_since(*l))).collect();
    assert!(lags.len() >= 16, "files were shipped while recording: {} of {}", lags.len(), local_seen.len());
    let stop_took = rec.stop();

    let recs: Vec<Recording> = recordings(out.path()).iter().map(|d| Recording::open(d).unwrap()).collect();
    assert_eq!(recs.len(), 1);
    let retransmits = recs[0].read_table::<Retransmit>().unwrap().len();
    assert!(retransmits > 0, "the link lost data");
    let n = assert_store_complete(&sw, &recs);
    let row = assert_final_row(&sw, &recs);
    assert_eq!(row.ship_errors, Some(0), "{row:?}");
    assert!(ship_rows(&recs[0]).len() >= 8, "a ship row per interval");
    assert_no_credentials(&rec.log());
    eprintln!(
        "shipped {n} files ({retransmits} retransmits recorded); lag after a file was listed locally: max {:?}, median {:?} (polled every 100 ms); stopping took {stop_took:?}",
        lags.iter().max().unwrap(),
        { let mut l = lags.clone(); l.sort(); l[l.len() / 2] }
    );
}

#[test]
fn a_store_down_at_start_is_caught_up_with_and_recording_goes_on() {
    let _serial = serial();
    let sw = Seaweed::start("ship2");
    let bed = Bed::new("shp2", 18, false);
    let _traffic = bed.lossy_bulk(5702, 0.02);
    let relay = Relay::new(&sw.endpoint);
    let out = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut rec = Shipper::start(out.path(), &env_with(&sw, &relay.endpoint()), &["--ship", &sw.url(PREFIX), "--metrics-listen", &port]);

    // Store down: files pile up locally, errors and what waits are in recorder_stats
    // and in the live metrics.
    std::thread::sleep(Duration::from_secs(7));
    let dir = recordings(out.path()).pop().unwrap();
    let live = Recording::open(&dir).unwrap();
    assert!(live.manifest.files.len() >= 8, "recording goes on: {} files", live.manifest.files.len());
    let row = ship_rows(&live).pop().expect("ship rows in the closed files");
    assert!(row.ship_errors.unwrap() > 0, "{row:?}");
    assert!(row.unshipped_bytes.unwrap() > 0 && row.unshipped_files.unwrap() > 0, "{row:?}");
    assert_eq!(row.shipped_files, Some(0), "{row:?}");
    assert!(ship_rows(&live).iter().any(|r| r.note.as_deref().is_some_and(|n| n.starts_with("upload error:"))));
    assert!(store_keys(&sw).is_empty());
    let metrics = scrape(&port);
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("tcpfr_ship_errors_total") > 0.0 && value("tcpfr_ship_unshipped_bytes") > 0.0, "{metrics}");
    assert_eq!(value("tcpfr_ship_files_total"), 0.0);

    // The store comes up: everything closed so far gets there without a restart.
    relay.open();
    let up = Instant::now();
    let caught_up = loop {
        let m = Manifest::load(&dir.join("manifest.json")).unwrap();
        let keys = store_keys(&sw);
        if m.files.iter().all(|f| keys.contains(&shipped::data_key(&m, f))) {
            break up.elapsed();
        }
        assert!(up.elapsed() < Duration::from_secs(30), "not caught up within 30 s of the store coming up");
        std::thread::sleep(Duration::from_millis(100));
    };
    rec.stop();
    let recs: Vec<Recording> = recordings(out.path()).iter().map(|d| Recording::open(d).unwrap()).collect();
    let n = assert_store_complete(&sw, &recs);
    let row = assert_final_row(&sw, &recs);
    assert!(row.ship_errors.unwrap() > 0);
    let log = rec.log();
    assert!(log.contains("shipping to") && log.contains("failed"), "the outage is in the log");
    assert_no_credentials(&log);
    eprintln!("store down {} errors; caught up {caught_up:?} after it came up (backoff max 2 s); {n} files shipped", row.ship_errors.unwrap());
}

#[test]
fn a_recorder_killed_while_shipping_is_completed_by_the_next_start() {
    let _serial = serial();
    let sw = Seaweed::start("ship3");
    let relay = Relay::new(&sw.endpoint);
    let env = env_with(&sw, &relay.endpoint());
    let out = tempfile::tempdir().unwrap();
    let url = sw.url(PREFIX);
    // Files pile up while the store is down, then the kill lands as soon as the first
    // of them reaches the store: mid-shipping, before the store's manifest lists them all.
    let mut first = Shipper::start(out.path(), &env, &["--ship", &url]);
    std::thread::sleep(Duration::from_secs(5));
    relay.open();
    let t = Instant::now();
    while store_keys(&sw).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(30), "nothing shipped within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill();
    let killed_dir = recordings(out.path()).pop().unwrap();
    let local = Manifest::load(&killed_dir.join("manifest.json")).unwrap();
    let in_store = store_keys(&sw).len();
    eprintln!("killed with {in_store} of {} closed files in the store", local.files.len());

    let mut second = Shipper::start(out.path(), &env, &["--ship", &url]);
    std::thread::sleep(Duration::from_secs(5));
    second.stop();
    let recs: Vec<Recording> = recordings(out.path()).iter().map(|d| Recording::open(d).unwrap()).collect();
    assert_eq!(recs.len(), 2);
    assert!(recs[0].manifest.recovery.is_some(), "the killed recording was completed by crash recovery");
    let n = assert_store_complete(&sw, &recs);
    let row = assert_final_row(&sw, &recs);
    assert_no_credentials(&first.log());
    assert_no_credentials(&second.log());
    eprintln!("after the restart: {n} files of 2 recordings in the store; final row {row:?}");
}

#[test]
fn files_the_ring_deletes_before_they_are_shipped_are_counted_as_lost() {
    let _serial = serial();
    let sw = Seaweed::start("ship4");
    // The store never comes up: the relay's port is never opened.
    let relay = Relay::new(&sw.endpoint);
    let out = tempfile::tempdir().unwrap();
    let mut rec = Shipper::start(
        out.path(),
        &env_with(&sw, &relay.endpoint()),
        &["--ship", &sw.url(PREFIX), "--rotate-size", "64KiB", "--max-disk", "200KiB"],
    );
    // Connections on loopback, opened and closed until the ring has deleted a file (its
    // warning), so the recording outgrows --max-disk whatever else the machine does.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(c) = std::net::TcpStream::connect(addr) {
                    while let Ok((s, _)) = listener.accept() {
                        drop(s);
                    }
                    drop(c);
                }
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !rec.log().contains("before they were shipped") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more rotation, so a stats row after the loss is written.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    let took = rec.stop();
    let recs: Vec<Recording> = recordings(out.path()).iter().map(|d| Recording::open(d).unwrap()).collect();
    let row = ship_rows(recs.last().unwrap()).pop().expect("ship rows");
    assert!(row.ship_lost_files.unwrap() > 0 && row.ship_lost_bytes.unwrap() > 0, "{row:?}");
    // (What still waits may be nothing: --max-disk can leave only the open segment.)
    assert!(row.unshipped_files.is_some() && row.ship_errors.unwrap() > 0, "{row:?}");
    assert_eq!(row.shipped_files, Some(0));
    assert!(rec.log().contains("before they were shipped"), "a warning says so");
    assert!(store_keys(&sw).is_empty());
    // A store that is down does not hold up stopping.
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    eprintln!("lost to shipping: {} files, {} bytes; stopping took {took:?}", row.ship_lost_files.unwrap(), row.ship_lost_bytes.unwrap());
}
