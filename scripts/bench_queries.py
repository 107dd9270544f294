#!/usr/bin/env python3
"""Every canned question timed with tcpfr and with DuckDB running the same SQL on the
same files, in turns, in one run.

The SQL is what `tcpfr <question> REC --show-sql` prints; DuckDB gets the views that
`tcpfr query REC --show-views` prints (the same tables over the same Parquet files, the
`service` column, rtt_samples joined with sockets), and two dialect differences are
translated: DataFusion's
`date_bin(i, t)` is DuckDB's `time_bucket(i, t::TIMESTAMPTZ)`, and
`approx_percentile_cont(q) WITHIN GROUP (ORDER BY x)` is `approx_quantile(x, q)`.
Each run is a fresh process (as a user would run it); wall time, CPU time and peak
memory come from the kernel's accounting of that process. Row counts of both engines
are compared, so both answered the same question.

    scripts/bench_queries.py REC [--rounds 3] [--tcpfr target/release/tcpfr]
Make REC with:
    cargo run --release -p tcpfr-recorder --example gen-recording -- --out REC --events 100000000
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

QUESTIONS = ["retransmit-rate", "hotspots", "handshakes", "resets", "rtt", "timeline", "top-flows"]


def measure(cmd, stdout=subprocess.DEVNULL):
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.time() - t0
    err = p.stderr.read().decode()
    if status != 0:
        sys.exit(f"{cmd[:3]} failed: {err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def duckdb_script(views, sql):
    # DuckDB reads our ns timestamps as TIMESTAMPTZ_NS, which time_bucket does not take.
    sql = re.sub(r"date_bin\((INTERVAL '[^']+'), ([a-z_.]+)\)", r"time_bucket(\1, CAST(\2 AS TIMESTAMPTZ))", sql)
    sql = re.sub(r"approx_percentile_cont\(([0-9.]+)\) WITHIN GROUP \(ORDER BY ([a-z_]+)\)", r"approx_quantile(\2, \1)", sql)
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    return (
        "import duckdb, sys\n"
        "c = duckdb.connect()\nc.execute('SET enable_progress_bar = false')\n"
        + "".join(f"c.execute({v!r})\n" for v in views)
        + "n = 0\n"
        + "".join(f"n += len(c.execute({s!r}).fetchall())\n" for s in statements)
        + "print(n)\n"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rec")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated questions (default: all)")
    ap.add_argument("--tcpfr", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "release", "tcpfr"))
    a = ap.parse_args()
    shown = subprocess.run([a.tcpfr, "query", a.rec, "--show-views"], check=True, capture_output=True, text=True).stdout
    views = [v.strip() for v in shown.split(";\n") if v.strip()]
    rows = []
    for q in (a.only.split(",") if a.only else QUESTIONS):
        sql = subprocess.run([a.tcpfr, q, a.rec, "--show-sql"], check=True, capture_output=True, text=True).stdout
        sql = "\n".join(l for l in sql.splitlines() if not l.startswith("--"))
        script = duckdb_script(views, sql)
        # Same answers: total result rows of all statements.
        t_rows = subprocess.run([a.tcpfr, q, a.rec, "--format", "ndjson"], check=True, capture_output=True, text=True).stdout.count("\n")
        d = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        if d.returncode != 0:
            sys.exit(f"DuckDB failed on {q}: {d.stderr[-1500:]}")
        d_rows = int(d.stdout)
        t, d = [], []
        for _ in range(a.rounds):
            t.append(measure([a.tcpfr, q, a.rec, "--format", "csv"]))
            d.append(measure([sys.executable, "-c", script]))
        med = lambda runs, i: statistics.median(r[i] for r in runs)
        rows.append((q, med(t, 0), med(d, 0), med(t, 1), med(d, 1), max(r[2] for r in t), max(r[2] for r in d), t_rows, d_rows))
        print(f"{q}: tcpfr {med(t, 0):.2f}s duckdb {med(d, 0):.2f}s", file=sys.stderr)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(a.rec) for f in fs)
    print(f"recording {a.rec}: {size / 1e9:.2f} GB; {a.rounds} rounds, medians")
    print(f"{'question':<16}{'tcpfr s':>9}{'duckdb s':>10}{'ratio':>7}{'tcpfr cpu':>11}{'duckdb cpu':>11}{'tcpfr MB':>10}{'duckdb MB':>10}{'rows t/d':>11}")
    for q, tw, dw, tc, dc, tm, dm, tr, dr in rows:
        print(f"{q:<16}{tw:>9.2f}{dw:>10.2f}{tw / dw:>7.2f}{tc:>11.2f}{dc:>11.2f}{tm:>10.0f}{dm:>10.0f}{tr:>6}/{dr:<5}")


if __name__ == "__main__":
    main()
