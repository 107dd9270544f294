#!/usr/bin/env python3
"""Fleet scale, measured: the canned questions over many hosts' recordings in an object
store, timed in one process (`tcpfr URL`) and on a Ballista cluster on this machine
(`tcpfr --cluster`, tcpfr-scheduler with one, then two tcpfr-executors), in one run,
with what each question fetched against what the store holds (`tcpfr -v`).

    target/release/with-seaweed bench -- scripts/bench_fleet.py --hosts 1000 --events 1000000000
    target/release/with-seaweed --keep /data/fleet bench -- scripts/bench_fleet.py --hosts 1000 --events 1000000000
    target/release/with-seaweed --reuse /data/fleet bench -- scripts/bench_fleet.py --reuse ...   # the same store again
    scripts/bench_fleet.py --url s3://bucket/prefix ...       # a store of yours (AWS_* set)

The hosts' recordings are written by the recorder's writer (examples/gen-recording) and
shipped into the store by its shipper as each one closes; --reuse skips that when the
store already holds them (with-seaweed --keep DIR keeps a store, --reuse DIR starts it
again: generating 1 B events takes most of an hour). Every run is a fresh process; medians of --rounds. Build first (release):
    cargo build --release --locked -p tcpfr-cluster -p tcpfr-recorder -p tcpfr --features tcpfr/cluster \\
        -p tcpfr-testsupport --bins --example gen-recording
Executors get all cores each (--vcores); on one machine two executors share them, so the
figure to carry over to a real cluster is the per-executor rate (events/s), not the ratio.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

QUESTIONS = ["retransmit-rate", "hotspots", "handshakes", "resets", "rtt", "timeline", "top-flows"]


def run(cmd, env=None):
    """Wall seconds and stderr of one fresh process; exits on failure."""
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.time() - t0
    err = p.stderr.decode()
    if p.returncode != 0:
        sys.exit(f"bench_fleet: {' '.join(cmd[:4])} … failed: {err}")
    return wall, err


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(cmd, log, ready, timeout=180):
    """Starts a server process; waits until its log says `ready`."""
    f = open(log, "w")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready in open(log).read():
            return p
        if p.poll() is not None:
            sys.exit(f"bench_fleet: {cmd[0]} ended:\n{open(log).read()}")
        time.sleep(0.2)
    p.kill()
    sys.exit(f"bench_fleet: {cmd[0]} not ready in {timeout} s:\n{open(log).read()}")


def peak_rss(pid):
    """A live process's peak resident memory (VmHWM), in bytes."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def size(text):
    n, unit = text.split()
    return float(n) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


def human(n):
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n:,.1f} {unit}"
        n /= 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--events", type=int, default=1_000_000_000)
    ap.add_argument("--sockets", type=int, default=2000, help="sockets per host")
    ap.add_argument("--span", default="2h")
    ap.add_argument("--url", default="s3://bench/fleet")
    ap.add_argument("--work", default="/tmp/bench-fleet", help="where the generated recordings go")
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated questions (default: all)")
    ap.add_argument("--reuse", action="store_true", help="the store already holds the recordings")
    a = ap.parse_args()
    b = lambda name: os.path.join(a.bin, name)
    questions = a.only.split(",") if a.only else QUESTIONS
    os.makedirs(a.work, exist_ok=True)

    if not a.reuse:
        # Straight into the store: each host's recording is shipped by the recorder's
        # shipper as soon as the writer has closed it, then removed locally.
        gen = os.path.join(a.work, "gen")
        subprocess.run(["rm", "-rf", gen], check=True)
        t, _ = run([b("examples/gen-recording"), "--out", gen, "--hosts", str(a.hosts), "--events", str(a.events),
                    "--sockets", str(a.sockets), "--span", a.span, "--ship", a.url])
        print(f"generated and shipped {a.events:,} events on {a.hosts} hosts to {a.url} in {t:.0f} s", flush=True)

    results = {q: {} for q in questions}
    fetched = {}
    for q in questions:
        times = []
        for _ in range(a.rounds):
            t, err = run([b("tcpfr"), "-v", q, a.url, "--format", "csv"])
            times.append(t)
            print(f"  {q}: one process {t:.2f} s", flush=True)
        m = re.search(r"fetched (\S+ \S+) in (\d+) request\(s\) from (\d+) object\(s\); its recordings hold (\S+ \S+) in (\d+) file", err)
        fetched[q] = (size(m.group(1)), int(m.group(3)), size(m.group(4)), int(m.group(5))) if m else None
        results[q]["one process"] = statistics.median(times)
        print(f"{q}: one process {results[q]['one process']:.2f} s", flush=True)

    procs = []
    peaks = {}
    try:
        port = free_port()
        procs.append(start([b("tcpfr-scheduler"), "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1",
                            "--bind-port", str(port)], os.path.join(a.work, "scheduler.log"), "tcpfr-scheduler listening"))
        for n in (1, 2):
            work = os.path.join(a.work, f"executor-{n}")
            os.makedirs(work, exist_ok=True)
            procs.append(start([b("tcpfr-executor"), "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1",
                                "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port),
                                "--bind-port", str(free_port()), "--bind-grpc-port", str(free_port()),
                                "--bind-health-port", str(free_port()), "--vcores", str(os.cpu_count()),
                                "--work-dir", work], os.path.join(a.work, f"executor-{n}.log"), "Executor registration succeed"))
            label = f"{n} executor" + ("s" if n > 1 else "")
            for q in questions:
                times = []
                for _ in range(a.rounds):
                    times.append(run([b("tcpfr"), "--cluster", f"df://127.0.0.1:{port}", q, a.url, "--format", "csv"])[0])
                    print(f"  {q}: {label} {times[-1]:.2f} s", flush=True)
                results[q][label] = statistics.median(times)
                print(f"{q}: {label} {results[q][label]:.2f} s", flush=True)
            # Peak memory so far of each executor (the first one's covers both phases).
            peaks[label] = [peak_rss(p.pid) for p in procs[1:]]
            print(f"{label}: executors' peak RSS " + ", ".join(human(m) for m in peaks[label]), flush=True)
    finally:
        for p in procs:
            p.kill()
            p.wait()

    cols = ["one process", "1 executor", "2 executors"]
    print(f"\n{a.events:,} events, {a.hosts} hosts, {a.url}; medians of {a.rounds} (s); events/s in one process\n")
    print("| question | " + " | ".join(cols) + " | events/s (one process) | fetched / store |")
    print("|---|" + "---|" * (len(cols) + 2))
    for q in questions:
        f = fetched[q]
        frac = f"{human(f[0])} of {human(f[2])} ({100 * f[0] / f[2]:.1f}%), {f[1]} of {f[3]} files" if f else "?"
        row = [f"{results[q].get(c, float('nan')):.2f}" for c in cols]
        print(f"| {q} | " + " | ".join(row) + f" | {a.events / results[q]['one process']:,.0f} | {frac} |")
    for label, mems in peaks.items():
        print(f"\nexecutors' peak RSS after the {label} runs: " + ", ".join(human(m) for m in mems))


if __name__ == "__main__":
    main()
