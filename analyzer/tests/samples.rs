//! The canned questions on the real samples, checked against truths that do not come
//! from tcpfr: the capture made during the same run (read by tshark), the kernel's own
//! counters recorded beside the events, and what each scenario was built to do
//! (samples/*/README).

mod common;

use common::*;

#[test]
fn bulk_loss_retransmits_match_the_capture_and_the_kernel_counters() {
    let rec = sample("bulk-loss");
    let rec = rec.to_str().unwrap();
    let recorded = scalar(&ok(&["query", rec, "SELECT sum(segments) FROM retransmits WHERE counted", "--format", "csv"]));
    // The kernel's RetransSegs of both namespaces, recorded beside the events.
    let counters = scalar(&ok(&["query", rec, "SELECT sum(retrans_segs) FROM host_counters", "--format", "csv"]));
    // The sender's wire: data packets re-sending bytes already sent.
    let wire: i64 = wire_retransmits(&sample("bulk-loss/capture.pcap"), "tcp.dstport == 5432").values().sum();
    assert!(recorded > 50, "the scenario loses 1% of data segments: {recorded}");
    assert_eq!(recorded, counters);
    assert_eq!(recorded, wire);

    // hotspots: one service, one peer, everything on it, from the sending process.
    let rows = csv_rows(&ok(&["hotspots", rec, "--part", "2", "--format", "csv"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!((r[0].as_str(), r[1].as_str(), r[2].parse::<i64>().unwrap(), r[3].as_str()), ("postgres", "10.66.0.34:5432", recorded, "100.0"));
    assert!(r[6].starts_with("batch-job["), "{r:?}");

    // retransmit-rate, host part: the kernel's ΔRetransSegs ÷ ΔOutSegs per window.
    let rows = csv_rows(&ok(&["retransmit-rate", rec, "--part", "1", "--window", "1m", "--format", "csv"]));
    let (r, o): (i64, i64) = rows.iter().fold((0, 0), |(r, o), row| (r + row[3].parse::<i64>().unwrap(), o + row[4].parse::<i64>().unwrap()));
    assert_eq!(r, recorded);
    let client_out = scalar(&ok(&[
        "query",
        rec,
        "SELECT sum(out_segs) FROM host_counters WHERE retrans_segs > 0 OR netns_name LIKE '%-c'",
        "--format",
        "csv",
    ]));
    assert!(o >= client_out, "{o} {client_out}");
    // Per connection (sock_ops counters at close) the same total.
    let per_flow = scalar(&ok(&["query", rec, "SELECT sum(retrans_segs) FROM flows WHERE role = 'client'", "--format", "csv"]));
    assert_eq!(per_flow, recorded);
}

#[test]
fn syn_blackhole_handshake_failures_match_the_capture() {
    let rec = sample("syn-blackhole");
    let rec = rec.to_str().unwrap();
    // On the wire: every SYN to the black hole, per client port (one port per attempt).
    let syns = tshark(&sample("syn-blackhole/capture.pcap"), "tcp.dstport == 9102 && tcp.flags.syn == 1 && tcp.flags.ack == 0", &["tcp.srcport"]);
    let mut ports: Vec<&str> = syns.iter().map(|f| f[0].as_str()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 5, "five connection attempts (README)");
    let wire_syn_retransmits = (syns.len() - ports.len()) as i64;

    let rows = csv_rows(&ok(&["handshakes", rec, "--part", "1", "--format", "csv"]));
    // Checked by hand against the scenario: 3 attempts waited for the kernel (ETIMEDOUT),
    // 2 gave up after their own 1.5 s; all to 10.66.0.34:9102.
    let by_cause: Vec<(String, String, i64)> = rows.iter().map(|r| (r[1].clone(), r[2].clone(), r[3].parse().unwrap())).collect();
    assert_eq!(
        by_cause,
        vec![("10.66.0.34:9102".into(), "timeout".into(), 3), ("10.66.0.34:9102".into(), "abandoned".into(), 2)]
    );
    let recorded_syn_retransmits: i64 = rows.iter().map(|r| r[4].parse::<i64>().unwrap()).sum();
    assert_eq!(recorded_syn_retransmits, wire_syn_retransmits);
    assert_eq!(recorded_syn_retransmits, scalar(&ok(&["query", rec, "SELECT sum(syn_retrans) FROM host_counters", "--format", "csv"])));
    // The application's 1.5 s timeout, to within 100 ms.
    let abandoned_wait: f64 = rows[1][5].parse().unwrap();
    assert!((abandoned_wait - 1500.0).abs() < 100.0, "{abandoned_wait} ms");
    // The kernel's timeouts waited longer than the application's.
    assert!(rows[0][5].parse::<f64>().unwrap() > 3000.0, "{rows:?}");
}

#[test]
fn refused_connections_match_the_capture() {
    let rec = sample("refused");
    let rec = rec.to_str().unwrap();
    let pcap = sample("refused/capture.pcap");
    let rsts = tshark(&pcap, "ip.src == 10.66.0.34 && tcp.flags.reset == 1", &["tcp.srcport"]);
    let count = |port: &str| rsts.iter().filter(|f| f[0] == port).count() as i64;
    // README: 4 refused by a firewall reset on :6380, 3 by the closed port :6390.
    assert_eq!((count("6380"), count("6390")), (4, 3));
    let rows = csv_rows(&ok(&["handshakes", rec, "--part", "1", "--format", "csv"]));
    let got: Vec<(String, String, i64)> = rows.iter().map(|r| (r[1].clone(), r[2].clone(), r[3].parse().unwrap())).collect();
    assert_eq!(
        got,
        vec![("10.66.0.34:6380".into(), "refused".into(), count("6380")), ("10.66.0.34:6390".into(), "refused".into(), count("6390"))]
    );
    // Resets: all 7 received by the client in SYN_SENT; only the closed port's 3 were
    // sent by the server's TCP (the firewall's resets never pass through TCP).
    let resets = csv_rows(&ok(&[
        "query",
        rec,
        "SELECT direction, coalesce(state, '-'), coalesce(reason, '-'), count(*) FROM resets GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        "--format",
        "csv",
    ]));
    assert_eq!(
        resets,
        vec![vec!["received", "SYN_SENT", "-", "7"], vec!["sent", "-", "NO_SOCKET", "3"]]
    );
    // And the two connections to redis completed.
    assert_eq!(scalar(&ok(&["query", rec, "SELECT count(*) FROM flows WHERE role = 'client' AND handshake = 'completed' AND rport = 6379", "--format", "csv"])), 2);
}

#[test]
fn several_services_only_the_lossy_path_stands_out() {
    let rec = sample("services");
    let rec = rec.to_str().unwrap();
    let wire = wire_retransmits(&sample("services/capture.pcap"), "ip.dst == 10.66.0.34");
    let per_port = |p: u16| wire.iter().filter(|((_, d), _)| *d == p).map(|(_, n)| *n).sum::<i64>();
    let rows = csv_rows(&ok(&["hotspots", rec, "--part", "1", "--format", "csv"]));
    // Only postgres' path drops data (README); other services may retransmit a
    // segment or two (tail losses of the shared veth), never the bulk.
    assert_eq!(rows[0][0], "postgres");
    assert_eq!(rows[0][1].parse::<i64>().unwrap(), per_port(5432));
    assert!(rows[0][2].parse::<f64>().unwrap() >= 95.0, "{rows:?}");
    for r in &rows[1..] {
        let port = match r[0].as_str() {
            "redis" => 6379,
            "http-alt" => 8080,
            other => panic!("unexpected service {other}"),
        };
        assert_eq!(r[1].parse::<i64>().unwrap(), per_port(port), "{r:?}");
    }
    // Processes in a fixed order (`array_agg(DISTINCT …)` has none of its own): the same
    // answer prints the same way every run, and on a cluster.
    assert!(rows.iter().any(|r| r[8].split(", ").count() >= 3), "{rows:?}");
    for r in &rows {
        let procs: Vec<&str> = r[8].split(", ").collect();
        let mut sorted = procs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(procs, sorted, "{r:?}");
    }
    // The report says it in words.
    let report = ok(&["report", rec]);
    assert!(report.contains("are on connections to 10.66.0.34:5432 (postgres) from api-client["), "{report}");
}

#[test]
fn replay_lists_every_event_in_time_order() {
    let rec = sample("refused");
    let rec = rec.to_str().unwrap();
    let expected = scalar(&ok(&[
        "query",
        rec,
        "SELECT (SELECT count(*) FROM retransmits) + (SELECT count(*) FROM state_changes) + (SELECT count(*) FROM resets) + (SELECT count(*) FROM flows)",
        "--format",
        "csv",
    ]));
    let out = ok(&["replay", rec, "--fast"]);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len() as i64, expected);
    let times: Vec<&str> = lines.iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time-ordered");
    let nd = ok(&["replay", rec, "--format", "ndjson", "--filter", "kind = 'reset_received'"]);
    let events: Vec<serde_json::Value> = nd.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e["state"] == "SYN_SENT" && e["comm"] == "webapp"));
}

#[test]
fn report_sentences_name_each_side_and_claim_nothing_from_a_few_samples() {
    let report = ok(&["report", sample("refused/recording").to_str().unwrap()]);
    // webapp is the client's own process name (port 6380 names no service): it goes
    // with our side, not in parentheses after the destination.
    assert!(report.contains("4 connection attempts from webapp to 10.66.0.34:6380 were refused"), "{report}");
    assert!(report.contains("10.66.0.34:6380 reset 4 connections of ours (webapp, from 10.66.0.10:*)"), "{report}");
    assert!(!report.contains("10.66.0.34:6380 (webapp)"), "{report}");
    // Four RTT samples: no tail is claimed from them.
    assert!(!report.contains("Highest RTT tail") && report.contains("RTT: 4 samples in all"), "{report}");
    // One attempt reads as one.
    let one = ok(&["report", sample("refused/recording").to_str().unwrap(), "--to", "2026-11-23T12:43:18.1009Z"]);
    assert!(one.contains("1 connection attempt from webapp to 10.66.0.34:6380 was refused"), "{one}");
}

/// samples/causes: each cause its README describes, against the kernel's counters of
/// the namespace where it happened and against the scenario itself.
#[test]
fn causes_name_each_cause_the_scenario_made() {
    let rec = sample("causes");
    let rec = rec.to_str().unwrap();
    let q = |sql: &str| scalar(&ok(&["query", rec, sql, "--format", "csv"]));
    // Fast retransmits: the sender's namespace counted them (TCPFastRetrans).
    let fast = q("SELECT sum(segments) FROM retransmits WHERE cause = 'fast' AND err = 0");
    assert!(fast > 10, "postgres' side drops 1% of its data: {fast}");
    assert_eq!(fast, q("SELECT sum(fast_retrans) FROM host_counters WHERE netns_name LIKE '%-c'"));
    // The listener that never accepts: its drops are the server namespace's ListenDrops.
    let listen_drops = q("SELECT sum(drops) FROM listeners WHERE lport = 8080");
    assert!(listen_drops > 0);
    assert_eq!(listen_drops, q("SELECT sum(listen_drops) FROM host_counters WHERE netns_name LIKE '%-s'"));
    // SYNs the client's own firewall dropped: three connects (README).
    assert_eq!(q("SELECT count(*) FROM flows WHERE handshake = 'filtered' AND rport = 9200"), 3);
    // Every packet postgres' side dropped was sent again, and those retransmits are
    // matched to the drop.
    let dropped = q("SELECT sum(packets) FROM drops WHERE direction = 'in' AND reason = 'NETFILTER_DROP' AND lport = 5432");
    let rows = csv_rows(&ok(&["causes", rec, "--part", "6", "--format", "csv"]));
    let matched: i64 = rows.iter().filter(|r| r[0] == "postgres" && r[1] == "NETFILTER_DROP" && r[2] == "in").map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert!(dropped > 10 && matched >= dropped, "matched {matched} of {dropped} dropped: {rows:?}");
    // The black hole: one stall of timeouts in a row toward redis.
    let stalls = csv_rows(&ok(&["causes", rec, "--part", "2", "--format", "csv"]));
    assert!(stalls.iter().any(|r| r[0] == "redis" && r[4].parse::<i64>().unwrap() >= 2), "{stalls:?}");
    // The slow reader: report-job's sender waited for the receiver's window most of its busy time.
    let limits = csv_rows(&ok(&["causes", rec, "--part", "5", "--format", "csv"]));
    let report_job = limits.iter().find(|r| r[0] == "report-job").unwrap_or_else(|| panic!("{limits:?}"));
    assert!(report_job[3].parse::<f64>().unwrap() > 50.0, "{report_job:?}");
    // The report says each in words.
    let report = ok(&["report", rec]);
    for words in [
        "resent because this host dropped the original (NETFILTER_DROP on arrival)",
        "the longest RTO stall lasted",
        "Listener 0.0.0.0:8080 (webapp) dropped",
        "blocked by this host's own firewall",
        "report-job: the receiver's window held the sender back",
    ] {
        assert!(report.contains(words), "{words:?} not in:\n{report}");
    }
}
