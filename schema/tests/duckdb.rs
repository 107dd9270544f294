//! Our files read by an independent Parquet reader (DuckDB, installed by
//! scripts/bootstrap.sh): rows, types and the multi-host glob of FORMAT.md.

mod common;

use std::process::Command;

use common::*;

fn duckdb(sql: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys, duckdb; print('\\n'.join('|'.join(map(str, r)) for r in duckdb.sql(sys.argv[1]).fetchall()))", sql])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "DuckDB failed (missing? run scripts/bootstrap.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn duckdb_reads_a_recording_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let data = Dataset::generate(3000, 7);
    let mut w = tcpfr_schema::write::RecordingWriter::create(&rec, info(T0), Default::default()).unwrap();
    data.push_all(&mut w);
    w.finish(T0 + 100 * SEC).unwrap();
    let glob = |t: &str| format!("read_parquet('{}/{t}/*.parquet')", rec.display());

    let expect_segments: i64 = data.retransmits.iter().filter(|r| r.counted).map(|r| r.segments as i64).sum();
    let expect_v6 = data.retransmits.iter().filter(|r| &*r.family == "ipv6").count();
    let got = duckdb(&format!(
        "SELECT count(*), sum(segments) FILTER (WHERE counted), count(*) FILTER (WHERE family = 'ipv6') FROM {}",
        glob("retransmits")
    ));
    assert_eq!(got, format!("{}|{expect_segments}|{expect_v6}", data.retransmits.len()));

    // Types as FORMAT.md says DuckDB sees them.
    let types = duckdb(&format!("SELECT typeof(time), typeof(lport), typeof(socket_id), typeof(counted) FROM {} LIMIT 1", glob("retransmits")));
    assert_eq!(types, "TIMESTAMPTZ_NS|USMALLINT|BIGINT|BOOLEAN");
    // Times are the ones written, to the nanosecond.
    let min_ns = data.retransmits.iter().map(|r| r.time.0).min().unwrap();
    let got = duckdb(&format!("SELECT epoch_ns(min(time)) FROM {}", glob("retransmits")));
    assert_eq!(got, min_ns.to_string());
    // Nulls stay nulls.
    let null_pids = data.flows.iter().filter(|f| f.bytes_received.is_none()).count();
    assert_eq!(duckdb(&format!("SELECT count(*) FROM {} WHERE bytes_received IS NULL", glob("flows"))), null_pids.to_string());
    for (t, n) in [("state_changes", data.state_changes.len()), ("rtt_samples", data.rtt_samples.len()), ("host_counters", data.host_counters.len())] {
        assert_eq!(duckdb(&format!("SELECT count(*) FROM {}", glob(t))), n.to_string(), "{t}");
    }
}

#[test]
fn duckdb_reads_many_hosts_as_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    write_recording(&dir.path().join("dc1"), "web1", 10);
    write_recording(&dir.path().join("dc1"), "web2", 20);
    write_recording(&dir.path().join("dc2"), "db1", 30);
    let got = duckdb(&format!(
        "SELECT host, count(*) FROM read_parquet('{}/**/retransmits/*.parquet') GROUP BY host ORDER BY host",
        dir.path().display()
    ));
    assert_eq!(got, "db1|30\nweb1|10\nweb2|20");
}
