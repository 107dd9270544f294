//! What limited a connection (`flows.busy_ns`, `rwnd_limited_ns`, `sndbuf_limited_ns`,
//! `dsack_dups`, …) against the kernel: a slow reader with a small receive buffer, a
//! sender with a small send buffer, and ACKs dropped for longer than an RTO. The truth
//! is `ss -ti` read while the connection is quiet just before it closes, and the
//! namespace's TcpExt counters.

mod testbed;

use std::time::Duration;

use tcpfr_schema::flows::Flow;
use testbed::*;

/// `ss -ti` of the sender's connection to `port`, as one line.
fn ss_info(ns: &Netns, port: u16) -> String {
    let out = ns.exec(&["ss", "-tinH", "state", "established", "dport", "=", &format!(":{port}")]);
    String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of `key:` in an `ss -ti` line, up to the next non-digit (0 when absent: ss
/// leaves out limited times that are zero).
fn ss_num(info: &str, key: &str) -> i64 {
    let Some(at) = info.split_whitespace().find_map(|w| w.strip_prefix(key)) else { return 0 };
    at.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap_or(0)
}

/// The sender's `flows` row, found by its local port.
fn sender_flow(recording: &tcpfr_schema::read::Recording, ns: u32, lport: u16) -> Flow {
    let rows: Vec<Flow> = recording.read_table::<Flow>().unwrap().into_iter().filter(|f| f.netns == Some(ns) && f.lport == lport).collect();
    assert_eq!(rows.len(), 1, "one flows row for :{lport}: {rows:?}");
    rows.into_iter().next().unwrap()
}

/// Sends `bytes` with `client_args`, to a server with `server_args`, and returns the
/// sender's `ss -ti` once everything is acknowledged and its `flows` row.
fn transfer(tag: &str, index: u8, bytes: u64, server_args: &[&str], client_args: &[&str], prepare: impl FnOnce(&Bed)) -> (String, Flow) {
    let _serial = serial();
    let bed = Bed::new(tag, index, false);
    prepare(&bed);
    let port = 5000 + index as u16;
    let rec = Recorder::start(&[]);
    let _server = bed.serve(port, server_args);
    let b = bytes.to_string();
    let to = bed.server_addr(port);
    let mut args = vec![traffic_bin(), "send", "--to", &to, "--bytes", &b, "--hold", "1s"];
    args.extend_from_slice(client_args);
    let mut client = bed.client.spawn(&args);
    let drained = client.wait_for_line("drained", Duration::from_secs(60));
    let lport: u16 = drained.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("drained PORT");
    let info = ss_info(&bed.client, port);
    client.finish(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (recording, _dir) = rec.stop();
    let flow = sender_flow(&recording, bed.client.inode(), lport);
    eprintln!("ss: {info}\nflow: {flow:?}");
    (info, flow)
}

#[test]
fn a_slow_reader_limits_by_receive_window() {
    let (info, f) = transfer("lrw", 50, 600_000, &["--rcvbuf", "4096", "--read-rate", "300000"], &[], |_| ());
    let ss_rwnd = ss_num(&info, "rwnd_limited:") * 1_000_000;
    let rwnd = f.rwnd_limited_ns.expect("rwnd_limited_ns");
    assert!(ss_rwnd > 0, "ss must show rwnd_limited: {info}");
    assert!((rwnd - ss_rwnd).abs() * 5 <= ss_rwnd, "rwnd_limited_ns {rwnd} vs ss {ss_rwnd}");
}

/// The kernel counts send-buffer-limited time only when a push that sends the last
/// queued data happens while the writer waits for buffer space with the congestion
/// window open (`tcp_cwnd_validate`); on 6.18 that is a deferred push (pacing or TCP
/// small queues), so even a sender with a 4 KB SO_SNDBUF gets 0–1 % of its busy time
/// counted, and in about half the runs none. A run where the kernel counted some is what
/// tells the column apart from zero: up to eight transfers (BBR paces; ACKs slowed by tbf on
/// the receiver's side, there is no netem; no offloads, so one write is MSS-sized
/// packets the buffer bounds). Whatever the kernel counted, the column must equal it.
#[test]
fn a_small_send_buffer_limits_by_send_buffer() {
    let shape = |bed: &Bed| {
        bed.server.exec(&["tc", "qdisc", "add", "dev", "veth0", "root", "tbf", "rate", "100kbit", "burst", "2kb", "latency", "50ms"]);
        bed.client.exec(&["sysctl", "-qw", "net.ipv4.tcp_congestion_control=bbr"]);
        bed.offloads_off();
    };
    for attempt in 1..=8 {
        let (info, f) = transfer("lsb", 51, 600_000, &[], &["--sndbuf", "4096"], shape);
        let ss_snd = ss_num(&info, "sndbuf_limited:") * 1_000_000;
        let ss_busy = ss_num(&info, "busy:") * 1_000_000;
        assert_eq!(f.sndbuf_limited_ns, Some(ss_snd), "sndbuf_limited_ns vs ss: {info}");
        assert_eq!(f.busy_ns, Some(ss_busy), "busy_ns vs ss: {info}");
        if ss_snd > 0 {
            return;
        }
        eprintln!("attempt {attempt}: the kernel counted no send-buffer-limited time");
    }
    panic!("in eight transfers with a 4 KB send buffer the kernel never counted send-buffer-limited time");
}

/// ACKs dropped for longer than an RTO: the sender times out and sends again what had
/// arrived, the receiver reports the duplicates by DSACK. `dsack_dups` summed over the
/// sender's namespace must equal its TCPDSACKRecvSegs delta.
#[test]
fn dropped_acks_make_spurious_retransmits_reported_by_dsack() {
    let _serial = serial();
    let bed = Bed::new("lsp", 52, false);
    let port = 5052;
    let rec = Recorder::start(&[]);
    let _server = bed.serve(port, &[]);
    let before = bed.client.counters();
    let to = bed.server_addr(port);
    let client = bed.client.spawn(&[traffic_bin(), "send", "--to", &to, "--bytes", "3000000", "--rate", "1000000"]);
    std::thread::sleep(Duration::from_millis(1000));
    // The receiver's only packets are ACKs.
    let rule = format!("OUTPUT -p tcp --sport {port} -j DROP");
    bed.iptables(&bed.server, &format!("-A {rule}"));
    std::thread::sleep(Duration::from_millis(1500));
    bed.iptables(&bed.server, &format!("-D {rule}"));
    client.finish(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let after = bed.client.counters();
    let (recording, _dir) = rec.stop();
    let ns = bed.client.inode();
    let flows: Vec<Flow> = recording.read_table::<Flow>().unwrap().into_iter().filter(|f| f.netns == Some(ns)).collect();
    let dsack: i64 = flows.iter().filter_map(|f| f.dsack_dups).sum();
    let d = |k: &str| delta(&before, &after, k);
    eprintln!(
        "flows {}: dsack_dups {dsack}; TCPDSACKRecv +{} TCPDSACKRecvSegs +{} TCPSpuriousRTOs +{} TCPLossUndo +{} TCPTimeouts +{} RetransSegs +{}",
        flows.len(),
        d("TcpExt.TCPDSACKRecv"),
        d("TcpExt.TCPDSACKRecvSegs"),
        d("TcpExt.TCPSpuriousRTOs"),
        d("TcpExt.TCPLossUndo"),
        d("TcpExt.TCPTimeouts"),
        d("Tcp.RetransSegs")
    );
    assert!(d("TcpExt.TCPTimeouts") >= 1, "the blackout must outlast an RTO");
    assert!(dsack > 0, "spurious retransmits reported by DSACK: {flows:?}");
    assert_eq!(dsack, d("TcpExt.TCPDSACKRecvSegs"), "Σ dsack_dups vs ΔTCPDSACKRecvSegs");
    // The kernel undid the timeout as spurious: by F-RTO (TCPSpuriousRTOs) or on the DSACKs
    // (TCPLossUndo).
    assert!(d("TcpExt.TCPSpuriousRTOs") + d("TcpExt.TCPLossUndo") >= 1, "no undo of the spurious timeout");
}
