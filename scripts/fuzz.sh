#!/usr/bin/env bash
# Fuzzes the capture reader and the decoder (analyzer/wire) with cargo-fuzz:
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# runs each target (default: decode, then decode_frame) for SECONDS (default 30) with
# AddressSanitizer, on a fresh corpus seeded from small cuts of the sample captures in
# pcap, nanosecond pcap and pcapng form. A crash fails the script; libFuzzer leaves the
# input in analyzer/wire/fuzz/artifacts/TARGET/ (add it to the tests as a regression).
#
# Installs cargo-fuzz (pinned) into $TCPFR_TOOLS like bootstrap.sh does for bpf-linker;
# the pinned nightly comes from scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-30}"
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(decode decode_frame)
NIGHTLY="${TCPFR_NIGHTLY:-nightly-2026-05-20}"
TOOLS="${TCPFR_TOOLS:-$HOME/.cache/tcpfr-tools}"
# Outside the work tree, so that a fresh clone (CI) does not rebuild the instrumented
# dependencies every time.
FUZZ_TARGET_DIR="${TCPFR_FUZZ_TARGET_DIR:-$HOME/.cache/tcpfr-fuzz-target}"
CARGO_FUZZ_VERSION=0.13.2
# Never let rustup install or update a toolchain behind our back.
export RUSTUP_AUTO_INSTALL=0

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

[[ "$SECS" =~ ^[0-9]+$ ]] || die "usage: scripts/fuzz.sh [SECONDS] [TARGET...] (got '$SECS')"
rustup run "$NIGHTLY" rustc -vV >/dev/null 2>&1 \
    || die "$NIGHTLY is not installed: run scripts/bootstrap.sh first"

# --- cargo-fuzz, pinned, in $TOOLS -------------------------------------------
if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
    cargo +stable install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH"

# --- seed corpus: the first few KB of each sample, in several formats ----------
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seeds="$work/seeds"
mkdir -p "$seeds"
for f in samples/*/capture.pcap; do
    [ -f "$f" ] || continue
    name="$(basename "$(dirname "$f")")"
    head -c 4096 "$f" > "$seeds/$name.pcap"
    # editcap (from tshark's packages) rewrites the cut file, dropping its torn last record.
    if command -v editcap >/dev/null; then
        editcap -F pcapng "$seeds/$name.pcap" "$seeds/$name.pcapng" 2>/dev/null || true
        editcap -F nsecpcap "$seeds/$name.pcap" "$seeds/$name.ns.pcap" 2>/dev/null || true
    fi
done
[ -n "$(ls -A "$seeds")" ] || die "no seeds: samples/*/capture.pcap are missing"

# --- run -------------------------------------------------------------------------
cd analyzer/wire/fuzz
# The fuzz project's own committed Cargo.lock must be used as is (cargo fuzz has no
# --locked; this fails if the lock would change).
cargo "+$NIGHTLY" fetch --locked
for target in "${TARGETS[@]}"; do
    corpus="$work/corpus-$target"
    mkdir -p "$corpus"
    cp "$seeds"/* "$corpus"/
    say "$target: ${SECS}s with AddressSanitizer ($NIGHTLY)"
    # -rss_limit_mb: the reader's memory must stay bounded on any input.
    cargo "+$NIGHTLY" fuzz run "$target" "$corpus" --target-dir "$FUZZ_TARGET_DIR" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
say "ok: ${TARGETS[*]}, ${SECS}s each, no crash"
