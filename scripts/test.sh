#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
# Run it as root: the integration tests load eBPF programs, create memory
# cgroups and trigger real OOM kills inside them (never outside a limit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test-deps
cargo test --locked "$@"
