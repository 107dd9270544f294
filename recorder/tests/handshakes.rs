//! Failed and slow handshakes on a real link: SYNs into a black hole, refused
//! connections, lost SYN-ACKs, a local firewall — each checked against the kernel's
//! own counters of the namespace it happened in.

mod testbed;

use std::time::Duration;

use tcpfr_schema::flows::Flow;
use tcpfr_schema::resets::Reset;
use tcpfr_schema::retransmits::Retransmit;
use testbed::*;

fn in_ns<T, F: Fn(&T) -> Option<u32>>(rows: Vec<T>, ns: u32, f: F) -> Vec<T> {
    rows.into_iter().filter(|r| f(r) == Some(ns)).collect()
}

/// SYNs dropped at the server: the client's kernel retransmits them, then gives up
/// (tcp_syn_retries=1: one retransmit, ETIMEDOUT after ~3 s), or the application
/// gives up first (its own 500 ms connect timeout, before any retransmit).
#[test]
fn syn_blackhole_times_out() {
    let _serial = serial();
    let bed = Bed::new("syn", 3, false);
    let port = 5002;
    bed.iptables(&bed.server, &format!("-A INPUT -p tcp --dport {port} --syn -j DROP"));
    bed.client.exec(&["sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"]);
    let rec = Recorder::start(&[]);
    let before = bed.client.counters();
    let (pid, out) = bed.send(port, 0, 2, &[], Duration::from_secs(30));
    assert_eq!(out, vec!["connect-error TimedOut"; 2]);
    let (_, out) = bed.send(port, 0, 1, &["--connect-timeout", "500ms"], Duration::from_secs(30));
    assert_eq!(out, vec!["connect-error TimedOut"]);
    let after = bed.client.counters();
    let (recording, _d) = rec.stop();

    let ns = bed.client.inode();
    let syn_retrans = delta(&before, &after, "TcpExt.TCPSynRetrans");
    assert!(syn_retrans >= 2, "the patient connections retransmitted their SYNs: {syn_retrans}");
    assert_eq!(delta(&before, &after, "Tcp.RetransSegs"), syn_retrans);
    // The kernel counts its own give-ups (tcp_done), not the application's close().
    assert_eq!(delta(&before, &after, "Tcp.AttemptFails"), 2);

    let rows = in_ns(recording.read_table::<Retransmit>().unwrap(), ns, |r| r.netns);
    let counted: Vec<&Retransmit> = rows.iter().filter(|r| r.counted).collect();
    assert_eq!(counted.len() as i64, syn_retrans, "{rows:#?}");
    assert!(counted.iter().all(|r| &*r.kind == "syn" && &*r.state == "SYN_SENT" && r.segments == 1));
    assert!(counted.iter().all(|r| r.pid == Some(pid as i32)), "SYN retransmits belong to the client process");

    let flows = in_ns(recording.read_table::<Flow>().unwrap(), ns, |f| f.netns);
    let mut outcomes: Vec<(String, Option<String>)> = flows
        .iter()
        .map(|f| (f.handshake.as_deref().unwrap_or("?").to_string(), f.error.as_deref().map(str::to_string)))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            ("abandoned".to_string(), None),
            ("timeout".to_string(), Some("ETIMEDOUT".to_string())),
            ("timeout".to_string(), Some("ETIMEDOUT".to_string())),
        ]
    );
    assert_eq!(flows.iter().map(|f| f.syn_retransmits as i64).sum::<i64>(), syn_retrans);
    for f in &flows {
        assert_eq!(f.rport, port);
        assert_eq!(&*f.last_state, "SYN_SENT");
        assert_eq!(&*f.counters, "complete");
        assert_eq!(f.retrans_segs, Some(f.syn_retransmits as i64), "sock_ops total_retrans counts the SYNs");
        // How long the client waited: the kernel gives up after the last retransmit's
        // timeout (≥ 3 s with tcp_syn_retries=1); the application after its own 0.5 s.
        assert_eq!(f.handshake_ns, f.duration_ns, "a failed handshake is the whole connection");
        let waited = f.duration_ns.unwrap() as f64 / 1e9;
        if f.handshake.as_deref() == Some("timeout") {
            assert!(f.syn_retransmits >= 1 && waited >= 2.9, "waited {waited} s: {f:?}");
        } else {
            assert!(f.syn_retransmits == 0 && (waited - 0.5).abs() < 0.2, "waited {waited} s: {f:?}");
        }
    }
}

/// Two ways to be refused: a firewall that answers SYNs with a reset (netfilter makes
/// the RST; the server's TCP never sees the SYN), and a closed port (the server's TCP
/// answers with a reset from no socket).
#[test]
fn refused_by_firewall_and_by_closed_port() {
    let _serial = serial();
    let bed = Bed::new("ref", 4, true);
    let (rejected, closed) = (5003, 5004);
    bed.iptables(&bed.server, &format!("-A INPUT -p tcp --dport {rejected} -j REJECT --reject-with tcp-reset"));
    let rec = Recorder::start(&[]);
    let (cb, sb) = (bed.client.counters(), bed.server.counters());
    let (_, out1) = bed.send(rejected, 0, 3, &[], Duration::from_secs(20));
    let (_, out2) = bed.send(closed, 0, 4, &[], Duration::from_secs(20));
    let (ca, sa) = (bed.client.counters(), bed.server.counters());
    let (recording, _d) = rec.stop();
    assert_eq!(out1, vec!["connect-error ConnectionRefused"; 3]);
    assert_eq!(out2, vec!["connect-error ConnectionRefused"; 4]);

    let (cns, sns) = (bed.client.inode(), bed.server.inode());
    assert_eq!(delta(&cb, &ca, "Tcp.AttemptFails"), 7);
    assert_eq!(delta(&sb, &sa, "Tcp.OutRsts"), 4, "only the closed port's resets come from TCP");

    let flows = in_ns(recording.read_table::<Flow>().unwrap(), cns, |f| f.netns);
    assert_eq!(flows.len(), 7);
    assert!(flows.iter().all(|f| f.handshake.as_deref() == Some("refused") && f.error.as_deref() == Some("ECONNREFUSED")));
    assert_eq!(flows.iter().filter(|f| f.rport == rejected).count(), 3);
    assert!(flows.iter().all(|f| &*f.family == "ipv6" && &*f.raddr == bed.server_ip));

    let resets = recording.read_table::<Reset>().unwrap();
    let received: Vec<&Reset> = resets.iter().filter(|r| r.netns == Some(cns)).collect();
    assert_eq!(received.len(), 7);
    assert!(received.iter().all(|r| &*r.direction == "received" && r.state.as_deref() == Some("SYN_SENT")));
    // Sent by the server's TCP without a socket: addresses from the packet answered,
    // namespace from the device it came in on.
    let sent: Vec<&Reset> = resets.iter().filter(|r| &*r.direction == "sent" && r.netns == Some(sns)).collect();
    assert_eq!(sent.len(), 4, "{resets:#?}");
    for r in sent {
        assert_eq!((r.socket_id, r.state.as_deref(), r.reason.as_deref()), (None, None, Some("NO_SOCKET")));
        assert_eq!((r.lport, &*r.raddr), (closed, bed.client_ip.as_str()));
    }
}

/// Every other SYN-ACK is lost on its way to the client: the server's listener
/// retransmits it (and the client may retransmit its SYN too). Both sides' counts are
/// checked against their own namespace's TCPSynRetrans, and the accepted connections
/// carry the SYN-ACK retransmits of their handshake.
#[test]
fn lost_syn_acks_are_retransmitted() {
    let _serial = serial();
    let bed = Bed::new("sak", 5, false);
    let port = 5005;
    bed.iptables(
        &bed.client,
        &format!("-A INPUT -p tcp --sport {port} --tcp-flags SYN,ACK SYN,ACK -m statistic --mode nth --every 2 --packet 0 -j DROP"),
    );
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &[]);
    let (cb, sb) = (bed.client.counters(), bed.server.counters());
    let (_, out) = bed.send(port, 1000, 4, &[], Duration::from_secs(60));
    let (ca, sa) = (bed.client.counters(), bed.server.counters());
    assert_eq!(out, vec!["ok 1000"; 4]);
    drop(server);
    let (recording, _d) = rec.stop();

    let (cns, sns) = (bed.client.inode(), bed.server.inode());
    let srv_synack = delta(&sb, &sa, "TcpExt.TCPSynRetrans");
    let cli_syn = delta(&cb, &ca, "TcpExt.TCPSynRetrans");
    assert!(srv_synack >= 4, "each handshake lost one SYN-ACK: {srv_synack}");
    let rows = recording.read_table::<Retransmit>().unwrap();
    let synacks: Vec<&Retransmit> = rows.iter().filter(|r| r.netns == Some(sns) && &*r.kind == "synack").collect();
    let syns: Vec<&Retransmit> = rows.iter().filter(|r| r.netns == Some(cns) && &*r.kind == "syn" && r.counted).collect();
    assert_eq!(synacks.len() as i64, srv_synack);
    assert_eq!(synacks.len() as i64, delta(&sb, &sa, "Tcp.RetransSegs"));
    assert_eq!(syns.len() as i64, cli_syn);
    assert!(synacks.iter().all(|r| r.socket_id.is_none() && r.lport == port && &*r.state == "SYN_RECV"));
    assert!(synacks.iter().all(|r| r.comm.as_deref() == Some("tcpfr-traffic")), "owned by the listener's process");

    let flows = in_ns(recording.read_table::<Flow>().unwrap(), sns, |f| f.netns);
    let servers: Vec<&Flow> = flows.iter().filter(|f| f.role.as_deref() == Some("server")).collect();
    assert_eq!(servers.len(), 4);
    assert_eq!(servers.iter().map(|f| f.syn_retransmits as i64).sum::<i64>(), srv_synack);
    assert!(servers.iter().all(|f| f.handshake.as_deref() == Some("completed")));
}

/// A firewall on the client's own OUTPUT drops its retransmitted SYNs (the first SYN
/// gets through to a black hole): the kernel counts those failed attempts in
/// RetransSegs and TCPSynRetrans although nothing left the host — `counted` says so,
/// `err` says why.
#[test]
fn local_firewall_drops_are_counted_failed_attempts() {
    let _serial = serial();
    let bed = Bed::new("fw", 6, false);
    let port = 5006;
    bed.iptables(&bed.server, &format!("-A INPUT -p tcp --dport {port} --syn -j DROP"));
    // Let the first SYN out, drop the later ones locally.
    bed.iptables(&bed.client, &format!("-A OUTPUT -p tcp --dport {port} --syn -m recent --name tfr --rcheck -j DROP"));
    bed.iptables(&bed.client, &format!("-A OUTPUT -p tcp --dport {port} --syn -m recent --name tfr --set -j ACCEPT"));
    bed.client.exec(&["sysctl", "-qw", "net.ipv4.tcp_syn_retries=2"]);
    let rec = Recorder::start(&[]);
    let before = bed.client.counters();
    let (_, out) = bed.send(port, 0, 1, &[], Duration::from_secs(30));
    let after = bed.client.counters();
    let (recording, _d) = rec.stop();
    assert_eq!(out.len(), 1);

    let ns = bed.client.inode();
    let rows = in_ns(recording.read_table::<Retransmit>().unwrap(), ns, |r| r.netns);
    let retrans_segs = delta(&before, &after, "Tcp.RetransSegs");
    assert!(retrans_segs >= 2, "{retrans_segs}");
    assert_eq!(rows.iter().filter(|r| r.counted).map(|r| r.segments as i64).sum::<i64>(), retrans_segs);
    assert!(rows.iter().all(|r| r.counted && r.err == Some(-libc::EPERM)), "dropped by the local firewall: {rows:#?}");
    assert_eq!(delta(&before, &after, "TcpExt.TCPRetransFail"), rows.len() as i64);
    assert_eq!(delta(&before, &after, "TcpExt.TCPSynRetrans"), rows.len() as i64);
    // The connection's outcome says whose doing it was.
    let flows = in_ns(recording.read_table::<Flow>().unwrap(), ns, |f| f.netns);
    let client: Vec<&Flow> = flows.iter().filter(|f| f.rport == port).collect();
    assert_eq!(client.len(), 1, "{flows:#?}");
    assert_eq!(client[0].handshake.as_deref(), Some("filtered"), "{:?}", client[0]);
    assert_eq!(client[0].error.as_deref(), Some("ETIMEDOUT"));
}

/// A dual-stack listener ([::]) accepting IPv4 clients: its sockets are IPv6 sockets
/// with IPv4-mapped addresses, recorded as the IPv4 connection they are on the wire.
#[test]
fn dual_stack_listener_records_ipv4_addresses() {
    let _serial = serial();
    let bed = Bed::new("dual", 11, false);
    let port = 5012;
    let rec = Recorder::start(&[]);
    let mut server = bed.server.spawn(&[traffic_bin(), "serve", "--listen", &format!("[::]:{port}")]);
    server.wait_for_line("listening", Duration::from_secs(10));
    let (_, out) = bed.send(port, 1000, 2, &[], Duration::from_secs(20));
    assert_eq!(out, vec!["ok 1000"; 2]);
    drop(server);
    let (recording, _d) = rec.stop();
    let flows = in_ns(recording.read_table::<Flow>().unwrap(), bed.server.inode(), |f| f.netns);
    let servers: Vec<&Flow> = flows.iter().filter(|f| f.role.as_deref() == Some("server")).collect();
    assert_eq!(servers.len(), 2, "{flows:#?}");
    for f in servers {
        assert_eq!((&*f.family, &*f.laddr, &*f.raddr, f.lport), ("ipv4", bed.server_ip.as_str(), bed.client_ip.as_str(), port));
    }
}
