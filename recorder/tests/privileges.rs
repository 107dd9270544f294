//! The recorder as an unprivileged user with exactly the capabilities
//! `tcpfr_recorder::privileges::CAPABILITIES` lists, started with capsh as the README
//! says: it records a lossy transfer completely (retransmits against the kernel's
//! RetransSegs, socket owners found in other users' /proc entries, counters read inside
//! another network namespace), holds only what each thread needs after start-up, and
//! without any one of the capabilities refuses to start, naming it.

mod testbed;

use std::time::Duration;

use tcpfr_recorder::privileges::{kept_by, Role, CAPABILITIES};
use tcpfr_schema::flows::Flow;
use tcpfr_schema::host_counters::HostCounters;
use tcpfr_schema::retransmits::Retransmit;
use testbed::*;

fn cap_names() -> Vec<String> {
    CAPABILITIES.iter().map(|n| n.cap.to_string().to_lowercase()).collect()
}

fn mask(caps: &caps::CapsHashSet) -> u64 {
    caps.iter().map(|c| c.bitmask()).fold(0, |a, b| a | b)
}

/// Every thread holds what its role keeps after start-up and nothing else; nothing is
/// inheritable or ambient (a program the recorder ran would get nothing).
fn assert_dropped_after_startup(pid: u32) {
    let expected = |name: &str| match name {
        "tcpfr-recorder" => mask(&kept_by(Role::EventLoop)),
        "tcpfr-counters" => mask(&kept_by(Role::Counters)),
        _ => 0,
    };
    // Threads confine themselves as they start: give them a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let threads = thread_caps(pid);
        let wrong: Vec<_> =
            threads.iter().filter(|(name, [eff, prm, inh, amb])| *eff != expected(name) || *prm != expected(name) || *inh != 0 || *amb != 0).collect();
        if wrong.is_empty() {
            assert!(threads.iter().any(|(n, _)| n == "tcpfr-counters"), "{threads:x?}");
            eprintln!("capabilities after start-up: {threads:x?}");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "threads holding other capabilities than their role keeps: {wrong:x?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn records_a_lossy_transfer_as_an_unprivileged_user_with_exactly_its_capabilities() {
    let _serial = serial();
    let user = TestUser::new("cap");
    let dir = shared_tempdir();
    let bin = copy_exe(recorder_bin(), dir.path());
    let out = dir.path().join("out");
    owned_dir(&out, user.uid, user.gid);

    let bed = Bed::new("cap", 31, false);
    let port = 5001;
    bed.iptables(
        &bed.server,
        &format!("-A INPUT -p tcp --dport {port} -m length --length 300:65535 -m statistic --mode random --probability 0.02 -j DROP"),
    );
    // Listening before the recorder starts, as root: its owner can only be found in
    // /proc/<pid>/fd of another user's process.
    let server = bed.serve(port, &[]);
    let mut rec = start_recorder(user.command_with_caps(&cap_names(), &bin, &["--out", out.to_str().unwrap()]));
    assert_dropped_after_startup(rec.id());

    let before = bed.client.counters();
    let (client_pid, results) = bed.send(port, 10_000_000, 2, &[], Duration::from_secs(90));
    let after = bed.client.counters();
    assert_eq!(results, vec!["ok 10000000"; 2]);
    let server_pid = server.pid() as i32;
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    let status = interrupt_and_wait(&mut rec, Duration::from_secs(30));
    assert!(status.success(), "recorder exited with {status}");
    let recording = only_recording(&out);

    let retrans_segs = delta(&before, &after, "Tcp.RetransSegs");
    assert!(retrans_segs > 20, "the link must actually lose data: RetransSegs +{retrans_segs}");
    let ns = bed.client.inode();
    let rows: Vec<Retransmit> = recording.read_table::<Retransmit>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    let segments: i64 = rows.iter().filter(|r| r.counted).map(|r| r.segments as i64).sum();
    eprintln!("RetransSegs +{retrans_segs}; recorded {} retransmit events = {segments} segments", rows.len());
    assert_eq!(segments, retrans_segs, "recorded segments vs the kernel's RetransSegs");
    assert!(rows.iter().all(|r| r.pid == Some(client_pid as i32)), "pid of every row is the client's {client_pid}");

    // Counters read inside the client's namespace (setns: CAP_SYS_ADMIN, kept by the
    // counters thread after start-up).
    let hc: i64 =
        recording.read_table::<HostCounters>().unwrap().iter().filter(|h| h.netns == ns).map(|h| h.retrans_segs).sum();
    assert_eq!(hc, retrans_segs, "host_counters.retrans_segs of the client's namespace");

    // Accepted connections belong to the listener's owner, found in root's /proc
    // entries (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH).
    let flows: Vec<Flow> = recording.read_table::<Flow>().unwrap();
    let accepted: Vec<&Flow> =
        flows.iter().filter(|f| f.role.as_deref() == Some("server") && f.netns == Some(bed.server.inode())).collect();
    assert_eq!(accepted.len(), 2, "{flows:#?}");
    assert!(accepted.iter().all(|f| f.pid == Some(server_pid)), "accepted connections owned by the server {server_pid}: {accepted:#?}");
    assert!(accepted.iter().all(|f| &*f.counters == "complete"), "sock_ops counted them (CAP_NET_ADMIN): {accepted:#?}");
}

#[test]
fn refuses_to_start_without_any_one_capability_and_names_it() {
    let _serial = serial();
    let user = TestUser::new("nocap");
    let dir = shared_tempdir();
    let bin = copy_exe(recorder_bin(), dir.path());
    let out = dir.path().join("out");
    owned_dir(&out, user.uid, user.gid);
    let all = cap_names();
    for missing in &all {
        let caps: Vec<String> = all.iter().filter(|c| *c != missing).cloned().collect();
        let output = user
            .command_with_caps(&caps, &bin, &["--out", out.to_str().unwrap(), "--duration", "5s"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started without {missing}: {stderr}");
        let name = missing.to_uppercase();
        let line = stderr.lines().find(|l| l.contains(&name)).unwrap_or_else(|| panic!("no line names {name}: {stderr}"));
        let why = CAPABILITIES.iter().find(|n| n.cap.to_string() == name).unwrap().why;
        assert!(line.contains(why), "{name} is named with what it is for: {line}");
        assert!(stderr.contains("capsh --user=tcpfr"), "the message says how to run it: {stderr}");
        // Refused before anything was made.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing written without {missing}");
    }
}
