//! The Debian package, for real on this machine: built by cargo-deb from the binaries the
//! test build made (`--no-build --profile dev`: a release build takes too long for CI),
//! installed with dpkg, its binaries run, the installed recorder started as its `tcpfr`
//! user with the documented capabilities (as README "Install on a host" does) and
//! recording, then purged: what a purge removes is gone, and what it keeps by design
//! (recordings, the tcpfr user and group) is there.
//!
//! It refuses to run where the package is installed already (it would purge it). It
//! puts back what was there before it: the tcpfr user and group, /var/lib/tcpfr.

mod testbed;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tcpfr_recorder::privileges::CAPABILITIES;
use tcpfr_schema::state_changes::StateChange;
use testbed::*;

const PACKAGE: &str = "tcpfr-recorder";
const STATE_DIR: &str = "/var/lib/tcpfr";

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn user_exists(name: &str) -> bool {
    Command::new("getent").args(["passwd", name]).output().is_ok_and(|o| o.status.success())
}

/// Puts the machine back as it was, also when the test fails half-way.
struct Restore {
    user_existed: bool,
    /// /var/lib/tcpfr before: (uid, gid, mode).
    state_dir: Option<(u32, u32, u32)>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg").args(["--purge", PACKAGE]).status();
        }
        if !self.user_existed {
            let _ = Command::new("userdel").arg("tcpfr").status();
            let _ = Command::new("groupdel").arg("tcpfr").output();
        }
        match self.state_dir {
            Some((uid, gid, mode)) => {
                let _ = std::fs::create_dir_all(STATE_DIR);
                let _ = std::os::unix::fs::chown(STATE_DIR, Some(uid), Some(gid));
                let _ = std::fs::set_permissions(STATE_DIR, std::fs::Permissions::from_mode(mode));
            }
            None => {
                let _ = std::fs::remove_dir_all(STATE_DIR);
            }
        }
    }
}

/// Builds the .deb from this build's binaries into `dir`.
fn build_deb(dir: &Path) -> PathBuf {
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_tcpfr-recorder")).parent().unwrap();
    let analyzer = profile_dir.join("tcpfr");
    assert!(
        analyzer.exists(),
        "{} is missing: the package takes both binaries of this build (cargo build --workspace builds it)",
        analyzer.display()
    );
    let deb = dir.join("tcpfr-recorder.deb");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tools = std::env::var("TCPFR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tcpfr-tools"));
    let out = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("PATH", format!("{}:{}", tools.join("bin").display(), std::env::var("PATH").unwrap_or_default()))
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
        .args(["deb", "-p", PACKAGE, "--no-build", "--profile", "dev", "--no-dbgsym", "--strip", "--fast", "--output"])
        .arg(&deb)
        .output()
        .expect("cargo deb (scripts/bootstrap.sh installs cargo-deb)");
    assert!(out.status.success(), "cargo deb: {}", String::from_utf8_lossy(&out.stderr));
    deb
}

fn assert_stripped(bin: &str) {
    let out = run(&["readelf", "-S", "--wide", bin]);
    let sections = String::from_utf8_lossy(&out.stdout);
    // (.debug_gdb_scripts is a few bytes loaded with the program, not debug info.)
    assert!(!sections.contains(".debug_info") && !sections.contains(".debug_line"), "{bin} carries debug info");
    assert!(!sections.contains(".symtab"), "{bin} carries a symbol table");
}

fn version_of(bin: &str) -> String {
    String::from_utf8(run(&[bin, "--version"]).stdout).unwrap()
}

/// The installed recorder, as user tcpfr with the documented capabilities, records a
/// few loopback connections into `out`.
fn records_as_tcpfr(out: &Path) {
    let caps: Vec<String> = CAPABILITIES.iter().map(|n| n.cap.to_string().to_lowercase()).collect();
    let mut rec = start_recorder(capsh("tcpfr", &caps, Path::new("/usr/bin/tcpfr-recorder"), &["--out", out.to_str().unwrap()]));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for _ in 0..3 {
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _s = listener.accept().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let status = interrupt_and_wait(&mut rec, Duration::from_secs(30));
    assert!(status.success(), "installed recorder exited with {status}");
    let recording = only_recording(out);
    let to_port = recording
        .read_table::<StateChange>()
        .unwrap()
        .into_iter()
        .filter(|s| s.rport == port && &*s.new_state == "SYN_SENT")
        .count();
    assert_eq!(to_port, 3, "three connections to port {port} recorded");
    let meta = std::fs::metadata(&recording.dir).unwrap();
    let tcpfr_uid: u32 = String::from_utf8(run(&["id", "-u", "tcpfr"]).stdout).unwrap().trim().parse().unwrap();
    assert_eq!(meta.uid(), tcpfr_uid, "the recording is tcpfr's");
}

#[test]
fn the_debian_package_installs_runs_as_its_own_user_and_purges() {
    let _serial = serial();
    assert!(
        !installed(),
        "{PACKAGE} is installed on this machine: this test installs and purges it; `dpkg --purge {PACKAGE}` first"
    );
    let restore = Restore {
        user_existed: user_exists("tcpfr"),
        state_dir: std::fs::metadata(STATE_DIR).ok().map(|m| (m.uid(), m.gid(), m.mode() & 0o7777)),
    };
    let work = shared_tempdir();
    let deb = build_deb(work.path());
    run(&["dpkg", "-i", deb.to_str().unwrap()]);
    assert!(installed());

    for bin in ["/usr/bin/tcpfr-recorder", "/usr/bin/tcpfr"] {
        assert_stripped(bin);
    }
    assert!(version_of("/usr/bin/tcpfr-recorder").starts_with(&format!("tcpfr-recorder {}", env!("CARGO_PKG_VERSION"))));
    assert!(version_of("/usr/bin/tcpfr").starts_with(&format!("tcpfr {}", env!("CARGO_PKG_VERSION"))));
    let unit = "/usr/lib/systemd/system/tcpfr-recorder.service";
    let out = run(&["systemd-analyze", "verify", "--man=no", unit]);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(Path::new("/etc/default/tcpfr-recorder").exists());
    // The service's user, and its directory.
    assert!(user_exists("tcpfr"));
    let state = std::fs::metadata(STATE_DIR).unwrap();
    let tcpfr_uid: u32 = String::from_utf8(run(&["id", "-u", "tcpfr"]).stdout).unwrap().trim().parse().unwrap();
    assert_eq!((state.uid(), state.mode() & 0o777), (tcpfr_uid, 0o750), "{STATE_DIR} is tcpfr's, 0750");

    let out = work.path().join("out");
    let gid: u32 = String::from_utf8(run(&["id", "-g", "tcpfr"]).stdout).unwrap().trim().parse().unwrap();
    owned_dir(&out, tcpfr_uid, gid);
    records_as_tcpfr(&out);

    run(&["dpkg", "--purge", PACKAGE]);
    assert!(!installed());
    for gone in ["/usr/bin/tcpfr-recorder", "/usr/bin/tcpfr", unit, "/etc/default/tcpfr-recorder"] {
        assert!(!Path::new(gone).exists(), "{gone} is still there after purge");
    }
    // Kept by design: the user (files may still be its own). An empty /var/lib/tcpfr
    // goes; one with recordings would stay.
    assert!(user_exists("tcpfr"), "purge keeps the tcpfr user");
    if restore.state_dir.is_none() {
        assert!(!Path::new(STATE_DIR).exists(), "purge removes an empty {STATE_DIR}");
    }
    drop(restore);
}
