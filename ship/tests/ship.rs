//! The library on a copy of a real sample: only the files its manifest lists are
//! shipped (not files being written, crash sidecars or quarantine), under the keys of
//! FORMAT.md, byte for byte; the shipped manifest finds them all; re-runs send nothing.

use std::path::{Path, PathBuf};

use tcpfr_schema::shipped;
use tcpfr_schema::read::{open_shipped, Recording, Verify};
use tcpfr_ship::{ship, Options, Store};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/services/recording")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            all_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[tokio::test]
async fn ships_only_listed_files_under_partitioned_keys_and_reruns_send_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rec_dir = tmp.path().join("rec");
    copy_dir(&sample(), &rec_dir);
    // What a live or crashed recording also holds, never to be shipped.
    for junk in [
        "retransmits/.20261123T124400.000Z-000002.parquet.inprogress",
        "retransmits/.20261123T124400.000Z-000002.parquet.wal",
        "retransmits/.20261123T124400.000Z-000002.parquet.footer",
        "flows/.20261123T124400.000Z-000002.parquet.recovering",
        "quarantine/flows/x.parquet",
        "snapshots/20261123T124400Z-sigusr1/manifest.json",
    ] {
        let p = rec_dir.join(junk);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"not for shipping").unwrap();
    }
    let rec = Recording::open(&rec_dir).unwrap();
    let listed = rec.manifest.files.len();
    assert_eq!(listed, 8);

    let out = tmp.path().join("store");
    let store = Store::open(&format!("file://{}", out.display())).unwrap();
    store.check().await.unwrap();
    let progress = std::sync::Mutex::new(Vec::new());
    let s = ship(&store, std::slice::from_ref(&rec), &Options::default(), &|d| progress.lock().unwrap().push(d)).await.unwrap();
    let total: u64 = rec.manifest.files.iter().map(|f| f.bytes).sum();
    assert_eq!((s.uploaded, s.uploaded_bytes, s.skipped, s.manifests_written), (listed, total, 0, 1));
    assert_eq!(progress.lock().unwrap().iter().max(), Some(&total));

    // Exactly the listed files plus one manifest, at the documented keys.
    let mut files = Vec::new();
    all_files(&out, &mut files);
    assert_eq!(files.len(), listed + 1, "{files:?}");
    for f in &rec.manifest.files {
        let key = shipped::data_key(&rec.manifest, f);
        assert_eq!(key, format!("{}/host=sample-services/date=2026-11-23/hour=12/{}-{:06}.parquet", f.table, rec.manifest.recording_id, f.segment));
        assert_eq!(std::fs::read(out.join(&key)).unwrap(), std::fs::read(rec_dir.join(&f.path)).unwrap(), "{key}");
    }
    // The shipped manifest finds every file, with its size and checksum.
    let shipped_recs = open_shipped(&out).unwrap();
    assert_eq!(shipped_recs.len(), 1);
    let sr = &shipped_recs[0];
    assert_eq!(sr.manifest.recording_id, rec.manifest.recording_id);
    assert!(sr.verify(Verify::Full).is_empty(), "{:?}", sr.verify(Verify::Full));
    assert!(out.join(shipped::manifest_key(&rec.manifest)).is_file());

    // Again: nothing sent, the unchanged manifest not rewritten.
    let s = ship(&store, std::slice::from_ref(&rec), &Options::default(), &|_| {}).await.unwrap();
    assert_eq!((s.uploaded, s.skipped, s.skipped_bytes, s.manifests_written), (0, listed, total, 0));

    // A truncated object (a foreign writer, a copy cut short) is replaced.
    let victim = out.join(shipped::data_key(&rec.manifest, &rec.manifest.files[0]));
    std::fs::write(&victim, b"short").unwrap();
    let s = ship(&store, std::slice::from_ref(&rec), &Options::default(), &|_| {}).await.unwrap();
    assert_eq!((s.uploaded, s.skipped), (1, listed - 1));
    assert!(sr.verify(Verify::Full).is_empty());
}

#[tokio::test]
async fn a_damaged_recording_is_refused_and_its_manifest_not_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let rec_dir = tmp.path().join("rec");
    copy_dir(&sample(), &rec_dir);
    let rec = Recording::open(&rec_dir).unwrap();
    let victim = rec_dir.join(&rec.manifest.files[3].path);
    std::fs::write(&victim, b"truncated").unwrap();
    let out = tmp.path().join("store");
    let store = Store::open(out.to_str().unwrap()).unwrap();
    let err = ship(&store, std::slice::from_ref(&rec), &Options::default(), &|_| {}).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("the recording is damaged") && msg.contains("run again"), "{msg}");
    assert!(!out.join(shipped::manifest_key(&rec.manifest)).exists());
}

#[tokio::test]
async fn host_names_are_escaped_into_one_segment_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let rec_dir = tmp.path().join("rec");
    copy_dir(&sample(), &rec_dir);
    let mut rec = Recording::open(&rec_dir).unwrap();
    rec.manifest.host = "rack 7/web=1%".into();
    let out = tmp.path().join("store");
    let store = Store::open(&format!("file://{}", out.display())).unwrap();
    ship(&store, std::slice::from_ref(&rec), &Options::default(), &|_| {}).await.unwrap();
    let dir = out.join("flows/host=rack%207%2Fweb%3D1%25");
    assert!(dir.is_dir(), "{:?}", std::fs::read_dir(out.join("flows")).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>());
    let back = open_shipped(&out).unwrap();
    assert_eq!(back[0].manifest.host, "rack 7/web=1%");
    assert!(back[0].verify(Verify::Sizes).is_empty());
}
