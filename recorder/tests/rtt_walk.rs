//! RTT sampling: by default a walk over the TCP sockets every `--rtt-interval` (a BPF
//! iterator, nothing on the packet path), which skips sockets with no progress; with
//! `--rtt-per-ack` the BTF tracepoint `tcp_probe` on every received segment.

mod testbed;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use tcpfr_schema::rtt_samples::RttSample;
use tcpfr_schema::sockets::Socket;
use testbed::*;

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Samples of the sockets in namespace `ns` (matching `keep`), by socket id.
fn samples_in(recording: &tcpfr_schema::read::Recording, ns: u32, keep: impl Fn(&Socket) -> bool) -> BTreeMap<i64, Vec<RttSample>> {
    let ids: HashSet<i64> = recording
        .read_table::<Socket>()
        .unwrap()
        .iter()
        .filter(|s| s.netns == Some(ns) && keep(s))
        .map(|s| s.socket_id)
        .collect();
    let mut out: BTreeMap<i64, Vec<RttSample>> = ids.iter().map(|&id| (id, Vec::new())).collect();
    for r in recording.read_table::<RttSample>().unwrap() {
        if let Some(v) = out.get_mut(&r.socket_id) {
            v.push(r);
        }
    }
    out
}

/// Smoothed RTT (µs) of the established connections to `port` as `ss -ti` shows them
/// in `ns` ("rtt:<srtt ms>/<rttvar ms>").
fn ss_srtt_us(ns: &Netns, port: u16) -> Vec<f64> {
    let out = ns.exec(&["ss", "-tinH", "state", "established", &format!("dport = :{port}")]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("rtt:"))
        .filter_map(|v| v.split('/').next()?.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect()
}

/// The programs the recorder `pid` holds (by their kernel names): ids from the prog
/// and link descriptors in /proc/PID/fdinfo, names from `bpftool prog show`.
fn programs_of(pid: u32) -> HashSet<String> {
    let mut ids = HashSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap().flatten() {
        let Ok(info) = std::fs::read_to_string(e.path()) else { continue };
        for line in info.lines() {
            if let Some(id) = line.strip_prefix("prog_id:") {
                ids.insert(id.trim().parse::<u64>().unwrap());
            }
        }
    }
    let out = run(&["bpftool", "-j", "prog", "show"]);
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Defaults: a bulk transfer gets about one sample per interval, with the srtt `ss -ti`
/// shows for its socket; the per-ACK tracepoint is not attached.
#[test]
fn walk_samples_a_bulk_transfer_once_per_interval() {
    let _serial = serial();
    let bed = Bed::new("rttw", 40, false);
    let port = 5040;
    let interval = Duration::from_millis(500);
    let rec = Recorder::start(&["--rtt-interval", "500ms"]);
    let progs = programs_of(rec.pid());
    assert!(progs.contains("tcpfr_rtt_walk"), "the socket walk is loaded: {progs:?}");
    assert!(!progs.contains("tcp_probe"), "tcp_probe is not attached by default: {progs:?}");

    let (_server, _client) = bed.lossy_bulk(port, 0.005);
    // ss's view of the client's socket during the transfer.
    let start = Instant::now();
    let mut ss = Vec::new();
    while start.elapsed() < Duration::from_secs(4) {
        ss.extend(ss_srtt_us(&bed.client, port));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (t0, t1) = (now_ns() - start.elapsed().as_nanos() as i64, now_ns());
    let (recording, _d) = rec.stop();

    let by_socket = samples_in(&recording, bed.client.inode(), |s| s.rport == port);
    assert_eq!(by_socket.len(), 1, "one client connection: {by_socket:?}");
    let rows: Vec<&RttSample> = by_socket.values().next().unwrap().iter().filter(|r| r.time.0 >= t0 && r.time.0 <= t1).collect();
    // About 4 s / 500 ms = 8 walks while ss watched.
    assert!((6..=10).contains(&rows.len()), "{} samples in 4 s at a 500 ms interval: {rows:?}", rows.len());
    for w in rows.windows(2) {
        let gap = w[1].time.0 - w[0].time.0;
        assert!(gap >= interval.as_nanos() as i64 / 2, "one sample per walk: {gap} ns apart");
    }
    assert!(rows.iter().all(|r| r.cwnd > 0 && r.snd_wnd > 0 && r.rcv_wnd > 0 && r.rttvar_us.is_some()), "{rows:?}");
    assert!(rows.iter().any(|r| r.bytes_in_flight > 0), "a bulk sender has bytes in flight: {rows:?}");
    // The values themselves are checked against ss on a quiet socket (next test): srtt
    // of a CPU-bound veth transfer moves by a factor of two within milliseconds, and ss
    // cannot read at the walk's moment.
    let mut walk: Vec<f64> = rows.iter().map(|r| r.srtt_us as f64).collect();
    eprintln!("srtt median: walk {} µs ({} samples), ss -ti {} µs ({} readings)", median(&mut walk), walk.len(), median(&mut ss), ss.len());
}

/// What `ss -ti` shows for the client's socket to `port` in `ns`: (srtt µs, rttvar µs,
/// bytes_acked, whether it has unacknowledged data).
fn ss_quiet_state(ns: &Netns, port: u16) -> Option<(u32, u32, u64, bool)> {
    let out = ns.exec(&["ss", "-tinH", "state", "established", &format!("dport = :{port}")]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| text.split_whitespace().find_map(|w| w.strip_prefix(name).map(str::to_string));
    let (srtt, var) = field("rtt:")?.split_once('/').map(|(a, b)| (a.to_string(), b.to_string()))?;
    let us = |ms: &str| ms.parse::<f64>().ok().map(|v| (v * 1000.0).round() as u32);
    Some((us(&srtt)?, us(&var)?, field("bytes_acked:")?.parse().ok()?, field("unacked:").is_some()))
}

/// Once a connection goes quiet its srtt and rttvar stop changing, so the walk's last
/// sample of it must equal what `ss -ti` shows afterwards, to the microsecond (a wrong
/// field, scale or shift would not).
#[test]
fn the_last_sample_of_a_quiet_connection_equals_ss() {
    let _serial = serial();
    let bed = Bed::new("rttq", 43, false);
    let port = 5043;
    let bytes = 30_000_000u64;
    let rec = Recorder::start(&["--rtt-interval", "200ms"]);
    bed.iptables(&bed.server, &format!("-A INPUT -p tcp --dport {port} -m statistic --mode random --probability 0.005 -j DROP"));
    let _server = bed.serve(port, &[]);
    let client = format!(
        "import socket,time\nc=socket.create_connection(('{}',{port}))\nc.sendall(b'x'*{bytes})\n\
         print('sent',flush=True)\ntime.sleep(600)\n",
        bed.server_ip
    );
    let mut c = bed.client.spawn(&["python3", "-c", &client]);
    c.wait_for_line("sent", Duration::from_secs(30));
    // Quiet: everything acknowledged (bytes_acked counts the SYN) and two readings a
    // second apart agree.
    let deadline = Instant::now() + Duration::from_secs(20);
    let quiet = loop {
        let a = ss_quiet_state(&bed.client, port);
        std::thread::sleep(Duration::from_secs(1));
        let b = ss_quiet_state(&bed.client, port);
        if let (Some(a), Some(b)) = (a, b) {
            if a == b && !a.3 && a.2 == bytes + 1 {
                break a;
            }
        }
        assert!(Instant::now() < deadline, "the connection did not go quiet: {b:?}");
    };
    let (recording, _d) = rec.stop();
    drop(c);

    let by_socket = samples_in(&recording, bed.client.inode(), |s| s.rport == port);
    assert_eq!(by_socket.len(), 1, "one client connection: {by_socket:?}");
    let rows = by_socket.values().next().unwrap();
    let last = rows.iter().max_by_key(|r| r.time.0).expect("samples of the transfer");
    eprintln!("last sample: srtt {} µs rttvar {:?} µs; ss -ti: {quiet:?}; {} samples", last.srtt_us, last.rttvar_us, rows.len());
    assert_eq!((last.srtt_us, last.rttvar_us), (quiet.0, Some(quiet.1)), "last walk sample vs ss -ti of the quiet socket: {rows:?}");
}

/// Connections opened and then quiet are sampled once (by the first walk that sees
/// them) and then never again.
#[test]
fn idle_connections_are_not_sampled_after_the_first_walk() {
    let _serial = serial();
    let bed = Bed::new("rtti", 41, false);
    let port = 5041;
    let conns = 40;
    let server = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{port}))\ns.listen(256)\nprint('listening',flush=True)\nk=[]\n\
         while True:\n    c,_=s.accept()\n    k.append(c)\n"
    );
    let client = format!(
        "import socket,time\nk=[socket.create_connection(('{}',{port})) for _ in range({conns})]\n\
         print('connected',flush=True)\ntime.sleep(600)\n",
        bed.server_ip
    );
    let rec = Recorder::start(&["--rtt-interval", "200ms"]);
    let mut s = bed.server.spawn(&["python3", "-c", &server]);
    s.wait_for_line("listening", Duration::from_secs(10));
    let mut c = bed.client.spawn(&["python3", "-c", &client]);
    c.wait_for_line("connected", Duration::from_secs(10));
    let opened = now_ns();
    // 15 walks with nothing happening.
    std::thread::sleep(Duration::from_secs(3));
    let (recording, _d) = rec.stop();

    let mut sockets = samples_in(&recording, bed.client.inode(), |s| s.rport == port);
    sockets.extend(samples_in(&recording, bed.server.inode(), |s| s.lport == port && s.rport != 0));
    let sampled = sockets.values().filter(|v| !v.is_empty()).count();
    assert!(sampled >= 2 * conns - 2, "the first walk samples each new connection: {sampled} of {}", sockets.len());
    for (id, rows) in &sockets {
        assert!(rows.len() <= 2, "socket {id}: {} samples of an idle connection: {rows:?}", rows.len());
        let late: Vec<&RttSample> = rows.iter().filter(|r| r.time.0 > opened + 1_000_000_000).collect();
        assert!(late.is_empty(), "socket {id} sampled while idle: {late:?}");
    }
    drop((c, s));
}

/// Holds N idle connections to itself on ADDR:PORT (both ends open); with "busy", its
/// first connection sends a byte every 50 ms, so TCP moves in the namespace and every
/// walk visits all of its sockets.
const HOLDER: &str = "import socket,sys,time\n\
addr,port,n,busy=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),sys.argv[4]=='busy'\n\
l=socket.socket()\nl.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\nl.bind((addr,port))\nl.listen(4096)\n\
k=[]\nfor _ in range(n):\n    k.append(socket.create_connection((addr,port)))\n    k.append(l.accept()[0])\n\
print('ready',flush=True)\nwhile True:\n    time.sleep(0.05)\n    if busy:\n        k[0].send(b'x')\n        k[1].recv(10)\n";

/// More idle sockets than a map keyed by socket held before (the walk's last progress
/// values were in a 65,536-entry LRU map, so beyond it every walk sampled evicted idle
/// sockets again; now each socket keeps its own): 72,000 sockets in a namespace where
/// one connection keeps moving, so every walk visits them all. After the walks that
/// met each connection first, none of the idle ones gets another row.
#[test]
fn idle_sockets_beyond_any_map_size_are_sampled_once() {
    let _serial = serial();
    let bed = Bed::new("rttm", 54, false);
    // 5 processes: the open-file limit is 20,000 per process here.
    let (holders, per) = (5u16, 7_200usize);
    let rec = Recorder::start(&["--rtt-interval", "200ms", "--ring-size", "32MiB"]);
    let mut procs: Vec<Proc> = (0..holders)
        .map(|i| bed.server.spawn(&["python3", "-c", HOLDER, &bed.server_ip, &(5540 + i).to_string(), &per.to_string(), "idle"]))
        .collect();
    procs.push(bed.server.spawn(&["python3", "-c", HOLDER, &bed.server_ip, "5549", "1", "busy"]));
    for p in &mut procs {
        p.wait_for_line("ready", Duration::from_secs(60));
    }
    let opened = now_ns();
    std::thread::sleep(Duration::from_secs(4));
    let (recording, _d) = rec.stop();

    let idle_port = |p: u16| (5540..5540 + holders).contains(&p);
    let sockets = samples_in(&recording, bed.server.inode(), |s| idle_port(s.lport) || idle_port(s.rport));
    let sampled = sockets.values().filter(|v| !v.is_empty()).count();
    let want = 2 * holders as usize * per;
    assert!(sampled >= want * 99 / 100, "each idle socket is sampled when first met: {sampled} of {want} ({} known)", sockets.len());
    let late: usize = sockets.values().map(|v| v.iter().filter(|r| r.time.0 > opened + 1_500_000_000).count()).sum();
    assert_eq!(late, 0, "rows of idle sockets in the last 2.5 s (12 walks)");
    let busy = samples_in(&recording, bed.server.inode(), |s| s.lport == 5549 || s.rport == 5549);
    let busy_late: usize = busy.values().map(|v| v.iter().filter(|r| r.time.0 > opened + 1_500_000_000).count()).sum();
    assert!(busy_late >= 10, "the busy connection is sampled every walk: {busy_late} rows");
}

/// The samples `rec` took of the client's socket during 2 s of a lossy bulk transfer to
/// `port`.
fn lossy_bulk_client_samples(bed: &Bed, port: u16, rec: Recorder) -> Vec<RttSample> {
    let (server, client) = bed.lossy_bulk(port, 0.005);
    std::thread::sleep(Duration::from_secs(2));
    drop((client, server));
    let (recording, _d) = rec.stop();
    let by_socket = samples_in(&recording, bed.client.inode(), |s| s.rport == port);
    by_socket.into_values().next().expect("the client's socket")
}

/// `--rtt-per-ack` samples from tcp_probe on every ACK (here without rate limit),
/// and does not load the walk unless `listeners` need it (left out here; the walk for
/// listeners alone is tested in listeners.rs).
#[test]
fn per_ack_mode_samples_every_ack() {
    let _serial = serial();
    let bed = Bed::new("rtta", 42, false);
    let port = 5042;
    let rec = Recorder::start(&["--rtt-per-ack", "--rtt-interval", "0", "--streams", "rtt_samples,flows,retransmits"]);
    let progs = programs_of(rec.pid());
    assert!(progs.contains("tcp_probe"), "tcp_probe is attached with --rtt-per-ack: {progs:?}");
    assert!(!progs.contains("tcpfr_rtt_walk"), "no walk with --rtt-per-ack without listeners: {progs:?}");
    assert!(!progs.contains("kfree_skb"), "no drops program with drops left out: {progs:?}");
    let rows = lossy_bulk_client_samples(&bed, port, rec);
    // A walk would give one or two samples per second; ACKs arrive thousands of times.
    assert!(rows.len() > 200, "{} samples in 2 s", rows.len());
    let close = rows.windows(2).filter(|w| w[1].time.0 - w[0].time.0 < 1_000_000).count();
    assert!(close > 100, "samples less than 1 ms apart: {close}");
    assert!(rows.iter().all(|r| r.srtt_us > 0 && r.cwnd > 0));
}

/// A connection that opens and closes between two walks gets one sample, taken when
/// it leaves ESTABLISHED.
#[test]
fn a_connection_shorter_than_the_interval_is_sampled_at_close() {
    let _serial = serial();
    let bed = Bed::new("rttc", 43, false);
    let port = 5043;
    // The first walk runs at start; the next one not within this test.
    let rec = Recorder::start(&["--rtt-interval", "1h"]);
    std::thread::sleep(Duration::from_millis(300));
    let _server = bed.serve(port, &[]);
    let (_, out) = bed.send(port, 5_000_000, 2, &[], Duration::from_secs(60));
    assert_eq!(out, vec!["ok 5000000"; 2]);
    std::thread::sleep(Duration::from_millis(300));
    let (recording, _d) = rec.stop();
    let by_socket = samples_in(&recording, bed.client.inode(), |s| s.rport == port);
    assert_eq!(by_socket.len(), 2, "{by_socket:?}");
    for (id, rows) in &by_socket {
        assert_eq!(rows.len(), 1, "socket {id}: {rows:?}");
        assert!(rows[0].srtt_us > 0 && rows[0].cwnd > 0, "{rows:?}");
    }
}

/// `--rtt-per-ack` with an interval: at most one sample per socket per interval, the
/// limit kept in the socket's own storage (none at all would be written if the
/// storage could not be had; thousands without the limit).
#[test]
fn per_ack_mode_samples_a_socket_at_most_once_per_interval() {
    let _serial = serial();
    let bed = Bed::new("rtal", 55, false);
    let port = 5055;
    let rec = Recorder::start(&["--rtt-per-ack", "--rtt-interval", "100ms", "--streams", "rtt_samples,flows"]);
    let rows = lossy_bulk_client_samples(&bed, port, rec);
    assert!((10..=25).contains(&rows.len()), "{} samples in about 2 s at one per 100 ms", rows.len());
    let gaps: Vec<i64> = rows.windows(2).map(|w| w[1].time.0 - w[0].time.0).collect();
    assert!(gaps.iter().all(|&g| g >= 100_000_000), "samples closer than the interval: {gaps:?}");
}

/// A walk over many busy sockets cannot flood a small ring buffer: past half of it the
/// walk puts samples off to later walks (said in recorder_stats), so nothing is lost
/// and every connection is still sampled.
#[test]
fn a_walk_over_many_busy_sockets_leaves_room_in_a_small_ring() {
    let _serial = serial();
    let bed = Bed::new("rttf", 45, false);
    let port = 5045;
    let conns = 1000;
    let server = format!(
        "import selectors,socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{port}))\ns.listen(4096)\nsel=selectors.DefaultSelector()\nsel.register(s,selectors.EVENT_READ)\n\
         print('listening',flush=True)\nwhile True:\n    for k,_ in sel.select():\n        if k.fileobj is s:\n            \
         c,_=s.accept()\n            sel.register(c,selectors.EVENT_READ)\n        else:\n            k.fileobj.recv(65536)\n"
    );
    let client = format!(
        "import socket,time\nk=[socket.create_connection(('{}',{port})) for _ in range({conns})]\n\
         print('connected',flush=True)\nwhile True:\n    for c in k:\n        c.send(b'x'*10)\n    time.sleep(0.05)\n",
        bed.server_ip
    );
    let mut s = bed.server.spawn(&["python3", "-c", &server]);
    s.wait_for_line("listening", Duration::from_secs(10));
    let mut c = bed.client.spawn(&["python3", "-c", &client]);
    c.wait_for_line("connected", Duration::from_secs(20));
    let rec = Recorder::start(&["--rtt-interval", "200ms", "--ring-size", "64KiB"]);
    std::thread::sleep(Duration::from_secs(4));
    let (recording, _d) = rec.stop();
    drop((c, s));

    let stats = recording.read_table::<tcpfr_schema::recorder_stats::RecorderStats>().unwrap();
    let rtt: Vec<_> = stats.iter().filter(|r| &*r.stream == "rtt_samples").collect();
    let lost: i64 = rtt.iter().map(|r| r.events_lost).sum();
    let notes: Vec<&str> = rtt.iter().filter_map(|r| r.note.as_deref()).collect();
    assert_eq!(lost, 0, "nothing lost: {notes:?}");
    assert!(notes.iter().any(|n| n.contains("put off to a later walk")), "the walk said it put samples off: {notes:?}");
    // Busy connections are all sampled still, though not every walk.
    let by_socket = samples_in(&recording, bed.client.inode(), |s| s.rport == port);
    let sampled = by_socket.values().filter(|v| !v.is_empty()).count();
    let samples: usize = by_socket.values().map(Vec::len).sum();
    eprintln!("{samples} samples of {sampled} sockets; {notes:?}");
    assert_eq!(sampled, conns, "every busy connection sampled in 4 s of walks");
}
