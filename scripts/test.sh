#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine too: installs what is missing
# (scripts/bootstrap.sh), builds, and runs the tests. Needs root: the recorder's tests
# load eBPF programs and build network namespaces in the real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the tests need root (eBPF, network namespaces); run: sudo scripts/test.sh" >&2
    exit 1
fi
scripts/bootstrap.sh
export PATH="${TCPFR_TOOLS:-$HOME/.cache/tcpfr-tools}/bin:$PATH"

# Layering: no two modules of a crate import each other in a circle (seconds).
python3 scripts/modcycles.py */src

# Build first, so a compile error is not mistaken for a test failure.
# With the analyzer's `cluster` feature: the cluster tests run `tcpfr --cluster` (the
# workspace builds Ballista for tcpfr-cluster anyway; the feature adds only its client).
cargo build --workspace --locked --all-targets --features tcpfr/cluster
cargo test --workspace --locked --features tcpfr/cluster -- --test-threads=2 "$@"

# A short fuzz run of the capture reader and the decoder (analyzer/wire/fuzz, with the
# pinned nightly and AddressSanitizer; installs cargo-fuzz on first use).
scripts/fuzz.sh 30
