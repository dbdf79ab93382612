#!/usr/bin/env bash
# A real, local container runtime for oomtrace's integration tests: containerd
# with its CRI plugin (what kubelet talks to) and runc, without any image
# registry, network plugin or kubelet.
#
#   scripts/runtime.sh up       install what is missing, build the test images,
#                               start containerd, print its CRI socket
#   scripts/runtime.sh down     remove every pod/container it ran, stop
#                               containerd, remove the cgroups it made
#   scripts/runtime.sh status   exit 0 iff containerd answers CRI on the socket
#
# Everything lives under /run/oomtrace-test (OOMTRACE_TEST_RUNTIME_DIR):
#   containerd/            config, root, state, runc root, PID file and
#                          containerd.sock (the CRI endpoint the tests use)
#   images/                cached OCI tarballs and the key of their inputs
#   logs/                  containerd.log, runtime.log, apt.log, pods/ (pod logs)
#
# Images, built from tests-runtime/ (busybox-static, gcc -static):
#   localhost/oomtrace-test:latest  busybox applets + /bin/hog (hog MIB [DELAY])
#   localhost/pause:oomtrace        /pause, the pod sandbox image
#
# containerd runs with the cgroupfs driver (SystemdCgroup = false), so a pod's
# cgroup_parent is a plain path such as /kubepods/burstable/pod<uid>, and with
# restrict_oom_score_adj (no CAP_SYS_RESOURCE needed). Pods must use the host
# network: no CNI is configured. Run as root.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INPUTS="$REPO/tests-runtime"
RT=${OOMTRACE_TEST_RUNTIME_DIR:-/run/oomtrace-test}
C="$RT/containerd"
SOCK="$C/containerd.sock"
PIDFILE="$C/containerd.pid"
IMAGES="$RT/images"
LOGS="$RT/logs"
NS=k8s.io
TEST_IMAGE=localhost/oomtrace-test:latest
PAUSE_IMAGE=localhost/pause:oomtrace
PACKAGES=(containerd runc busybox-static gcc libc6-dev)

log() {
    local line
    line="[runtime $(date +%T)] $*"
    echo "$line" >&2
    if [[ -d $LOGS ]]; then echo "$line" >>"$LOGS/runtime.log"; fi
}

die() {
    log "error: $*"
    exit 1
}

ctr_() { ctr --address "$SOCK" --namespace "$NS" "$@"; }

containerd_answers() { ctr_ version >/dev/null 2>&1; }

# One `up` or `down` at a time.
lock() {
    mkdir -p "$RT"
    exec 9>"$RT/.lock"
    flock 9
}

# The containerd we started, if it is still alive (checked by its command line,
# so a recycled PID is never mistaken for it).
our_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config $C/config.toml" || return 1
    echo "$pid"
}

# RuntimeService/Version over the socket: a raw gRPC call through curl's HTTP/2,
# so no crictl is needed. Succeeds only once the CRI plugin serves requests.
cri_answers() {
    [[ -S $SOCK ]] || return 1
    # length-prefixed VersionRequest{version: "v1"}
    printf '\x00\x00\x00\x00\x04\x0a\x02v1' |
        curl --silent --max-time 3 --http2-prior-knowledge --unix-socket "$SOCK" \
            -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
            http://localhost/runtime.v1.RuntimeService/Version 2>/dev/null |
        grep -qa containerd
}

wait_until() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            log "$what: not ready after ${seconds}s; last lines of $LOGS/containerd.log:"
            tail -n 20 "$LOGS/containerd.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    command -v curl >/dev/null || missing+=(curl)
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]} (log: $LOGS/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >>"$LOGS/apt.log" 2>&1 || die "apt-get update failed, see $LOGS/apt.log"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
        die "apt-get install failed, see $LOGS/apt.log"
}

# Builds both image tarballs unless the cached ones come from the same inputs.
build_images() {
    local key work
    key=$(cat "$INPUTS/hog.c" "$INPUTS/pause.c" "$INPUTS/mk-oci-image.sh" /bin/busybox |
        sha256sum | cut -d' ' -f1)
    if [[ -f $IMAGES/key && $(<"$IMAGES/key") == "$key" && -f $IMAGES/oomtrace-test.tar && -f $IMAGES/pause.tar ]]; then
        log "images: cached in $IMAGES"
        return 0
    fi
    log "images: building"
    mkdir -p "$IMAGES"
    rm -rf "$IMAGES/key" "$IMAGES"/build.*
    work=$(mktemp -d "$IMAGES/build.XXXXXX")

    local rootfs="$work/test" applet
    mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root}
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
    done
    gcc -O2 -Wall -Wextra -static -o "$rootfs/bin/hog" "$INPUTS/hog.c"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    "$INPUTS/mk-oci-image.sh" "$rootfs" "$TEST_IMAGE" "$IMAGES/oomtrace-test.tar" null '["/bin/sh"]' >&2

    mkdir -p "$work/pause"
    gcc -O2 -Wall -Wextra -static -o "$work/pause/pause" "$INPUTS/pause.c"
    "$INPUTS/mk-oci-image.sh" "$work/pause" "$PAUSE_IMAGE" "$IMAGES/pause.tar" '["/pause"]' >&2

    rm -rf "$work"
    echo "$key" >"$IMAGES/key"
}

write_config() {
    mkdir -p "$C"/{root,state,runc,opt} "$RT"/cni/{bin,conf}
    cat >"$C/config.toml" <<EOF
# Generated by scripts/runtime.sh: a private containerd for oomtrace's tests.
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj (the sandbox asks
  # for -998): clamp requested values to containerd's own instead of failing.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    # Empty: pods use the host network.
    bin_dir = "$RT/cni/bin"
    conf_dir = "$RT/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$C/runc"
EOF
}

start_containerd() {
    local pid
    if pid=$(our_pid); then
        log "containerd: already running (pid $pid)"
    else
        rm -f "$SOCK" "$SOCK.ttrpc" "$PIDFILE"
        # Its own session: it outlives this script and the caller's terminal.
        # Without job control the background job is no group leader, so setsid
        # does not fork and $! is containerd itself. It must not inherit the lock.
        setsid containerd --config "$C/config.toml" </dev/null >>"$LOGS/containerd.log" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PIDFILE"
        log "containerd: started (pid $pid, log $LOGS/containerd.log)"
    fi
    wait_until "containerd" 30 containerd_answers || die "containerd does not answer on $SOCK"
    our_pid >/dev/null || die "containerd (pid $pid) exited; see $LOGS/containerd.log"
}

# Imports the images unless this containerd already has these very tarballs.
import_images() {
    local key have
    key=$(<"$IMAGES/key")
    have=$(ctr_ images ls -q 2>/dev/null || true)
    if [[ -f $C/imported.key && $(<"$C/imported.key") == "$key" ]] &&
        grep -qxF "$TEST_IMAGE" <<<"$have" && grep -qxF "$PAUSE_IMAGE" <<<"$have"; then
        log "images: already imported"
        return 0
    fi
    ctr_ images import "$IMAGES/oomtrace-test.tar" >/dev/null
    ctr_ images import "$IMAGES/pause.tar" >/dev/null
    echo "$key" >"$C/imported.key"
    log "images: imported $TEST_IMAGE and $PAUSE_IMAGE into namespace $NS"
}

cmd_up() {
    [[ $(id -u) == 0 ]] || die "run as root (containerd, runc and cgroups need it)"
    lock
    mkdir -p "$LOGS/pods"
    install_packages
    build_images
    write_config
    start_containerd
    import_images
    wait_until "CRI" 30 cri_answers || die "the CRI plugin does not answer on $SOCK"
    log "up: CRI answers on $SOCK"
    if [[ $SOCK != /run/oomtrace-test/containerd/containerd.sock ]]; then
        log "tests need: export OOMTRACE_TEST_CRI_SOCKET=$SOCK"
    fi
    echo "$SOCK"
}

# Container cgroups (cgroupsPath of every container containerd knows), before
# they are deleted: their parents are the pod cgroups to remove afterwards.
container_cgroups() {
    local id
    for id in $(ctr_ containers ls -q 2>/dev/null); do
        ctr_ containers info "$id" 2>/dev/null | grep -o '"cgroupsPath": *"[^"]*"' | sed 's/.*: *"\(.*\)"/\1/'
    done
}

remove_cgroups() {
    local paths=("$@") ctl p dir
    # The unified root (cgroup v2) and every v1 controller hierarchy.
    for ctl in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [[ -d $ctl/kubepods ]] || continue
        # Pod and container cgroups our containers lived in.
        for p in "${paths[@]}"; do
            [[ $p == /kubepods/* ]] || continue
            rmdir "$ctl$p" 2>/dev/null || true
            rmdir "$ctl$(dirname "$p")" 2>/dev/null || true
        done
        # Pod cgroups left by earlier runs, then the QoS levels and the root,
        # each only if empty (rmdir refuses otherwise).
        for dir in "$ctl"/kubepods/pod* "$ctl"/kubepods/{burstable,besteffort}/pod*; do
            [[ -d $dir ]] && rmdir "$dir" 2>/dev/null || true
        done
        for dir in "$ctl"/kubepods/{burstable,besteffort} "$ctl"/kubepods; do
            [[ -d $dir ]] && rmdir "$dir" 2>/dev/null || true
        done
        if [[ -d $ctl/kubepods ]]; then
            log "down: $ctl/kubepods is still in use, left in place"
        fi
    done
}

cmd_down() {
    [[ $(id -u) == 0 ]] || die "run as root"
    lock
    mkdir -p "$LOGS"
    local pid cgroups=() id n=0 i cleaned=false
    if pid=$(our_pid) && containerd_answers; then
        cleaned=true
        mapfile -t cgroups < <(container_cgroups)
        # Every task (pod sandboxes and their containers): kill and delete.
        for id in $(ctr_ tasks ls -q 2>/dev/null); do
            ctr_ tasks kill --signal SIGKILL --all "$id" >/dev/null 2>&1 || true
        done
        for id in $(ctr_ tasks ls -q 2>/dev/null); do
            for i in $(seq 50); do
                ctr_ tasks ls 2>/dev/null | awk -v id="$id" '$1 == id && $3 == "RUNNING" { r = 1 } END { exit !r }' || break
                sleep 0.1
            done
            ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
        done
        for id in $(ctr_ containers ls -q 2>/dev/null); do
            ctr_ containers delete "$id" >/dev/null 2>&1 && n=$((n + 1)) || true
        done
        log "down: removed $n containers and pod sandboxes"
    fi

    # Whatever outlived containerd (e.g. after a crash): runc containers under
    # our runc root, and shims serving our socket (found by their command line).
    if command -v runc >/dev/null && [[ -d $C/runc ]]; then
        local root
        for root in "$C"/runc/*/; do
            for id in $(runc --root "$root" list -q 2>/dev/null); do
                runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
            done
        done
    fi

    if pid=$(our_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        # (our_pid, not kill -0: a zombie waiting for its reaper counts as gone)
        for i in $(seq 100); do
            our_pid >/dev/null || break
            sleep 0.1
        done
        if our_pid >/dev/null; then
            log "down: containerd (pid $pid) ignored SIGTERM, killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "down: stopped containerd (pid $pid)"
    else
        log "down: containerd was not running"
    fi
    rm -f "$PIDFILE" "$SOCK" "$SOCK.ttrpc"

    local proc shim
    for proc in /proc/[0-9]*; do
        shim=${proc#/proc/}
        if tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | grep -F -- " -address $SOCK " | grep -q containerd-shim; then
            log "down: killing leftover shim $shim"
            kill -KILL "$shim" 2>/dev/null || true
        fi
    done

    # Mounts the sandboxes left behind (shm, rootfs), deepest first.
    awk -v rt="$RT/" 'index($2, rt) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done

    remove_cgroups "${cgroups[@]}"

    # containerd was gone (crashed, killed) while its store still lists pods:
    # start over from an empty store (`up` re-imports the images).
    if ! $cleaned && [[ -n $(ls -A "$C/root/io.containerd.grpc.v1.cri/sandboxes" 2>/dev/null) ]]; then
        log "down: containerd was not running but pods were left: wiping its store"
        rm -rf "$C/root" "$C/imported.key"
    fi
    # Runtime state only: the image store and the image cache stay for a fast
    # next `up`.
    rm -rf "$C/state" "$C/root/io.containerd.grpc.v1.cri/sandboxes" \
        "$C/root/io.containerd.grpc.v1.cri/containers" "$LOGS/pods"
    log "down: done"
}

cmd_status() {
    local pid
    if cri_answers; then
        pid=$(our_pid || echo "?")
        echo "containerd (pid $pid) answers CRI on $SOCK"
        if command -v ctr >/dev/null; then
            echo "pod sandboxes: $(ctr_ containers ls -q 'labels."io.cri-containerd.kind"==sandbox' 2>/dev/null | wc -l)," \
                "containers: $(ctr_ containers ls -q 'labels."io.cri-containerd.kind"==container' 2>/dev/null | wc -l)"
        fi
        return 0
    fi
    if pid=$(our_pid); then
        echo "containerd (pid $pid) is running but does not answer CRI on $SOCK (see $LOGS/containerd.log)"
    else
        echo "containerd is not running on $SOCK: start it with scripts/runtime.sh up"
    fi
    return 1
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
