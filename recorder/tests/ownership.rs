//! Who owns a socket, when the recorder saw it born and when it did not; and the
//! recorder's filters.

mod testbed;

use std::time::Duration;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::recorder_stats::RecorderStats;
use tcpfr_schema::retransmits::Retransmit;
use tcpfr_schema::rtt_samples::RttSample;
use testbed::*;

/// A connection that is already sending when the recorder starts: its owner comes
/// from /proc (as `ss -p` finds it), and its flow row says the counters are missing
/// because it is older than the recording rather than inventing them.
// (Failed in CI when the connection's first event after the start was an RTT sample,
// which carries no namespace: the socket was adopted without looking up /proc.)
#[test]
fn connection_older_than_the_recorder() {
    let _serial = serial();
    let bed = Bed::new("old", 9, false);
    let port = 5009;
    bed.iptables(
        &bed.server,
        &format!("-A INPUT -p tcp --dport {port} -m length --length 300:65535 -m statistic --mode random --probability 0.02 -j DROP"),
    );
    let _server = bed.serve(port, &[]);
    // Rate-limited by a small receive buffer? No: by the loss; a long transfer.
    let to = bed.server_addr(port);
    let client = bed.client.spawn(&[traffic_bin(), "send", "--to", &to, "--bytes", "100000000000", "--conns", "1"]);
    // The connection must exist before the recorder starts (a connect() between the
    // recorder's /proc scan and its programs' attachment has no known owner): wait for
    // it, however slow a loaded machine is to start the client.
    let established = || {
        let out = bed.client.exec(&["ss", "-tnH", "state", "established", &format!("dport = :{port}")]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !established() {
        assert!(std::time::Instant::now() < deadline, "the client did not connect within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rec = Recorder::start(&["--rtt-interval", "200ms"]);
    std::thread::sleep(Duration::from_secs(2));
    let (recording, _d) = rec.stop();
    let client_pid = client.pid() as i32;
    drop(client);

    let ns = bed.client.inode();
    let rows: Vec<Retransmit> = recording.read_table::<Retransmit>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    assert!(!rows.is_empty(), "the long transfer kept retransmitting while recorded");
    let strangers: Vec<&Retransmit> = rows.iter().filter(|r| r.pid != Some(client_pid) || r.comm.as_deref() != Some("tcpfr-traffic")).collect();
    assert!(strangers.is_empty(), "{} of {} rows not owned by pid {client_pid}, e.g. {:#?}", strangers.len(), rows.len(), strangers.first());
    let flows: Vec<Flow> = recording.read_table::<Flow>().unwrap().into_iter().filter(|f| f.netns == Some(ns)).collect();
    assert_eq!(flows.len(), 1, "{flows:#?}");
    let f = &flows[0];
    assert_eq!(&*f.counters, "opened_before_recording");
    assert_eq!((f.open_time, f.close_time, f.role.as_deref(), f.handshake.as_deref()), (None, None, None, None));
    assert_eq!((f.segs_out, f.retrans_segs), (None, None));
    assert_eq!(f.pid, Some(client_pid));
    assert_eq!(f.retrans_segs_seen, rows.iter().filter(|r| r.counted).map(|r| r.segments as i64).sum::<i64>());
    // RTT samples of that connection carry its socket id.
    let samples: Vec<RttSample> = recording.read_table::<RttSample>().unwrap().into_iter().filter(|s| s.socket_id == f.socket_id).collect();
    assert!(samples.len() >= 5, "{} samples", samples.len());
    // At most one sample per socket per walk (every 200 ms; a late walk may come
    // closer to the next one).
    for w in samples.windows(2) {
        assert!(w[1].time.0 - w[0].time.0 >= 100_000_000, "{:?}", w);
    }
}

/// `--port` keeps only the connections on that port; what it leaves out is counted.
#[test]
fn port_filter_keeps_only_that_port() {
    let _serial = serial();
    let bed = Bed::new("flt", 10, false);
    let (kept, other) = (5010, 5011);
    for p in [kept, other] {
        bed.iptables(&bed.server, &format!("-A INPUT -p tcp --dport {p} -m length --length 300:65535 -m statistic --mode random --probability 0.02 -j DROP"));
    }
    let rec = Recorder::start(&["--port", &kept.to_string()]);
    let _s1 = bed.serve(kept, &[]);
    let _s2 = bed.serve(other, &[]);
    bed.send(kept, 5_000_000, 2, &[], Duration::from_secs(60));
    bed.send(other, 5_000_000, 2, &[], Duration::from_secs(60));
    let (recording, _d) = rec.stop();
    let ns = bed.client.inode();
    let flows: Vec<Flow> = recording.read_table::<Flow>().unwrap().into_iter().filter(|f| f.netns == Some(ns)).collect();
    assert_eq!(flows.len(), 2);
    assert!(flows.iter().all(|f| f.rport == kept));
    let rows = recording.read_table::<Retransmit>().unwrap();
    assert!(rows.iter().all(|r| r.lport == kept || r.rport == kept));
    let stats = recording.read_table::<RecorderStats>().unwrap();
    let filtered: i64 = stats.iter().filter(|s| &*s.stream == "flows").map(|s| s.events_filtered).sum();
    assert!(filtered >= 2, "the other port's flows are counted as filtered: {filtered}");
}

/// A connection made in a namespace that no process lives in any more (its process
/// moved itself back to ours after connecting): /proc lists that
/// namespace's sockets only through a process inside it, so a /proc scan cannot find
/// the owner; the owner walk over every process's open files does, by the socket itself.
#[test]
fn a_socket_whose_namespace_has_no_process_left_gets_its_owner() {
    let _serial = serial();
    let bed = Bed::new("nopr", 44, false);
    let port = 5044;
    let _server = bed.serve(port, &[]);
    let client = format!(
        "import ctypes,os,socket,time\n\
         c=socket.create_connection(('{}',{port}))\n\
         fd=os.open('/proc/{}/ns/net',os.O_RDONLY)\n\
         assert ctypes.CDLL(None,use_errno=True).setns(fd,0x40000000)==0,'setns'\n\
         print('moved',flush=True)\n\
         while True:\n    c.send(b'x'*1000)\n    time.sleep(0.02)\n",
        bed.server_ip,
        std::process::id()
    );
    let mut c = bed.client.spawn(&["python3", "-c", &client]);
    c.wait_for_line("moved", Duration::from_secs(10));
    let pids = String::from_utf8(run(&["ip", "netns", "pids", &bed.client.name]).stdout).unwrap();
    assert!(pids.trim().is_empty(), "no process is left in the client's namespace: {pids}");
    let rec = Recorder::start(&["--rtt-interval", "200ms"]);
    std::thread::sleep(Duration::from_secs(2));
    let (recording, _d) = rec.stop();

    let ns = bed.client.inode();
    let sockets: Vec<tcpfr_schema::sockets::Socket> =
        recording.read_table::<tcpfr_schema::sockets::Socket>().unwrap().into_iter().filter(|s| s.netns == Some(ns)).collect();
    assert_eq!(sockets.len(), 1, "the client's connection, seen through its RTT samples: {sockets:#?}");
    let s = &sockets[0];
    assert_eq!(&*s.origin, "existing");
    assert_eq!((s.pid, s.comm.as_deref()), (Some(c.pid() as i32), Some("python3")), "{s:#?}");
}

/// More sockets at start than the ring buffer holds owner records for: the recorder
/// says so in the recording and asks /proc for the rest, so an old connection still
/// gets its owner.
#[test]
fn owners_that_do_not_fit_in_the_ring_come_from_proc() {
    let _serial = serial();
    let bed = Bed::new("ownf", 46, false);
    let port = 5046;
    let _server = bed.serve(port, &[]);
    let holder = format!(
        "import socket,time\nl=socket.socket()\nl.bind(('127.0.0.1',0))\nl.listen(1024)\nk=[]\n\
         for _ in range(300):\n    k.append(socket.create_connection(l.getsockname()))\n    k.append(l.accept()[0])\n\
         c=socket.create_connection(('{}',{port}))\nprint('ready',flush=True)\n\
         while True:\n    c.send(b'x'*1000)\n    time.sleep(0.02)\n",
        bed.server_ip
    );
    let mut h = bed.client.spawn(&["python3", "-c", &holder]);
    h.wait_for_line("ready", Duration::from_secs(20));
    let rec = Recorder::start(&["--ring-size", "4KiB", "--rtt-interval", "200ms"]);
    std::thread::sleep(Duration::from_secs(2));
    let (recording, _d) = rec.stop();

    let notes: Vec<String> = recording
        .read_table::<RecorderStats>()
        .unwrap()
        .into_iter()
        .filter_map(|r| r.note.map(|n| n.to_string()))
        .collect();
    assert!(notes.iter().any(|n| n.contains("did not fit in the ring buffer")), "{notes:#?}");
    let ns = bed.client.inode();
    let sockets: Vec<tcpfr_schema::sockets::Socket> = recording
        .read_table::<tcpfr_schema::sockets::Socket>()
        .unwrap()
        .into_iter()
        .filter(|s| s.netns == Some(ns) && s.rport == port)
        .collect();
    assert_eq!(sockets.len(), 1, "{sockets:#?}");
    assert_eq!(sockets[0].pid, Some(h.pid() as i32), "{:#?}", sockets[0]);
}
