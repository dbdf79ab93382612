#!/usr/bin/env bash
# The test command: installs what the tests need, starts the real components
# they talk to, then runs every test. Run it as root: the integration tests
# load eBPF programs, create memory cgroups and trigger real OOM kills inside
# them (never outside a limit), and run containers through containerd's CRI.
#   - scripts/runtime.sh up        containerd + CRI with locally built images
#   - scripts/observability.sh up  Prometheus and an OTLP receiver on 127.0.0.1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test-deps
if [ "$(id -u)" = 0 ]; then
    scripts/runtime.sh up
    scripts/observability.sh up
    # With the components up, a test that cannot reach them fails instead of skipping.
    export OOMTRACE_TEST_REQUIRE_CRI=1 OOMTRACE_TEST_REQUIRE_OBSERVABILITY=1
    # kubectl comes with machines of this kind (no reachable repository has
    # it): the advice's commands are checked with it, so it must be there.
    export OOMTRACE_TEST_REQUIRE_KUBECTL=1
fi
cargo test --locked "$@"
