# Shared by scripts/setup.sh, scripts/runtime.sh and scripts/observability.sh:
# logging, the state lock, PID files of the processes they start, waiting for
# readiness, stopping, and installing missing Debian packages. Source it after
# setting LOG_TAG (the prefix of every line) and, optionally, LOG_FILE (a file
# every line is appended to as well, once its directory exists).
# shellcheck shell=bash

log() {
    local line
    line="[${LOG_TAG:-oomtrace} $(date +%T)] $*"
    echo "$line" >&2
    if [[ -n ${LOG_FILE:-} && -d $(dirname "$LOG_FILE") ]]; then echo "$line" >>"$LOG_FILE"; fi
}

# The PATH a long-lived service started here gets (containerd execs runc and
# its shims through it): the system's, never the caller's, which may be a
# scratch directory that is gone once the caller exits (scripts/fresh-path.sh).
SERVICE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
    log "error: $*"
    exit 1
}

# die_showing LOGFILE MESSAGE: dies with MESSAGE after the last lines of
# LOGFILE, so that a failure in CI shows its cause, not only where it is kept.
die_showing() {
    local logfile=$1
    shift
    log "error: $*; last lines of $logfile:"
    tail -n 30 "$logfile" >&2 2>/dev/null || true
    exit 1
}

need_root() {
    [[ $(id -u) == 0 ]] || die "run as root ($*)"
}

# lock DIR: one state-changing command at a time (fd 9, released at exit;
# processes started afterwards must be given `9>&-`).
lock() {
    local dir=$1
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -w 300 9 || die "another ${LOG_TAG:-oomtrace} command holds $dir/.lock (waited 300 s)"
}

# pid_if_ours PIDFILE MARK: prints the PID in PIDFILE if that process is alive
# and its command line contains MARK (a recycled PID, or a zombie, never counts).
pid_if_ours() {
    local pidfile=$1 mark=$2 pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$mark" || return 1
    echo "$pid"
}

# wait_for WHAT SECONDS LOGFILE ALIVE READY: polls READY every 0.1 s for up to
# SECONDS, giving up at once when ALIVE says the process is gone; on failure
# shows the last lines of LOGFILE.
wait_for() {
    local what=$1 seconds=$2 logfile=$3 alive=$4 ready=$5
    local deadline=$((SECONDS + seconds)) why
    until $ready; do
        if ! $alive >/dev/null; then
            why="exited"
        elif ((SECONDS >= deadline)); then
            why="not ready after ${seconds}s"
        else
            sleep 0.1
            continue
        fi
        log "$what: $why; last lines of $logfile:"
        tail -n 20 "$logfile" >&2 || true
        return 1
    done
}

# gone_within TENTHS CHECK...: true once CHECK fails (the process is no longer
# ours), polling every 0.1 s; false if it still holds after TENTHS polls.
gone_within() {
    local tenths=$1
    shift
    for _ in $(seq "$tenths"); do
        "$@" >/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# stop_pid NAME PID CHECK...: SIGTERM, wait up to 10 s while CHECK says it is
# still ours, then SIGKILL and wait up to 5 s more.
stop_pid() {
    local name=$1 pid=$2
    shift 2
    kill -TERM "$pid" 2>/dev/null || true
    gone_within 100 "$@" && return 0
    log "$name (pid $pid) ignored SIGTERM, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    gone_within 50 "$@" || die "$name (pid $pid) does not exit"
}

# install_debian_packages APT_LOG PACKAGE...: installs those not installed yet
# (no recommends: they would pull in services nobody asked for). Not root:
# says which are missing and fails.
install_debian_packages() {
    local apt_log=$1 missing=() pkg
    shift
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing Debian packages ${missing[*]}; install them as root"
    mkdir -p "$(dirname "$apt_log")"
    log "installing ${missing[*]} (log: $apt_log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >>"$apt_log" 2>&1 || die_showing "$apt_log" "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1 ||
        die_showing "$apt_log" "apt-get install ${missing[*]} failed"
}
