//! Captures in SQL and on the command line, against tshark on the same files; the
//! kernel/wire cross-reference on the samples, against the sequence numbers.

mod common;

use common::*;

fn count(pcap: &std::path::Path, filter: &str) -> i64 {
    tshark(pcap, filter, &["frame.number"]).len() as i64
}

#[test]
fn pcap_tables_count_what_tshark_counts() {
    for name in ["bulk-loss", "syn-blackhole", "refused", "services"] {
        let rec = sample(&format!("{name}/recording"));
        let pcap = sample(&format!("{name}/capture.pcap"));
        let (rec, pcap_s) = (rec.to_str().unwrap(), pcap.to_str().unwrap());
        let q = |sql: &str| scalar(&ok(&["query", rec, "--pcap", pcap_s, sql, "--format", "csv"]));
        assert_eq!(q("SELECT count(*) FROM packets"), count(&pcap, "tcp"), "{name}");
        assert_eq!(q("SELECT count(*) FROM pcap_retransmits"), count(&pcap, "tcp.analysis.retransmission"), "{name}");
        assert_eq!(q("SELECT count(*) FROM packets WHERE retransmission"), count(&pcap, "tcp.analysis.retransmission"), "{name}");
        assert_eq!(
            q("SELECT count(*) FROM pcap_retransmits WHERE label = 'fast_retransmission'"),
            count(&pcap, "tcp.analysis.fast_retransmission"),
            "{name}"
        );
        assert_eq!(
            q("SELECT count(*) FROM packets WHERE labels LIKE '%out_of_order%'"),
            count(&pcap, "tcp.analysis.out_of_order"),
            "{name}"
        );
        let mut streams: Vec<String> = tshark(&pcap, "tcp", &["tcp.stream"]).into_iter().map(|r| r[0].clone()).collect();
        streams.sort();
        streams.dedup();
        assert_eq!(q("SELECT count(*) FROM pcap_flows"), streams.len() as i64, "{name}");
        // Resets and SYN retransmissions per conversation add up to the wire's.
        assert_eq!(q("SELECT sum(resets_c2s + resets_s2c) FROM pcap_flows"), count(&pcap, "tcp.flags.reset == 1"), "{name}");
        assert_eq!(
            q("SELECT sum(syn_retransmissions) FROM pcap_flows"),
            count(&pcap, "tcp.analysis.retransmission && tcp.flags.syn == 1 && tcp.flags.ack == 0"),
            "{name}"
        );
    }
}

#[test]
fn syn_blackhole_handshakes_on_the_wire() {
    let pcap = sample("syn-blackhole/capture.pcap");
    let rec = sample("syn-blackhole/recording");
    let rows = csv_rows(&ok(&[
        "query",
        rec.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "SELECT handshake, count(*), sum(syn_retransmissions) FROM pcap_flows WHERE server_port = 9102 GROUP BY 1",
        "--format",
        "csv",
    ]));
    // Five attempts into the black hole (samples/syn-blackhole/README): no answer, ever.
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "no_answer");
    assert_eq!(rows[0][1], "5");
    let out = ok(&["pcap", pcap.to_str().unwrap()]);
    assert!(out.contains("no_answer"), "{out}");
}

#[test]
fn xref_matches_every_kernel_retransmit_on_the_senders_capture() {
    let rec = sample("bulk-loss/recording");
    let pcap = sample("bulk-loss/capture.pcap");
    let out = ok(&["xref", rec.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "--format", "csv"]);
    let parts: Vec<&str> = out.split("\n# ").collect();
    let flows = csv_rows(parts[0]);
    let recorded = scalar(&ok(&["query", rec.to_str().unwrap(), "SELECT sum(segments) FROM retransmits WHERE counted", "--format", "csv"]));
    // local, remote, kind, kernel_segments, wire_sent, matched, kernel_only, wire_only, wire_received
    let col = |i: usize| flows.iter().map(|r| r[i].parse::<i64>().unwrap()).sum::<i64>();
    assert!(flows.iter().all(|r| r[2] == "data"), "{out}");
    assert_eq!(col(3), recorded);
    // The capture was made on the sender's interface: every retransmitted segment the
    // kernel recorded is on the wire, one for one (the recorder's wire test proves the
    // counts by sequence numbers; here the matching must find them).
    assert_eq!(col(4), recorded, "{out}");
    assert_eq!(col(5), recorded, "{out}");
    assert_eq!(col(6), 0, "{out}");
    assert_eq!(col(7), 0, "{out}");
    let summary = csv_rows(&format!("# {}", parts[1]));
    let offset: i64 = summary[0][0].parse().unwrap();
    // Same host, two clocks (capture: realtime; recording: monotonic mapped to UTC at
    // start): well under a millisecond apart.
    assert!(offset.abs() < 1_000_000, "offset {offset} ns");
}

#[test]
fn xref_matches_syn_retransmits_with_the_wires() {
    let rec = sample("syn-blackhole/recording");
    let pcap = sample("syn-blackhole/capture.pcap");
    let out = ok(&["xref", rec.to_str().unwrap(), "--pcap", pcap.to_str().unwrap(), "--format", "csv"]);
    let parts: Vec<&str> = out.split("\n# ").collect();
    let flows = csv_rows(parts[0]);
    // Every SYN after the first of its connection is a retransmission on the wire
    // (17 here: 5 + 5 + 5 + 1 + 1, see the sample's README); the kernel recorded each,
    // one flow and kind per connection, all matched.
    let wire = count(&pcap, "tcp.analysis.retransmission && tcp.flags.syn == 1 && tcp.flags.ack == 0");
    assert!(wire > 0);
    assert_eq!(flows.len(), 5, "{out}");
    let col = |i: usize| flows.iter().map(|r| r[i].parse::<i64>().unwrap()).sum::<i64>();
    assert!(flows.iter().all(|r| r[2] == "syn" && r[1].ends_with(":9102")), "{out}");
    assert_eq!(col(3), wire, "{out}");
    assert_eq!(col(4), wire, "{out}");
    assert_eq!(col(5), wire, "{out}");
}

#[test]
fn bad_captures_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all").unwrap();
    let r = tcpfr(&["pcap", junk.to_str().unwrap()]);
    assert!(!r.ok);
    assert!(r.stderr.contains("junk.pcap"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let rec = sample("bulk-loss/recording");
    let r = tcpfr(&["query", rec.to_str().unwrap(), "--pcap", "/nonexistent.pcap", "SELECT 1"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("/nonexistent.pcap"), "{}", r.stderr);
}
