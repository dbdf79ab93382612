#!/bin/sh
# Runs inside each VM as root: `oomtrace check`, then every test binary.
# Markers (== ...) let the host split the output per step. The test binaries
# run on the testkit's harness: a test whose needs the guest lacks (containerd,
# Prometheus) prints `test <name> ... ignored (<reason>)` (report.rs reads it;
# the serial port is a terminal, hence no colours).
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
# The scratch disk (an ext4 image on an NVMe drive, xtask/src/vm/qemu.rs): the
# tests that need page cache on a real block device write there (testkit
# workload::disk_dir); if it cannot be mounted they skip, saying why.
disk=/dev/nvme0n1
waited=0
while [ ! -b $disk ] && [ $waited -lt 10 ]; do sleep 1; waited=$((waited + 1)); done
mkdir -p /mnt/disk
if [ ! -b $disk ]; then
    export OOMTRACE_TEST_DISK_ERROR="no block device $disk after ${waited} s"
elif ! error=$(mount -t ext4 $disk /mnt/disk 2>&1); then
    export OOMTRACE_TEST_DISK_ERROR="mount -t ext4 $disk /mnt/disk: $error"
else
    export OOMTRACE_TEST_DISK_DIR=/mnt/disk
fi
echo "== disk ${OOMTRACE_TEST_DISK_DIR:-FAILED: $OOMTRACE_TEST_DISK_ERROR}"
echo "== uname $(uname -r)"
# The kernel's own facts, from which the host decides which attach methods
# must have been exercised here (report.rs): BTF, the kprobe PMU
# (CONFIG_KPROBES), the classic tracepoint, and whether ftrace can patch
# oom_kill_process (where fentry's trampoline goes).
has() { [ -e "$1" ] && echo 1 || echo 0; }
ftrace=0
grep -qx 'oom_kill_process' /sys/kernel/tracing/available_filter_functions 2>/dev/null && ftrace=1
echo "== facts btf=$(has /sys/kernel/btf/vmlinux) kprobe_pmu=$(has /sys/bus/event_source/devices/kprobe/type)" \
    "mark_victim_tracepoint=$(has /sys/kernel/tracing/events/oom/mark_victim) ftrace_oom_kill_process=$ftrace" \
    "arch=$(uname -m)"
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
