#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 60) each; exits non-zero when
# a target crashes (panics). Installs cargo-fuzz with the nightly toolchain (scripts/setup.sh
# installs that nightly) when it is missing. Usage: scripts/fuzz.sh [TARGET...]
set -euo pipefail

LOG_TAG=fuzz
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}

rustup run nightly rustc --version >/dev/null 2>&1 || die "no nightly toolchain: run scripts/setup.sh first"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (a few minutes, once)"
    cargo +nightly install cargo-fuzz --locked
fi

cd "$root/fuzz"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || die "no fuzz targets in $root/fuzz"

# Seed each target's corpus with the real logs (oomtrace-klog/fixtures and the sources' testdata) the first time.
status=0
for target in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$target"
    if [ ! -d "$corpus" ]; then
        mkdir -p "$corpus"
        for fixture in "$root"/oomtrace-klog/fixtures/* "$root"/oomtrace-klog/src/source/testdata/*; do
            [ -f "$fixture" ] && cp "$fixture" "$corpus/"
        done
    fi
    log "fuzzing $target for ${seconds}s"
    rc=0
    cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -max_len=8192 \
        >"$root/fuzz/$target.log" 2>&1 || rc=$?
    grep -E '^(Done [0-9]+ runs|==[0-9]+==|thread .* panicked|SUMMARY)' "$root/fuzz/$target.log" >&2 || true
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$root/fuzz/$target.log" >&2
        log "error: $target failed (exit $rc); a crashing input is under fuzz/artifacts/$target/ (log: fuzz/$target.log)"
        status=1
    else
        log "$target: no crash in ${seconds}s"
    fi
done
exit $status
