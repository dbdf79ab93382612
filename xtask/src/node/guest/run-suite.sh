#!/bin/sh
# The node's test service (oomtrace-node-test.service): the node's facts, the
# images imported into containerd's k8s.io namespace (no registry is
# reachable), then the suite. Its output goes to the second serial port, its
# exit code to the third (VM_EXIT=<code>); then the node powers off. Lines
# starting with `== ` are read by xtask/src/node/report.rs.
SOCKET=/run/containerd/containerd.sock

# The name containerd stores for REF, as CRI normalises a pod's image
# (oomtrace:0.1.0 -> docker.io/library/oomtrace:0.1.0).
normalised() {
    case $1 in
    */*)
        case ${1%%/*} in
        *.* | *:* | localhost) echo "$1" ;;
        *) echo "docker.io/$1" ;;
        esac
        ;;
    *) echo "docker.io/library/$1" ;;
    esac
}

images() {
    # <ref> <file> per line, written by xtask next to the archives.
    while read -r ref file; do
        ctr -n k8s.io images import "/node-test/images/$file" >/dev/null || {
            echo "== import-failed $file"
            return 1
        }
        if ! ctr -n k8s.io images ls -q | grep -qxF "$(normalised "$ref")"; then
            echo "== import-failed $file did not provide $ref (has: $(ctr -n k8s.io images ls -q | tr '\n' ' '))"
            return 1
        fi
        echo "== imported $ref"
        # The archive's memory is better left to the scenarios.
        rm -f "/node-test/images/$file"
    done </node-test/images/refs
}

run_node() {
    echo "== uname $(uname -r)"
    echo "== cgroup-fs $(stat -fc %T /sys/fs/cgroup)"
    i=0
    until [ -S $SOCKET ] && ctr version >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then
            echo "== containerd-missing no answer on $SOCKET after 60 s"
            return 1
        fi
        sleep 0.1
    done
    echo "== containerd $(systemctl is-active containerd.service)"
    # Microseconds since the kernel started.
    echo "== systemd-start-us $(systemctl show -P UserspaceTimestampMonotonic)"
    echo "== containerd-active-us $(systemctl show -P ActiveEnterTimestampMonotonic containerd.service)"
    echo "== containerd-version $(containerd --version | cut -d' ' -f3)"
    echo "== runc-version $(runc --version | head -n 1 | cut -d' ' -f3)"
    images || return 1
    echo "== memory $(grep -E '^(MemTotal|MemAvailable):' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
    started=$(cut -d' ' -f1 /proc/uptime)
    echo "== suite"
    /node-test/node --test-threads=1 --color never 2>&1
    rc=$?
    echo "== suite-seconds $(awk -v s="$started" '{ print $1 - s }' /proc/uptime)"
    echo "== suite-rc $rc"
    return $rc
}

# What containerd and the units said, for a failed run.
journal() {
    echo "== journal (containerd, last 60 lines)"
    journalctl --no-pager -o short-monotonic -u containerd.service | tail -n 60
    echo "== failed units"
    systemctl --failed --no-pager --no-legend
}

stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
run_node >/dev/ttyS1 2>&1 </dev/null
rc=$?
[ $rc -eq 0 ] || journal >/dev/ttyS1 2>&1
echo "VM_EXIT=$rc" >/dev/ttyS2
sync
# -ff: at once, without waiting for processes a scenario left behind (everything
# is in memory: nothing to unmount or flush).
systemctl poweroff -ff
