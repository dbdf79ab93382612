#!/bin/sh
# Runs inside each VM as root: `oomtrace check`, then every test binary.
# Markers (== ...) let the host split the output per step. The test binaries
# run on the testkit's harness: a test whose needs the guest lacks (containerd,
# Prometheus) prints `test <name> ... ignored (<reason>)` (report.rs reads it;
# the serial port is a terminal, hence no colours).
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
echo "== uname $(uname -r)"
echo "== check"
"$OOMTRACE_BIN" check
echo "== check-rc $?"
failed=0
for test in /tests/*; do
    name=$(basename "$test")
    echo "== test $name"
    OOMTRACE_TEST_GLOBAL_OOM=1 "$test" --test-threads=1 --show-output --color never 2>&1
    rc=$?
    echo "== test-rc $name $rc"
    [ $rc -eq 0 ] || failed=1
done
exit $failed
