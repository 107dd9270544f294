//! `listeners` against the kernel: a listener with a backlog of 1 that never accepts,
//! and 20 clients connecting at once. SYNs to a full accept queue are dropped without
//! `skb:kfree_skb` seeing them; the listener's drops must add up to the namespace's
//! ListenDrops, and its queue and limit must be what listen() and the handshakes made.

mod testbed;

use std::time::Duration;

use tcpfr_schema::listeners::Listener;
use testbed::*;

#[test]
fn a_full_accept_queue_drops_are_the_listeners_drops() {
    full_accept_queue("lsn", 47, &[]);
}

/// With `--rtt-per-ack` the socket walk runs for listeners alone.
#[test]
fn listeners_are_walked_with_rtt_per_ack_too() {
    full_accept_queue("lsnp", 48, &["--rtt-per-ack"]);
}

fn full_accept_queue(tag: &str, index: u8, recorder_args: &[&str]) {
    let _serial = serial();
    let bed = Bed::new(tag, index, false);
    let port = 5000 + index as u16;
    let rec = Recorder::start(recorder_args);
    let server = bed.serve(port, &["--backlog", "1", "--no-accept"]);
    let before = bed.server.counters();
    let to = bed.server_addr(port);
    let clients: Vec<Proc> = (0..20)
        .map(|_| bed.client.spawn(&[traffic_bin(), "send", "--to", &to, "--bytes", "0", "--connect-only", "--connect-timeout", "3s"]))
        .collect();
    let results: Vec<String> = clients.into_iter().map(|c| c.finish(Duration::from_secs(20)).trim().to_string()).collect();
    // A walk after the last SYN retransmit (walks run every second where segments moved).
    std::thread::sleep(Duration::from_millis(2500));
    let after = bed.server.counters();
    let (recording, _dir) = rec.stop();
    drop(server);

    let listen_drops = delta(&before, &after, "TcpExt.ListenDrops");
    eprintln!("connects: {results:?}; ListenDrops +{listen_drops}, ListenOverflows +{}", delta(&before, &after, "TcpExt.ListenOverflows"));
    assert!(results.iter().any(|r| r.starts_with("connect-error")), "the queue must overflow: {results:?}");
    assert!(listen_drops >= 20, "ListenDrops +{listen_drops}");

    let ns = bed.server.inode();
    let rows: Vec<Listener> = recording.read_table::<Listener>().unwrap().into_iter().filter(|r| r.netns == Some(ns)).collect();
    for r in &rows {
        eprintln!("listener :{} queue {}/{} drops {}", r.lport, r.accept_queue, r.accept_queue_max, r.drops);
    }
    assert!(!rows.is_empty(), "no listeners rows");
    assert!(rows.iter().all(|r| r.lport == port && &*r.laddr == "0.0.0.0" && &*r.family == "ipv4"));
    assert_eq!(rows.iter().map(|r| r.drops).sum::<i64>(), listen_drops, "listeners.drops vs ΔListenDrops");
    assert!(rows.iter().all(|r| r.accept_queue_max == 1), "listen(fd, 1)");
    // Full means more waiting than the limit: the kernel queues limit + 1.
    assert!(rows.iter().any(|r| r.accept_queue == 2), "the queue filled");
    assert!(rows.iter().all(|r| r.comm.as_deref() == Some("tcpfr-traffic") && r.pid.is_some()), "owner: {rows:?}");
    // One row per listener and walk at the most.
    let mut times: Vec<i64> = rows.iter().map(|r| r.time.0).collect();
    times.dedup();
    assert_eq!(times.len(), rows.len());
}
