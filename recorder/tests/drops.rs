//! `drops` against the kernel: a firewall rule on the sender's own OUTPUT drops 5 % of
//! a bulk transfer's packets at random. Every packet the rule dropped must be in
//! `drops` (reason NETFILTER_DROP, direction out, the connection's addresses), and the
//! rows' packets must add up to the rule's own packet counter (`iptables -L -v -x`).

mod testbed;

use std::time::Duration;

use tcpfr_schema::drops::Drop;
use tcpfr_schema::recorder_stats::RecorderStats;
use testbed::*;

/// Packets counted by the first rule of `chain` in `ns` (`iptables -L CHAIN -v -x -n`).
fn rule_packets(ns: &Netns, chain: &str) -> i64 {
    let out = ns.exec(&["iptables", "-L", chain, "-v", "-x", "-n"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(2).unwrap_or_else(|| panic!("no rule in {chain}: {text}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn packets_our_firewall_dropped_are_counted_with_their_reason() {
    let _serial = serial();
    let bed = Bed::new("drp", 49, false);
    let port = 5049;
    bed.iptables(&bed.client, &format!("-A OUTPUT -p tcp --dport {port} -m statistic --mode random --probability 0.05 -j DROP"));
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &[]);
    let (client_pid, results) = bed.send(port, 60_000_000, 2, &[], Duration::from_secs(120));
    assert_eq!(results, vec!["ok 60000000"; 2]);
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    let dropped = rule_packets(&bed.client, "OUTPUT");
    let (recording, _dir) = rec.stop();

    assert!(dropped > 20, "the rule must drop something: {dropped}");
    let ns = bed.client.inode();
    let rows: Vec<Drop> = recording.read_table::<Drop>().unwrap().into_iter().filter(|d| d.netns == Some(ns)).collect();
    // The rule's drops; the kernel also drops, for other reasons, late packets of the
    // closed connections (a retransmitted FIN at a socket gone), which the rule never saw.
    let ours: Vec<&Drop> = rows.iter().filter(|d| d.rport == port && &*d.reason == "NETFILTER_DROP").collect();
    let packets: i64 = ours.iter().map(|d| d.packets).sum();
    eprintln!("iptables dropped {dropped}; drops rows {} with {packets} packets", ours.len());
    for d in ours.iter().take(5) {
        eprintln!("{d:?}");
    }
    assert_eq!(packets, dropped, "drops.packets vs the rule's counter");
    assert!(ours.iter().all(|d| &*d.reason == "NETFILTER_DROP" && &*d.direction == "out"), "{ours:?}");
    assert!(ours.iter().all(|d| *d.laddr == bed.client_ip && *d.raddr == bed.server_ip && d.lport != 0));
    assert!(ours.iter().all(|d| d.first_time.0 <= d.time.0));
    // The sender's own socket dropped them: its flow and its process. (A row of the
    // first connection taken after the kernel gave its address to the second has none:
    // the counts are read every interval, the socket is known by its address.)
    let flows = recording.read_table::<tcpfr_schema::flows::Flow>().unwrap();
    assert!(ours.iter().any(|d| d.socket_id.is_some()), "{ours:?}");
    for d in ours.iter().filter(|d| d.socket_id.is_some()) {
        let f = flows.iter().find(|f| Some(f.socket_id) == d.socket_id).unwrap_or_else(|| panic!("no flow for {d:?}"));
        assert_eq!((f.lport, f.rport), (d.lport, d.rport), "{d:?}");
        assert_eq!((d.pid, d.comm.as_deref()), (Some(client_pid as i32), Some("tcpfr-traffic")), "{d:?}");
    }
    // A row per flow and interval: two connections over a few seconds.
    assert!(ours.len() >= 2 && ours.len() < 200, "{}", ours.len());
    // Nothing was lost for want of room in the map.
    let stats = recording.read_table::<RecorderStats>().unwrap();
    assert_eq!(stats.iter().filter(|s| &*s.stream == "drops").map(|s| s.events_lost).sum::<i64>(), 0);
}

/// A receiver in another namespace of this host drops 2 % of the data arriving for it
/// (INPUT rule, full-sized packets only): every packet it dropped must be sent again,
/// so the sender's retransmits whose `seq` falls in a drop's range of the same
/// connection (ends reversed: the drop is the receiver's) carry at least as many
/// segments as the rule's counter; and they are the sender's retransmits, not more.
#[test]
fn retransmits_match_the_drops_that_caused_them() {
    use tcpfr_schema::retransmits::Retransmit;
    let _serial = serial();
    let bed = Bed::new("drm", 53, false);
    bed.offloads_off();
    let port = 5053;
    bed.iptables(
        &bed.server,
        &format!("-A INPUT -p tcp --dport {port} -m length --length 1000:65535 -m statistic --mode random --probability 0.02 -j DROP"),
    );
    let rec = Recorder::start(&[]);
    let server = bed.serve(port, &[]);
    let (_, results) = bed.send(port, 20_000_000, 1, &[], Duration::from_secs(120));
    assert_eq!(results, vec!["ok 20000000"]);
    drop(server);
    std::thread::sleep(Duration::from_millis(300));
    let dropped = rule_packets(&bed.server, "INPUT");
    let (recording, _dir) = rec.stop();

    let drops: Vec<Drop> = recording
        .read_table::<Drop>()
        .unwrap()
        .into_iter()
        .filter(|d| d.netns == Some(bed.server.inode()) && d.lport == port && &*d.reason == "NETFILTER_DROP")
        .collect();
    assert_eq!(drops.iter().map(|d| d.packets).sum::<i64>(), dropped, "drops.packets vs the rule's counter");
    assert!(drops.iter().all(|d| &*d.direction == "in" && &*d.reason == "NETFILTER_DROP"), "{drops:?}");
    // The firewall drops on arrival before TCP looks the socket up: no socket to name.
    assert!(drops.iter().all(|d| d.socket_id.is_none() && d.comm.is_none()), "{drops:?}");
    let retransmits: Vec<Retransmit> = recording
        .read_table::<Retransmit>()
        .unwrap()
        .into_iter()
        .filter(|r| r.netns == Some(bed.client.inode()) && r.rport == port && r.counted && &*r.kind == "data")
        .collect();
    let covers = |d: &Drop, seq: u32| {
        if d.seq_first <= d.seq_last { (d.seq_first..=d.seq_last).contains(&seq) } else { seq >= d.seq_first || seq <= d.seq_last }
    };
    let matched: i64 = retransmits
        .iter()
        .filter(|r| {
            drops.iter().any(|d| {
                d.laddr == r.raddr && d.lport == r.rport && d.raddr == r.laddr && d.rport == r.lport && d.first_time.0 <= r.time.0 && covers(d, r.seq.expect("seq"))
            })
        })
        .map(|r| r.segments as i64)
        .sum();
    let all: i64 = retransmits.iter().map(|r| r.segments as i64).sum();
    eprintln!("rule dropped {dropped}; {} drops rows; retransmitted {all} segments, {matched} matched to a drop", drops.len());
    assert!(dropped > 50, "the rule must drop: {dropped}");
    assert!(matched >= dropped && matched <= all, "matched {matched}, dropped {dropped}, retransmitted {all}");
}
