#!/usr/bin/env bash
# The README's fleet section, end to end on one machine: recordings of 20 simulated hosts
# (and the samples) shipped into an S3 store, asked once by `tcpfr` alone and once
# through a Ballista cluster (tcpfr-scheduler + two tcpfr-executors on loopback), with
# the answers compared. Exits non-zero if any answer differs.
#
#   scripts/fleet-demo.sh                      # SeaweedFS on loopback, started and stopped here
#   FLEET_URL=s3://bucket/prefix scripts/fleet-demo.sh   # your store (AWS_* from the environment)
#
# Builds what it runs (debug profile; TCPFR_BIN=DIR to use binaries built elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${TCPFR_TOOLS:-$HOME/.cache/tcpfr-tools}/bin:$PATH"
BIN="${TCPFR_BIN:-target/debug}"

if [ -z "${FLEET_INNER:-}" ]; then
    if [ -z "${TCPFR_BIN:-}" ]; then
        # The same build as scripts/test.sh (a no-op after it; other flags would unify
        # features differently and rebuild DataFusion).
        cargo build --locked --workspace --all-targets --features tcpfr/cluster
    fi
    if [ -z "${FLEET_URL:-}" ]; then
        # No store given: a SeaweedFS of our own for the length of the demo.
        export FLEET_INNER=1
        exec "$BIN/with-seaweed" fleet -- "$0" "$@"
    fi
fi

URL="${FLEET_URL:-s3://fleet/tcpfr}"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_for LOG TEXT PID: until LOG says TEXT (≤ 180 s), or fail with the log.
wait_for() {
    for _ in $(seq 900); do
        grep -qs "$2" "$1" && return 0
        kill -0 "$3" 2>/dev/null || { echo "fleet-demo: $1 ended before saying '$2':" >&2; cat "$1" >&2; exit 1; }
        sleep 0.2
    done
    echo "fleet-demo: $1 did not say '$2' within 180 s:" >&2; cat "$1" >&2; exit 1
}

say "20 hosts' recordings (simulated by the recorder's writer) and the samples, shipped to $URL"
"$BIN/examples/gen-recording" --out "$work/fleet" --hosts 20 --events 400000 --sockets 200 --span 2h
"$BIN/tcpfr" ship "$work"/fleet/* samples/*/recording "$URL"

say "One process: the busiest hosts, and what was fetched from the store"
"$BIN/tcpfr" -v hotspots "$URL" --by host --limit 5

say "A Ballista cluster on loopback: a scheduler and two executors"
port="$(free_port)"
"$BIN/tcpfr-scheduler" --bind-host 127.0.0.1 --external-host 127.0.0.1 --bind-port "$port" >"$work/scheduler.log" 2>&1 &
pids+=($!)
wait_for "$work/scheduler.log" "tcpfr-scheduler listening" "$!"
for i in 1 2; do
    mkdir -p "$work/executor-$i"
    "$BIN/tcpfr-executor" --bind-host 127.0.0.1 --external-host 127.0.0.1 --scheduler-host 127.0.0.1 --scheduler-port "$port" \
        --bind-port "$(free_port)" --bind-grpc-port "$(free_port)" --vcores 2 --work-dir "$work/executor-$i" \
        >"$work/executor-$i.log" 2>&1 &
    pids+=($!)
    wait_for "$work/executor-$i.log" "Executor registration succeed" "$!"
done
CLUSTER="df://127.0.0.1:$port"
echo "scheduler at $CLUSTER"

say "Every question, alone and on the cluster"
status=0
for q in retransmit-rate hotspots handshakes resets rtt timeline top-flows; do
    "$BIN/tcpfr" "$q" "$URL" --format csv >"$work/local.csv"
    "$BIN/tcpfr" --cluster "$CLUSTER" "$q" "$URL" --format csv >"$work/cluster.csv"
    if cmp -s "$work/local.csv" "$work/cluster.csv"; then
        echo "$q: identical ($(wc -l <"$work/local.csv") lines)"
    elif [ "$q" = rtt ] && python3 - "$work/local.csv" "$work/cluster.csv" <<'EOF'
# Percentiles are approximate (t-digest: the last digits depend on the order partial
# results merge in): numbers within 2%, everything else exact.
import sys
a, b = (open(p).read().splitlines() for p in sys.argv[1:3])
def close(x, y):
    try:
        x, y = float(x), float(y)
    except ValueError:
        return x == y
    return abs(x - y) <= 0.02 * max(abs(x), abs(y)) + 1.0
ok = len(a) == len(b) and all(len(l.split(",")) == len(m.split(",")) and all(close(x, y) for x, y in zip(l.split(","), m.split(","))) for l, m in zip(a, b))
sys.exit(0 if ok else 1)
EOF
    then
        echo "$q: identical ($(wc -l <"$work/local.csv") lines; percentiles within 2%)"
    else
        echo "$q: DIFFERS"
        diff "$work/local.csv" "$work/cluster.csv" | head -20 || true
        status=1
    fi
done

say "The fleet-wide question, on the cluster"
"$BIN/tcpfr" --cluster "$CLUSTER" query "$URL" --format csv \
    "SELECT count(DISTINCT host) AS hosts, count(*) AS connections, sum(retrans_segs) AS retransmitted FROM flows"
exit "$status"
