#!/usr/bin/env python3
"""Wire retransmission analysis, tcpfr vs tshark, on the same capture in one run.

Makes a ~1 GB capture of a lossy bulk transfer with the testbed (two network
namespaces, a veth pair with offloads off so packets are wire-sized, 1% of data
segments dropped at the receiver), then times
    tcpfr-wire's scan (the analysis behind `tcpfr pcap`, release build)
    tshark -r FILE -Y tcp.analysis.retransmission
and compares their counts, wall time and peak memory (max RSS).

    sudo scripts/bench_pcap.py [--bytes 900000000] [--keep FILE]
Needs: cargo build --release -p tcpfr-recorder --bins; cargo build --release -p tcpfr-wire --example scan
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
NS_C, NS_S = f"tfp-{os.getpid()}-c", f"tfp-{os.getpid()}-s"
PORT = 5097


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def ns(name, *cmd):
    return sh("ip", "netns", "exec", name, *cmd)


def timed(cmd):
    """(stdout, wall seconds, max RSS MB) of a command, via GNU time's format."""
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {p.stderr[-2000:]}")
    rss = int(re.search(r"MAXRSS (\d+)", p.stderr).group(1)) / 1024
    return p.stdout, wall, rss


def capture(path, nbytes):
    for n in (NS_C, NS_S):
        sh("ip", "netns", "add", n)
    try:
        sh("ip", "link", "add", "veth0", "netns", NS_C, "type", "veth", "peer", "name", "veth0", "netns", NS_S)
        for n, ip in ((NS_C, "10.97.0.1/24"), (NS_S, "10.97.0.2/24")):
            ns(n, "ip", "addr", "add", ip, "dev", "veth0")
            ns(n, "ip", "link", "set", "veth0", "up")
            ns(n, "ip", "link", "set", "lo", "up")
            ns(n, "ethtool", "-K", "veth0", "tso", "off", "gso", "off", "gro", "off")
        ns(NS_S, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(PORT), "-m", "length", "--length", "300:65535",
           "-m", "statistic", "--mode", "random", "--probability", "0.01", "-j", "DROP")
        srv = subprocess.Popen(["ip", "netns", "exec", NS_S, os.path.join(REL, "tcpfr-traffic"), "serve", "--listen",
                                f"0.0.0.0:{PORT}"], stdout=subprocess.PIPE, text=True)
        srv.stdout.readline()
        td = subprocess.Popen(["ip", "netns", "exec", NS_C, "tcpdump", "-i", "veth0", "-B", "262144", "-w", path,
                               "tcp", "port", str(PORT)], stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        ns(NS_C, os.path.join(REL, "tcpfr-traffic"), "send", "--to", f"10.97.0.2:{PORT}", "--bytes", str(nbytes // 4),
           "--conns", "4")
        time.sleep(1)
        td.send_signal(2)
        err = td.communicate(timeout=60)[1]
        srv.kill()
        print("tcpdump:", " / ".join(l for l in err.splitlines() if "packets" in l), file=sys.stderr)
    finally:
        for n in (NS_C, NS_S):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=900_000_000)
    ap.add_argument("--keep", help="use/keep the capture at this path")
    a = ap.parse_args()
    path = a.keep or os.path.join(tempfile.mkdtemp(), "bulk.pcap")
    if not os.path.exists(path):
        capture(path, a.bytes)
    size = os.path.getsize(path)
    try:
        ours, t_ours, rss_ours = timed([os.path.join(REL, "examples", "scan"), path])
        frames, tcp, rt, fast, spurious, ooo, _ = ours.split()
        theirs, t_ts, rss_ts = timed(["tshark", "-n", "-r", path, "-Y", "tcp.analysis.retransmission", "-T", "fields",
                                      "-e", "frame.number"])
        n_ts = len(theirs.split())
        print(f"capture: {size / 1e9:.2f} GB, {frames} frames ({tcp} TCP)")
        print(f"{'':<8}{'retransmissions':>16}{'wall s':>9}{'max RSS MB':>12}")
        print(f"{'tcpfr':<8}{rt:>16}{t_ours:>9.2f}{rss_ours:>12.0f}   (fast {fast}, spurious {spurious}, out-of-order {ooo})")
        print(f"{'tshark':<8}{n_ts:>16}{t_ts:>9.2f}{rss_ts:>12.0f}")
        print(f"speed-up {t_ts / t_ours:.0f}x; counts {'identical' if int(rt) == n_ts else 'DIFFER'}; "
              f"tcpfr {size / 1e6 / t_ours:.0f} MB/s")
    finally:
        if not a.keep:
            os.remove(path)


if __name__ == "__main__":
    main()
