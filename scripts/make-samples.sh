#!/usr/bin/env bash
# Regenerates samples/: small real recordings made by tcpfr-recorder on test-bed
# scenarios (network namespaces + veth + iptables), each with a capture of the same
# traffic and a README line saying what happened. Needs root. Takes about a minute.
#
#   scripts/make-samples.sh            # all scenarios
#   scripts/make-samples.sh refused    # one
#
# Tests pin moments of the older samples (bulk-loss, refused, services, syn-blackhole:
# analyzer/tests/{bundle,samples,ship,html_report}.rs), and exports over several samples
# assume one run made them (a 1 s step over samples weeks apart is weeks of steps):
# remaking those means updating the tests' times too.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make-samples: needs root (eBPF, namespaces)" >&2; exit 1; }
scripts/bootstrap.sh
export PATH="${TCPFR_TOOLS:-$HOME/.cache/tcpfr-tools}/bin:$PATH"
cargo build --release --locked -p tcpfr-recorder --bins
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release"
WORK="$(mktemp -d)"
NS_C="tfs-$$-c"
NS_S="tfs-$$-s"
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns del "$NS_S" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Process names are what owners look like in the recording: link the traffic tool
# under service-like names (comm is the executable's name).
for name in api-client batch-job postgres redis webapp reports report-job search cache-client; do
    ln -sf "$BIN/tcpfr-traffic" "$WORK/$name"
done

bed() {
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns add "$NS_C"; ip netns add "$NS_S"
    ip link add veth0 netns "$NS_C" type veth peer name veth0 netns "$NS_S"
    ip -n "$NS_C" addr add 10.66.0.10/24 dev veth0
    ip -n "$NS_S" addr add 10.66.0.34/24 dev veth0
    for ns in "$NS_C" "$NS_S"; do
        ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up
        # Wire-sized packets, as on a real NIC, so the capture shows every segment.
        ip netns exec "$ns" ethtool -K veth0 tso off gso off gro off >/dev/null
    done
}

# start_recording NAME: recorder (only the test bed's addresses) and capture.
start_recording() {
    local name=$1
    ip netns exec "$NS_C" tcpdump -q -i veth0 -s 96 -U --immediate-mode -w "$WORK/$name.pcap" tcp 2>/dev/null &
    PIDS+=($!); CAP=$!
    "$BIN/tcpfr-recorder" --out "$WORK/$name" --host "sample-$name" --cidr 10.66.0.0/24 --rtt-interval 10ms --log warn &
    PIDS+=($!); REC=$!
    sleep 2
}

stop_recording() {
    local name=$1
    sleep 1
    kill -INT "$REC"; wait "$REC"
    kill -INT "$CAP"; wait "$CAP" || true
    rm -rf "samples/$name"
    mkdir -p "samples/$name"
    mv "$WORK/$name"/*/ "samples/$name/recording"
    mv "$WORK/$name.pcap" "samples/$name/capture.pcap"
    chmod -R a+rX "samples/$name"
}

serve() { # NAME PORT [args…]
    local name=$1 port=$2; shift 2
    ip netns exec "$NS_S" "$WORK/$name" serve --listen "0.0.0.0:$port" "$@" >/dev/null &
    PIDS+=($!)
}

send() { # NAME PORT BYTES CONNS [args…]
    local name=$1 port=$2 bytes=$3 conns=$4; shift 4
    ip netns exec "$NS_C" "$WORK/$name" send --to "10.66.0.34:$port" --bytes "$bytes" --conns "$conns" "$@" >/dev/null || true
}

scenario_bulk_loss() {
    bed
    ip netns exec "$NS_S" iptables -A INPUT -p tcp --dport 5432 -m length --length 300:65535 \
        -m statistic --mode random --probability 0.01 -j DROP
    start_recording bulk-loss
    serve postgres 5432; sleep 0.3
    send batch-job 5432 4000000 3
    stop_recording bulk-loss
    echo "Bulk transfer: batch-job sends 3 × 4 MB to postgres (10.66.0.34:5432); 1% of data segments are dropped at the receiver, so the sender retransmits." > samples/bulk-loss/README
}

scenario_syn_blackhole() {
    bed
    ip netns exec "$NS_S" iptables -A INPUT -p tcp --dport 9102 --syn -j DROP
    ip netns exec "$NS_C" sysctl -qw net.ipv4.tcp_syn_retries=2
    start_recording syn-blackhole
    send api-client 9102 0 3 &
    local c=$!
    send api-client 9102 0 2 --connect-timeout 1500ms
    wait $c
    stop_recording syn-blackhole
    echo "SYN black hole: SYNs to 10.66.0.34:9102 are dropped; api-client tries 5 connections: 3 one after another wait for the kernel to give up (tcp_syn_retries=2, ETIMEDOUT; kernels since 6.6 space the first SYN retransmits linearly, so each sends several), 2 give up after their own 1.5 s timeout (one SYN retransmit each)." > samples/syn-blackhole/README
}

scenario_refused() {
    bed
    ip netns exec "$NS_S" iptables -A INPUT -p tcp --dport 6380 -j REJECT --reject-with tcp-reset
    start_recording refused
    serve redis 6379; sleep 0.3
    send webapp 6379 1000 2
    send webapp 6380 0 4
    send webapp 6390 0 3
    stop_recording refused
    echo "Refused connections: webapp reaches redis on :6379 twice, then is refused 4 times by a firewall reset on :6380 and 3 times by a closed port :6390 (reset sent by the server's TCP)." > samples/refused/README
}

scenario_services() {
    bed
    # Only the path to the database loses packets.
    ip netns exec "$NS_S" iptables -A INPUT -p tcp --dport 5432 -m length --length 300:65535 \
        -m statistic --mode random --probability 0.02 -j DROP
    start_recording services
    serve postgres 5432; serve redis 6379; serve webapp 8080; sleep 0.3
    for i in 1 2 3; do
        send api-client 5432 1500000 2 & local a=$!
        send api-client 6379 1500000 2 & local b=$!
        send batch-job 8080 1500000 2 & local c=$!
        wait "$a" "$b" "$c"
    done
    stop_recording services
    echo "Several services, one lossy path: api-client talks to postgres (:5432) and redis (:6379), batch-job to webapp (:8080), all on 10.66.0.34; only the path to :5432 drops 2% of data segments." > samples/services/README
}

# Each cause `tcpfr causes` tells apart, over two and a half minutes on one host (the
# server side is a namespace of the same host, as a container would be):
scenario_causes() {
    bed
    # postgres: its side drops 1% of arriving data (fast retransmits, matched to drops).
    ip netns exec "$NS_S" iptables -A INPUT -p tcp --dport 5432 -m length --length 300:65535 \
        -m statistic --mode random --probability 0.01 -j DROP
    # search: this host's own firewall drops api-client's SYNs (handshake "filtered").
    ip netns exec "$NS_C" iptables -A OUTPUT -p tcp --dport 9200 --syn -j DROP
    start_recording causes
    serve postgres 5432; serve redis 6379
    serve webapp 8080 --backlog 1 --no-accept
    serve reports 9000 --rcvbuf 4096 --read-rate 100000
    sleep 0.3
    # Background: batch-job writes to postgres every few seconds all along.
    ( for i in $(seq 1 30); do send batch-job 5432 300000 1; sleep 4; done ) &
    local bg=$!
    sleep 10
    # redis: a 1.5 s black hole mid-transfer (RTO stall with backoff).
    send cache-client 6379 3000000 1 --rate 1000000 & local a=$!
    sleep 1; ip netns exec "$NS_S" iptables -I INPUT -p tcp --dport 6379 -j DROP
    sleep 1.5; ip netns exec "$NS_S" iptables -D INPUT -p tcp --dport 6379 -j DROP
    wait "$a"
    sleep 15
    # webapp: a listener that never accepts, with a backlog of 1, and 12 clients at once.
    for i in $(seq 1 12); do send api-client 8080 0 1 --connect-only --connect-timeout 3s & done
    sleep 20
    # search: three connects whose SYNs never leave.
    send api-client 9200 0 3 --connect-timeout 1500ms
    sleep 15
    # reports: a slow reader with a small receive buffer (receiver-window limited).
    send report-job 9000 400000 1
    sleep 10
    # redis again: only its ACKs are lost for 1.2 s (spurious retransmits, DSACK).
    send cache-client 6379 3000000 1 --rate 1000000 & a=$!
    sleep 1; ip netns exec "$NS_S" iptables -I OUTPUT -p tcp --sport 6379 -j DROP
    sleep 1.2; ip netns exec "$NS_S" iptables -D OUTPUT -p tcp --sport 6379 -j DROP
    wait "$a"
    wait "$bg"
    stop_recording causes
    echo "Causes: over about two and a half minutes on one host (the servers are a namespace of it, as containers would be): batch-job writes to postgres (10.66.0.34:5432) every 4 s and postgres' side drops 1% of arriving data; cache-client's transfer to redis (:6379) hits a 1.5 s black hole, and later a second one loses only its ACKs for 1.2 s; 12 api-client connects hit webapp's listener (:8080, backlog 1, never accepts); api-client's 3 connects to search (:9200) have their SYNs dropped by this host's own firewall; report-job sends 400 KB to reports (:9000), which reads 100 KB/s with a 4 KB receive buffer." > samples/causes/README
}

want=${1:-all}
for s in bulk_loss syn_blackhole refused services causes; do
    if [ "$want" = all ] || [ "$want" = "${s//_/-}" ]; then
        echo "make-samples: ${s//_/-}"
        "scenario_$s"
    fi
done
du -sh samples
