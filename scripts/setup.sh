#!/usr/bin/env bash
# Installs what building and running oomtrace needs on a fresh Debian machine.
# Idempotent: every step checks first and does nothing when already satisfied.
#   - nightly toolchain with rust-src (the eBPF target needs -Z build-std=core)
#   - bpf-linker, built against the nightly's own libLLVM (Debian 12 has no LLVM 22)
#   - tracefs mounted at /sys/kernel/tracing (tracepoint attach needs it)
#   - with --test-deps: the Debian packages the tests use (bpftool for the BTF
#     cross-check, util-linux for unshare and dmesg)
set -euo pipefail

LOG_TAG=setup
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
APT_LOG="$HOME/.cache/oomtrace/apt.log"

BPF_LINKER_VERSION=0.13.0

ensure_nightly() {
    local sysroot
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        log "installing the nightly toolchain"
        rustup toolchain install nightly --profile minimal --component rust-src
    fi
    sysroot=$(rustc +nightly --print sysroot)
    if [ ! -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
        log "adding rust-src to nightly"
        rustup component add rust-src --toolchain nightly
    fi
}

# bpf-linker links against libLLVM; it must be the nightly's own LLVM, so it is
# rebuilt whenever the nightly (and hence its LLVM) changes.
ensure_bpf_linker() {
    local sysroot lib prefix stamp want
    sysroot=$(rustc +nightly --print sysroot)
    lib=$(basename "$(ls "$sysroot"/lib/libLLVM.so.* | head -n1)")
    stamp="$HOME/.cargo/bpf-linker.llvm"
    want="$BPF_LINKER_VERSION $lib"
    if command -v bpf-linker >/dev/null 2>&1 && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
        && bpf-linker --version >/dev/null 2>&1; then
        return
    fi
    local major
    major=$(echo "$lib" | sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/')
    prefix="${OOMTRACE_LLVM_SHIM:-$HOME/.cache/oomtrace/rust-llvm}"
    mkdir -p "$prefix/lib"
    ln -sf "$sysroot/lib/$lib" "$prefix/lib/libLLVM.so"
    ln -sf "$sysroot/lib/$lib" "$prefix/lib/$lib"
    log "building bpf-linker $BPF_LINKER_VERSION against $lib (about a minute)"
    LLVM_PREFIX=$prefix RUSTFLAGS="-C link-arg=-Wl,-rpath,$sysroot/lib" \
        cargo +stable install --force bpf-linker --version "$BPF_LINKER_VERSION" \
        --no-default-features --features "llvm-$major"
    echo "$want" >"$stamp"
}

ensure_tracefs() {
    if [ "$(id -u)" != 0 ]; then
        log "not root: skipping the tracefs mount (oomtrace itself needs root)"
        return
    fi
    if ! mountpoint -q /sys/kernel/tracing; then
        log "mounting tracefs at /sys/kernel/tracing"
        mount -t tracefs tracefs /sys/kernel/tracing
    fi
}

install_debian_packages "$APT_LOG" gcc protobuf-compiler
ensure_nightly
ensure_bpf_linker
ensure_tracefs
if [ "${1:-}" = "--test-deps" ]; then
    install_debian_packages "$APT_LOG" bpftool util-linux coreutils
fi
log "ok: nightly + rust-src, bpf-linker, tracefs"
