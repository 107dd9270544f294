#!/usr/bin/env python3
"""What the recorder costs a host with many idle connections: CONNS established,
quiet loopback connections (both ends: 2 × CONNS sockets) in a network namespace of
their own, held by several processes (the open-file limit is per process), and
tcpfr-recorder with its defaults (the socket walk every --rtt-interval) running beside
them.

Reports, over a measured window after a warm-up (the first walk samples every
connection once): the recorder's CPU (user + system of its process, which includes
the walks: they run inside its read() of the iterator) as % of one core, the walk's
eBPF run time per walk and per socket (kernel.bpf_stats_enabled), RTT rows written
during the window (should be 0: nothing moves), and the recorder's RSS and peak RSS.

    sudo scripts/bench_idle.py [--conns 10000] [--procs 8] [--active 0] [--seconds 30] [-- recorder args]
Needs a release build: cargo build --release -p tcpfr-recorder --bins (in
$CARGO_TARGET_DIR/release, or target/release; TCPFR_BIN overrides).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TCPFR_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
NS = f"tfi-{os.getpid()}"

# One holder: a listener on PORT and N connections to it, both ends kept open, silent.
HOLDER = """
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(4096)
keep = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = l.accept()
    keep += [c, s]
print("ready", flush=True)
time.sleep(100000)
"""

# Busy connections beside the idle ones: each sends a byte every 100 ms, so TCP moves in
# the namespace and every walk visits all of its sockets (a host is never all idle).
TICKER = """
import socket, sys, time, selectors
port, n = int(sys.argv[1]), int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(4096)
cs, ss = [], []
for _ in range(n):
    cs.append(socket.create_connection(("127.0.0.1", port)))
    ss.append(l.accept()[0])
print("ready", flush=True)
while True:
    for c in cs:
        c.send(b"x")
    for s in ss:
        s.recv(100)
    time.sleep(0.1)
"""


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def proc_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def status_mb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0


def rss_by_mapping(pid, top=8):
    """RSS (kB) per mapping of `pid`, largest first: which of the ring buffer, the
    binary, the heap and thread arenas hold the memory."""
    rows, name = [], None
    for line in open(f"/proc/{pid}/smaps"):
        f = line.split()
        if "-" in f[0] and not f[0].endswith(":"):
            name = f[5] if len(f) > 5 else f"[anon {f[0]}]"
        elif f[0] == "Rss:":
            rows.append((int(f[1]), name))
    by = {}
    for kb, n in rows:
        by[n] = by.get(n, 0) + kb
    return sorted(by.items(), key=lambda kv: -kv[1])[:top]


def walk_stats():
    for p in json.loads(sh("bpftool", "prog", "show", "--json")):
        if p.get("name") == "tcpfr_rtt_walk":
            return p.get("run_time_ns", 0), p.get("run_cnt", 0)
    return 0, 0


def rtt_rows(out, since_ns):
    import duckdb
    rec = [os.path.join(out, d) for d in os.listdir(out) if not d.startswith(".")][0]
    return duckdb.connect().execute(
        f"SELECT count(*) FILTER (WHERE epoch_ns(time) >= {since_ns}), count(*) FROM read_parquet('{rec}/rtt_samples/*.parquet')").fetchone()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--active", type=int, default=0, help="busy connections beside the idle ones")
    ap.add_argument("recorder_args", nargs="*")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    sh("sysctl", "-qw", "kernel.bpf_stats_enabled=1")
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
    holders, rec, work = [], None, tempfile.mkdtemp()
    try:
        per = -(-a.conns // a.procs)
        t0 = time.time()
        for i in range(a.procs):
            n = min(per, a.conns - i * per)
            if n <= 0:
                break
            holders.append(subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", HOLDER, str(7000 + i), str(n)],
                                            stdout=subprocess.PIPE, text=True))
        if a.active:
            holders.append(subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", TICKER, "6999", str(a.active)],
                                            stdout=subprocess.PIPE, text=True))
        for h in holders:
            assert h.stdout.readline().strip() == "ready"
        est = sh("ip", "netns", "exec", NS, "ss", "-tnH", "state", "established").count("\n")
        print(f"{est} established sockets in {NS} ({len(holders)} processes, {time.time() - t0:.1f} s to open)", file=sys.stderr)
        out = os.path.join(work, "rec")
        rec = subprocess.Popen([os.path.join(BIN, "tcpfr-recorder"), "--out", out, "--log", "warn", *a.recorder_args])
        time.sleep(a.warmup)
        since = time.time_ns()
        cpu0, (rt0, rc0) = proc_cpu(rec.pid), walk_stats()
        time.sleep(a.seconds)
        cpu1, (rt1, rc1) = proc_cpu(rec.pid), walk_stats()
        rss, hwm = status_mb(rec.pid, "VmRSS"), status_mb(rec.pid, "VmHWM")
        mappings = rss_by_mapping(rec.pid)
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
        rec = None
        window, total = rtt_rows(out, since)
        runs, run_ns = rc1 - rc0, rt1 - rt0
        # One run per socket of each walk plus one at its end; sockets of all namespaces.
        print(f"idle connections: {a.conns}, busy: {a.active} ({est} sockets)")
        print(f"recorder CPU: {(cpu1 - cpu0) / a.seconds * 100:.2f} % of a core over {a.seconds:.0f} s (process, walks included)")
        print(f"walk eBPF: {run_ns / 1e6:.1f} ms in {runs} program runs = {run_ns / max(1, runs):.0f} ns per socket visit, "
              f"{run_ns / 1e9 / a.seconds * 100:.3f} % of a core")
        print(f"rtt_samples rows: {total} in all (the first walk), {window} during the measured window "
              f"(the busy connections' share: {2 * a.active * a.seconds:.0f})")
        print(f"recorder RSS {rss:.0f} MB, peak {hwm:.0f} MB; largest mappings:")
        for name, kb in mappings:
            print(f"  {kb / 1024:7.1f} MB  {name}")
    finally:
        if rec is not None:
            rec.kill()
        for h in holders:
            h.kill()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        sh("sysctl", "-qw", "kernel.bpf_stats_enabled=0")


if __name__ == "__main__":
    main()
