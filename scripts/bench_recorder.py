#!/usr/bin/env python3
"""What tracing costs the traced workload: one bulk transfer over a veth pair, run
without tracing, with tcpfr-recorder (defaults: RTT from the socket walk), with
tcpfr-recorder --rtt-per-ack (tcp_probe on every received segment, rate-limited), and
with `tcpdump -w`, in turns, in one run.

Offloads are off on the veth (`ethtool -K … tso off gso off gro off`) so packets are
wire-sized as on a real NIC; with offloads on, tcpdump sees 64 KB super-packets and
looks cheap. 0.5% of data segments are dropped at the receiver so there are
retransmits to record.

Reports per variant (median of the rounds): throughput; the tracer's own CPU time
(user + system of its process); for the recorder, the kernel-side cost of its eBPF
programs (kernel.bpf_stats_enabled: run time ÷ run count per program), events/s and
events lost (from the recording's own recorder_stats); and the whole machine's CPU
seconds per GB moved, whose increase over the untraced run is what the workload pays, and that increase as
a fraction of what `tcpdump -w` adds (the goal: the recorder adds at most 1/10 of it).

    sudo scripts/bench_recorder.py [--bytes 1000000000] [--rounds 3] [--every-ack]
    sudo scripts/bench_recorder.py --curve 0.1,0.3,1,3 [--seconds 10] [--rounds 3]

`--accuracy SECONDS` compares what the two RTT modes record instead: one transfer paced
at 0.5 Gbit/s for SECONDS, recorded at once by a recorder walking the sockets and one
sampling per ACK, both every 100 ms; srtt p50/p99 of the transfer's connection from each.

`--curve` measures cost against traffic instead: transfers paced at each rate (Gbit/s)
for `--seconds`, and per variant the tracer's own CPU (its process, plus for the
recorder the run time of its eBPF programs on the traffic's path) as % of one core, and
the machine CPU added over an untraced transfer at the same rate.
Needs release builds: cargo build --release -p tcpfr-recorder --bins (in
$CARGO_TARGET_DIR/release, or target/release; TCPFR_BIN overrides).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TCPFR_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
NS_C, NS_S = f"tfb-{os.getpid()}-c", f"tfb-{os.getpid()}-s"
PORT = 5099


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def ns(name, *cmd):
    return sh("ip", "netns", "exec", name, *cmd)


def setup():
    for n in (NS_C, NS_S):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
        sh("ip", "netns", "add", n)
    sh("ip", "link", "add", "veth0", "netns", NS_C, "type", "veth", "peer", "name", "veth0", "netns", NS_S)
    for n, ip in ((NS_C, "10.99.0.1/24"), (NS_S, "10.99.0.2/24")):
        ns(n, "ip", "addr", "add", ip, "dev", "veth0")
        ns(n, "ip", "link", "set", "veth0", "up")
        ns(n, "ip", "link", "set", "lo", "up")
        ns(n, "ethtool", "-K", "veth0", "tso", "off", "gso", "off", "gro", "off")
    ns(NS_S, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(PORT), "-m", "length", "--length", "300:65535",
       "-m", "statistic", "--mode", "random", "--probability", "0.005", "-j", "DROP")


def teardown():
    for n in (NS_C, NS_S):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


def proc_cpu(pid):
    """user + system seconds of a process."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """busy CPU seconds of the whole machine."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = f[3] + f[4]
    return (sum(f) - idle) / os.sysconf("SC_CLK_TCK")


def bpf_stats():
    progs = json.loads(sh("bpftool", "prog", "show", "--json"))
    return {p["name"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in progs
            if p.get("name", "").startswith(("tcp_", "inet_sock", "tcpfr_"))}


def transfer(nbytes, rate=None):
    """`rate`: bytes per second to pace at (None: as fast as it goes)."""
    c0, t0 = machine_cpu(), time.time()
    pace = ["--rate", str(rate)] if rate else []
    out = ns(NS_C, os.path.join(BIN, "tcpfr-traffic"), "send", "--to", f"10.99.0.2:{PORT}", "--bytes", str(nbytes), *pace)
    dt = time.time() - t0
    assert out.strip() == f"ok {nbytes}", out
    return nbytes / dt, machine_cpu() - c0


def run_plain(nbytes, rate=None):
    tput, cpu = transfer(nbytes, rate)
    return {"gbit_s": tput * 8 / 1e9, "machine_cpu_s_per_gb": cpu / (nbytes / 1e9), "seconds": nbytes / tput}


def peak_rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0


def run_recorder(nbytes, work, extra, rate=None):
    out = tempfile.mkdtemp(dir=work)
    rec = subprocess.Popen([os.path.join(BIN, "tcpfr-recorder"), "--out", out, "--cidr", "10.99.0.0/24", "--log", "warn", *extra],
                           stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # loaded and attached
    before, cpu0 = bpf_stats(), proc_cpu(rec.pid)
    tput, mcpu = transfer(nbytes, rate)
    cpu1, after = proc_cpu(rec.pid), bpf_stats()
    time.sleep(1.5)  # one more stats interval
    rss = peak_rss_mb(rec.pid)
    rec.send_signal(signal.SIGINT)
    rec.wait(60)
    # The socket walk runs inside the recorder's own read(), already in its process
    # CPU; the tracepoint programs run in the traffic's context.
    run_ns = sum(after[k][0] - before.get(k, (0, 0))[0] for k in after if k != "tcpfr_rtt_walk")
    runs = sum(after[k][1] - before.get(k, (0, 0))[1] for k in after if k != "tcpfr_rtt_walk")
    per_prog = {k: (after[k][0] - before.get(k, (0, 0))[0]) / max(1, after[k][1] - before.get(k, (0, 0))[1])
                for k in after if after[k][1] - before.get(k, (0, 0))[1] > 0}
    stats = recording_stats(out)
    shutil.rmtree(out, ignore_errors=True)
    return {"gbit_s": tput * 8 / 1e9, "machine_cpu_s_per_gb": mcpu / (nbytes / 1e9), "tracer_cpu_s": cpu1 - cpu0,
            "seconds": nbytes / tput, "bpf_cpu_s": run_ns / 1e9, "bpf_ns_per_run": run_ns / max(1, runs), "bpf_ns_per_run_by_program": per_prog,
            "peak_rss_mb": rss, **stats}


def recording_stats(out):
    import duckdb
    db = duckdb.connect()
    rec = [os.path.join(out, d) for d in os.listdir(out) if not d.startswith(".")][0]  # not the lock
    seen, lost, secs = db.execute(
        f"SELECT sum(events_seen), sum(events_lost), (epoch_ns(max(time)) - epoch_ns(min(time))) / 1e9 "
        f"FROM read_parquet('{rec}/recorder_stats/*.parquet') WHERE stream <> 'recorder'").fetchone()
    peak = db.execute(f"SELECT max(events_seen * 1e9 / interval_ns) FROM (SELECT time, interval_ns, sum(events_seen) AS events_seen "
                      f"FROM read_parquet('{rec}/recorder_stats/*.parquet') WHERE stream <> 'recorder' AND interval_ns > 5e8 GROUP BY 1, 2)").fetchone()[0]
    return {"events": int(seen or 0), "events_lost": int(lost or 0), "peak_events_per_s": peak or 0}


def run_tcpdump(nbytes, work, rate=None):
    pcap = os.path.join(work, "bench.pcap")
    td = subprocess.Popen(["ip", "netns", "exec", NS_C, "tcpdump", "-i", "veth0", "-s", "128", "-B", "65536", "-w", pcap,
                           "tcp", "port", str(PORT)], stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    cpu0 = proc_cpu(td.pid)
    tput, mcpu = transfer(nbytes, rate)
    time.sleep(0.5)
    cpu1 = proc_cpu(td.pid)
    td.send_signal(signal.SIGINT)
    err = td.communicate(timeout=30)[1]
    size = os.path.getsize(pcap)
    os.remove(pcap)
    dropped = [l for l in err.splitlines() if "dropped by kernel" in l]
    return {"gbit_s": tput * 8 / 1e9, "machine_cpu_s_per_gb": mcpu / (nbytes / 1e9), "tracer_cpu_s": cpu1 - cpu0,
            "seconds": nbytes / tput, "pcap_mb": size / 1e6, "tcpdump": dropped[0] if dropped else ""}


def median(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=1_000_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--every-ack", action="store_true", help="also --rtt-per-ack --rtt-interval 0 (a sample per ACK)")
    ap.add_argument("--curve", help="cost against traffic: comma-separated rates in Gbit/s")
    ap.add_argument("--seconds", type=float, default=10, help="with --curve: length of each paced transfer")
    ap.add_argument("--accuracy", type=float, help="compare the RTT modes on one transfer this long (seconds)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    sh("sysctl", "-qw", "kernel.bpf_stats_enabled=1")
    work = tempfile.mkdtemp()
    setup()
    srv = subprocess.Popen(["ip", "netns", "exec", NS_S, os.path.join(BIN, "tcpfr-traffic"), "serve", "--listen", f"0.0.0.0:{PORT}"],
                           stdout=subprocess.PIPE, text=True)
    srv.stdout.readline()
    per_ack, every_ack = "--rtt-per-ack", "per-ack, 0 s"
    recorders = {"tcpfr-recorder": [], per_ack: ["--rtt-per-ack"]}
    if a.every_ack:
        recorders[every_ack] = ["--rtt-per-ack", "--rtt-interval", "0", "--ring-size", "64MiB"]
    if a.curve or a.accuracy:
        try:
            curve(a, work, recorders) if a.curve else accuracy(a.accuracy, work)
        finally:
            srv.kill()
            teardown()
            shutil.rmtree(work, ignore_errors=True)
            sh("sysctl", "-qw", "kernel.bpf_stats_enabled=0")
        return
    results = {"none": [], **{k: [] for k in recorders}, "tcpdump -w": []}
    try:
        for r in range(a.rounds):
            results["none"].append(run_plain(a.bytes))
            for name, extra in recorders.items():
                results[name].append(run_recorder(a.bytes, work, extra))
            results["tcpdump -w"].append(run_tcpdump(a.bytes, work))
            print(f"round {r + 1}: " + json.dumps({k: v[-1] for k, v in results.items()}, default=str), file=sys.stderr)
    finally:
        srv.kill()
        teardown()
        shutil.rmtree(work, ignore_errors=True)
        sh("sysctl", "-qw", "kernel.bpf_stats_enabled=0")
    base = median(results["none"], "machine_cpu_s_per_gb")
    print(f"{a.rounds} rounds of {a.bytes / 1e9:.1f} GB each; medians")
    print(f"{'tracing':<16}{'Gbit/s':>8}{'CPU s/GB':>10}{'extra':>8}{'tracer CPU s':>14}{'eBPF CPU s':>12}{'ns/run':>8}{'events/s':>11}{'lost':>6}")
    for name, rows in results.items():
        cpu_gb = median(rows, "machine_cpu_s_per_gb")
        tracer = median(rows, "tracer_cpu_s")
        bpf = median(rows, "bpf_cpu_s")
        print(f"{name:<16}{median(rows, 'gbit_s'):>8.2f}{cpu_gb:>10.3f}{(cpu_gb - base) / base * 100:>7.1f}%"
              f"{(tracer if tracer is not None else 0):>14.3f}{(bpf if bpf is not None else 0):>12.3f}"
              f"{(median(rows, 'bpf_ns_per_run') or 0):>8.0f}{(median(rows, 'peak_events_per_s') or 0):>11.0f}{(median(rows, 'events_lost') or 0):>6.0f}")
    td = results["tcpdump -w"]
    # Machine CPU added over the untraced run, per round (rounds alternate, so each
    # round's own baseline cancels slow drifts of the machine).
    def added(name):
        return statistics.median(r["machine_cpu_s_per_gb"] - b["machine_cpu_s_per_gb"] for r, b in zip(results[name], results["none"]))
    td_added = added("tcpdump -w")
    print(f"machine CPU added per GB (median of per-round differences): tcpdump -w {td_added:.3f} s")
    for name in recorders:
        print(f"  {name}: {added(name):.3f} s = {added(name) / td_added:.3f} of tcpdump's" if td_added > 0 else f"  {name}: {added(name):.3f} s")
    for name in recorders:
        rec = results[name]
        total_rec = median(rec, "tracer_cpu_s") + median(rec, "bpf_cpu_s")
        print(f"{name}: total CPU (process + eBPF) {total_rec:.3f} s vs tcpdump process {median(td, 'tracer_cpu_s'):.3f} s: "
              f"ratio {total_rec / max(1e-9, median(td, 'tracer_cpu_s')):.3f}; peak RSS {median(rec, 'peak_rss_mb'):.0f} MB")
        print("  eBPF ns per run by program (last round):", json.dumps({k: round(v) for k, v in rec[-1]["bpf_ns_per_run_by_program"].items()}))
        print("  events recorded (last round):", rec[-1]["events"], "lost:", rec[-1]["events_lost"])
    print("pcap MB:", round(td[-1]["pcap_mb"]), td[-1]["tcpdump"])


def accuracy(seconds, work):
    """srtt p50/p99 of one paced transfer's connection as the walk and the per-ACK
    mode record it at the same time."""
    import duckdb
    modes = {"walk": [], "per-ack": ["--rtt-per-ack"]}
    outs, procs = {}, []
    for name, extra in modes.items():
        outs[name] = tempfile.mkdtemp(dir=work)
        procs.append(subprocess.Popen([os.path.join(BIN, "tcpfr-recorder"), "--out", outs[name], "--cidr", "10.99.0.0/24",
                                       "--log", "warn", "--rtt-interval", "100ms", *extra]))
    time.sleep(3)
    rate = 0.5e9 / 8
    transfer(int(rate * seconds), rate)
    time.sleep(1)
    for p in procs:
        p.send_signal(signal.SIGINT)
        p.wait(60)
    print(f"one transfer at 0.5 Gbit/s for {seconds:.0f} s, 0.5% loss; srtt of the client's connection")
    db = duckdb.connect()
    for name, out in outs.items():
        rec = [os.path.join(out, d) for d in os.listdir(out) if not d.startswith(".")][0]
        n, p50, p99 = db.execute(
            f"SELECT count(*), quantile_cont(srtt_us, 0.5), quantile_cont(srtt_us, 0.99) "
            f"FROM read_parquet('{rec}/rtt_samples/*.parquet') r JOIN read_parquet('{rec}/sockets/*.parquet') s "
            f"USING (socket_id) WHERE s.rport = {PORT}").fetchone()
        print(f"  {name:<8} {n:>6} samples  p50 {p50:8.0f} µs  p99 {p99:8.0f} µs")


def curve(a, work, recorders):
    """Cost against traffic: per rate, alternating rounds of every variant."""
    rates = [float(x) for x in a.curve.split(",")]
    rows = []
    for gbit in rates:
        rate = gbit * 1e9 / 8
        nbytes = int(rate * a.seconds)
        res = {"none": [], **{k: [] for k in recorders}, "tcpdump -w": []}
        for _ in range(a.rounds):
            res["none"].append(run_plain(nbytes, rate))
            for name, extra in recorders.items():
                res[name].append(run_recorder(nbytes, work, extra, rate))
            res["tcpdump -w"].append(run_tcpdump(nbytes, work, rate))
        rows.append((gbit, res))
        print(f"{gbit} Gbit/s: " + json.dumps({k: v[-1] for k, v in res.items()}, default=str), file=sys.stderr)

    def core_pct(r):
        return (r["tracer_cpu_s"] + r.get("bpf_cpu_s", 0)) / r["seconds"] * 100

    def added_pct(res, name):
        # Machine CPU added over the untraced transfer of the same round, as % of a core.
        return statistics.median((r["machine_cpu_s_per_gb"] - b["machine_cpu_s_per_gb"]) * (r["gbit_s"] / 8) * 100
                                 for r, b in zip(res[name], res["none"]))

    names = list(recorders) + ["tcpdump -w"]
    print(f"cost against traffic: medians of {a.rounds} rounds of {a.seconds:.0f} s paced transfers")
    print(f"{'Gbit/s asked':>12}{'got':>7}" + "".join(f"{n + ' own %':>22}{'machine +%':>12}" for n in names))
    for gbit, res in rows:
        got = median(res["none"], "gbit_s")
        cells = "".join(f"{statistics.median(core_pct(r) for r in res[n]):>22.2f}{added_pct(res, n):>12.1f}" for n in names)
        print(f"{gbit:>12}{got:>7.2f}{cells}")
    print("own %: the tracer's process CPU (for the recorder plus its eBPF programs' run time) as % of one core;")
    print("machine +%: the whole machine's CPU added over the untraced transfer, % of one core (noisy: shared machine)")


if __name__ == "__main__":
    main()
