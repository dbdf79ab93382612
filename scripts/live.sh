#!/usr/bin/env bash
# Runs `oomtrace live` on this machine, building whatever it needs first.
#   scripts/live.sh [live options]       e.g. scripts/live.sh -o json --count 1
# Installs missing prerequisites (scripts/setup.sh), builds the shipped binary
# (`--profile dist`, as the image and the bench do: see Cargo.toml),
# then runs it as root (through sudo when not root already).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --profile dist --locked -p oomtrace >&2
if [ "$(id -u)" = 0 ]; then
    exec target/dist/oomtrace live "$@"
else
    exec sudo target/dist/oomtrace live "$@"
fi
