#!/usr/bin/env bash
# The real observability backends oomtrace's integration tests export to, run
# locally without any image registry:
#
#   Prometheus (Debian's package) on 127.0.0.1:$PROM_PORT (19090), scraping
#     every 1 s job "oomtrace": the targets listed in targets.json (file_sd,
#     re-read every 1 s, so a test points it at a daemon on any port without
#     restarting Prometheus). It loads the rule files in rules/ (a test copies
#     deploy/observability/prometheus/oomtrace-rules.yaml there and POSTs
#     /-/reload; evaluated every 1 s), so alerts can be read from its
#     /api/v1/alerts.
#   An OTLP receiver (tests-runtime/otlp_sink.py: the official
#     opentelemetry-proto stubs + grpcio, from PyPI, in a venv) on gRPC
#     127.0.0.1:$OTLP_GRPC_PORT (14317) and HTTP 127.0.0.1:$OTLP_HTTP_PORT
#     (14318), appending every export request as one JSON line to
#     otlp-received.jsonl.
#
#   scripts/observability.sh up          install what is missing, start both
#                                        (a running one is left as it is)
#   scripts/observability.sh down        stop both, drop Prometheus' data
#   scripts/observability.sh status      exit 0 iff both answer
#   scripts/observability.sh otlp-stop   stop only the OTLP receiver (its
#                                        ports then refuse connections: a
#                                        collector outage)
#   scripts/observability.sh otlp-start  start it again (same ports, same file)
#   scripts/observability.sh target [HOST:PORT...]
#                                        set Prometheus' scrape targets
#                                        (none: scrape nothing)
#
# Everything lives under /run/oomtrace-test/obs (OOMTRACE_TEST_OBS_DIR):
#   prometheus.yml, targets.json, rules/ (*.yaml rule files), prom-data/
#                           (TSDB), prometheus.pid
#   venv/                   grpcio + opentelemetry-proto, and rotel (a real
#                           OTLP collector, Rust, run by the tests that put
#                           one between the daemon and a receiver; kept
#                           across `down`)
#   otlp-received.jsonl     {"signal","transport","encoding","received_unix_nano",
#                           "request"} per line; append-only, kept across
#                           `down` (tests read from an offset they noted)
#   otlp-sink.pid
#   env                     the endpoints, for `source`
#   logs/                   prometheus.log, otlp-sink.log, observability.log,
#                           apt.log, pip.log
# Run as root.
set -euo pipefail

# (realpath: the script may be reached through a symlink)
REPO=$(dirname "$(dirname "$(realpath "${BASH_SOURCE[0]}")")")
SINK_PY="$REPO/tests-runtime/otlp_sink.py"
OBS=${OOMTRACE_TEST_OBS_DIR:-/run/oomtrace-test/obs}
LOGS="$OBS/logs"
VENV="$OBS/venv"
PROM_PORT=${PROM_PORT:-19090}
OTLP_GRPC_PORT=${OTLP_GRPC_PORT:-14317}
OTLP_HTTP_PORT=${OTLP_HTTP_PORT:-14318}
PROM_CONFIG="$OBS/prometheus.yml"
PROM_DATA="$OBS/prom-data"
PROM_PIDFILE="$OBS/prometheus.pid"
TARGETS="$OBS/targets.json"
RULES="$OBS/rules"
RECEIVED="$OBS/otlp-received.jsonl"
SINK_PIDFILE="$OBS/otlp-sink.pid"
PROM_URL="http://127.0.0.1:$PROM_PORT"
SINK_URL="http://127.0.0.1:$OTLP_HTTP_PORT"
PACKAGES=(prometheus curl)
PIP_PACKAGES=(grpcio opentelemetry-proto)
# A real OpenTelemetry collector for the collector test (oomtrace/tests/dashboard.rs):
# rotel, a Rust collector shipped as a Python wheel (cp311, manylinux x86_64).
ROTEL_PACKAGE=rotel==0.0.1a15
READY_SECONDS=${OBS_READY_SECONDS:-60}

LOG_TAG=observability
LOG_FILE="$LOGS/observability.log"
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"

prom_pid() { pid_if_ours "$PROM_PIDFILE" "--config.file=$PROM_CONFIG"; }
sink_pid() { pid_if_ours "$SINK_PIDFILE" "--out $RECEIVED"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
prom_ready() { curl -sf --max-time 2 "$PROM_URL/-/ready" >/dev/null 2>&1; }
sink_ready() { curl -sf --max-time 2 "$SINK_URL/healthz" >/dev/null 2>&1 && port_open "$OTLP_GRPC_PORT"; }

# Dies when PORT is taken by something that is not ours.
port_free_or_die() {
    local port=$1 what=$2
    if port_open "$port"; then
        die "port 127.0.0.1:$port ($what) is already in use by another process: $(ss -ltnpH "sport = :$port" 2>/dev/null | head -n1)"
    fi
}

install_packages() {
    local packages=("${PACKAGES[@]}") python
    python=$(venv_python)
    if [[ -z $python ]]; then
        packages+=(python3 python3-venv)
    elif [[ $python == /usr/bin/python3 ]] && ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
        packages+=(python3-venv)
    fi
    # The prometheus package may start its own Prometheus on :9090 where an
    # init system runs; that one is not ours and does not matter here.
    install_debian_packages "$LOGS/apt.log" "${packages[@]}"
}

# The interpreter the venv is made from: Debian's when present (stable
# across machines), else whatever python3 is on PATH.
venv_python() {
    if [[ -x /usr/bin/python3 ]]; then
        echo /usr/bin/python3
    else
        command -v python3 || true
    fi
}

venv_works() {
    "$VENV/bin/python" -c 'import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc' >/dev/null 2>&1
}

ensure_venv() {
    venv_works && return 0
    log "venv: installing ${PIP_PACKAGES[*]} from PyPI into $VENV (log: $LOGS/pip.log)"
    "$(venv_python)" -m venv --clear "$VENV" >>"$LOGS/pip.log" 2>&1 || die "cannot create $VENV, see $LOGS/pip.log"
    "$VENV/bin/pip" install --disable-pip-version-check -q "${PIP_PACKAGES[@]}" >>"$LOGS/pip.log" 2>&1 ||
        die "pip install ${PIP_PACKAGES[*]} failed, see $LOGS/pip.log"
    venv_works || die "the venv in $VENV still cannot import grpc and opentelemetry.proto"
}

# rotel (PyPI: the rotel-agent binary in a wheel), added to the venv without
# recreating it: a running sink keeps its interpreter and modules.
ensure_rotel() {
    "$VENV/bin/python" -c 'import rotel' >/dev/null 2>&1 && return 0
    log "venv: installing $ROTEL_PACKAGE from PyPI into $VENV (log: $LOGS/pip.log)"
    "$VENV/bin/pip" install --disable-pip-version-check -q "$ROTEL_PACKAGE" >>"$LOGS/pip.log" 2>&1 ||
        die "pip install $ROTEL_PACKAGE failed, see $LOGS/pip.log (the collector tests need it)"
}

# targets.json in Prometheus' file_sd format, replaced atomically.
write_targets() {
    local tmp list="" t
    for t in "$@"; do
        [[ $t =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "not a HOST:PORT: $t"
        list+="${list:+, }\"$t\""
    done
    tmp=$(mktemp "$TARGETS.XXXXXX")
    if [[ -n $list ]]; then
        printf '[{"targets": [%s], "labels": {}}]\n' "$list" >"$tmp"
    else
        echo '[]' >"$tmp"
    fi
    chmod 644 "$tmp"
    mv -f "$tmp" "$TARGETS"
}

write_prom_config() {
    local tmp
    tmp=$(mktemp "$PROM_CONFIG.XXXXXX")
    cat >"$tmp" <<EOF
# Generated by scripts/observability.sh
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - '$RULES/*.yaml'
scrape_configs:
  - job_name: oomtrace
    metrics_path: /metrics
    file_sd_configs:
      - files: ['$TARGETS']
        refresh_interval: 1s
EOF
    chmod 644 "$tmp"
    if [[ -f $PROM_CONFIG ]] && cmp -s "$tmp" "$PROM_CONFIG"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$PROM_CONFIG"
    return 0
}

start_prometheus() {
    local pid changed=false
    [[ -f $TARGETS ]] || write_targets
    mkdir -p "$RULES"
    write_prom_config && changed=true
    if pid=$(prom_pid); then
        if $changed; then
            log "prometheus: configuration changed, reloading (pid $pid)"
            curl -sf --max-time 5 -X POST "$PROM_URL/-/reload" >/dev/null || die "prometheus did not reload $PROM_CONFIG"
        else
            log "prometheus: already running (pid $pid)"
        fi
    else
        port_free_or_die "$PROM_PORT" prometheus
        mkdir -p "$PROM_DATA"
        # Its own session: it outlives this script; it must not inherit the lock.
        PATH=$SERVICE_PATH setsid prometheus \
            --config.file="$PROM_CONFIG" \
            --storage.tsdb.path="$PROM_DATA" \
            --storage.tsdb.retention.time=6h \
            --web.listen-address="127.0.0.1:$PROM_PORT" \
            --web.enable-lifecycle \
            </dev/null >>"$LOGS/prometheus.log" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PROM_PIDFILE"
        log "prometheus: started (pid $pid, log $LOGS/prometheus.log)"
    fi
    wait_for prometheus "$READY_SECONDS" "$LOGS/prometheus.log" prom_pid prom_ready ||
        die "prometheus does not answer on $PROM_URL/-/ready"
}

start_sink() {
    local pid
    if pid=$(sink_pid); then
        log "otlp sink: already running (pid $pid)"
    else
        port_free_or_die "$OTLP_GRPC_PORT" "OTLP gRPC"
        port_free_or_die "$OTLP_HTTP_PORT" "OTLP HTTP"
        touch "$RECEIVED"
        PATH=$SERVICE_PATH setsid "$VENV/bin/python" -u "$SINK_PY" \
            --grpc "127.0.0.1:$OTLP_GRPC_PORT" --http "127.0.0.1:$OTLP_HTTP_PORT" --out "$RECEIVED" \
            </dev/null >>"$LOGS/otlp-sink.log" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$SINK_PIDFILE"
        log "otlp sink: started (pid $pid, log $LOGS/otlp-sink.log)"
    fi
    wait_for "otlp sink" "$READY_SECONDS" "$LOGS/otlp-sink.log" sink_pid sink_ready ||
        die "the OTLP sink does not answer on $SINK_URL and 127.0.0.1:$OTLP_GRPC_PORT"
}

stop_sink() {
    local pid
    if pid=$(sink_pid); then
        stop_pid "otlp sink" "$pid" sink_pid
        log "otlp sink: stopped (pid $pid)"
    else
        log "otlp sink: was not running"
    fi
    rm -f "$SINK_PIDFILE"
}

stop_prometheus() {
    local pid
    if pid=$(prom_pid); then
        stop_pid prometheus "$pid" prom_pid
        log "prometheus: stopped (pid $pid)"
    else
        log "prometheus: was not running"
    fi
    rm -f "$PROM_PIDFILE"
}

write_env() {
    cat >"$OBS/env" <<EOF
# Generated by scripts/observability.sh up
export PROM_URL=$PROM_URL
export OTLP_GRPC_ENDPOINT=http://127.0.0.1:$OTLP_GRPC_PORT
export OTLP_HTTP_ENDPOINT=$SINK_URL
export OTLP_RECEIVED=$RECEIVED
export PROM_TARGETS=$TARGETS
EOF
}

cmd_up() {
    need_root "state lives in $OBS"
    lock "$OBS"
    mkdir -p "$LOGS"
    install_packages
    ensure_venv
    ensure_rotel
    start_prometheus
    start_sink
    write_env
    log "up: prometheus $PROM_URL (targets: $TARGETS), OTLP grpc http://127.0.0.1:$OTLP_GRPC_PORT" \
        "http $SINK_URL -> $RECEIVED"
}

cmd_down() {
    need_root "state lives in $OBS"
    lock "$OBS"
    mkdir -p "$LOGS"
    stop_sink
    stop_prometheus
    # A fresh TSDB and no stale targets next time: old series must not leak
    # into later tests.
    rm -rf "$PROM_DATA"
    write_targets
    log "down: done (kept $VENV and $RECEIVED)"
}

cmd_otlp_stop() {
    need_root "state lives in $OBS"
    lock "$OBS"
    mkdir -p "$LOGS"
    stop_sink
    local deadline=$((SECONDS + 5))
    while port_open "$OTLP_GRPC_PORT" || port_open "$OTLP_HTTP_PORT"; do
        ((SECONDS < deadline)) || die "ports $OTLP_GRPC_PORT/$OTLP_HTTP_PORT still accept connections after the sink stopped"
        sleep 0.1
    done
}

cmd_otlp_start() {
    need_root "state lives in $OBS"
    lock "$OBS"
    mkdir -p "$LOGS"
    venv_works || die "no venv in $VENV: run scripts/observability.sh up first"
    start_sink
}

cmd_target() {
    need_root "state lives in $OBS"
    mkdir -p "$OBS"
    write_targets "$@"
    log "targets: ${*:-none} ($TARGETS)"
}

cmd_status() {
    local ok=0 pid
    if prom_ready; then
        pid=$(prom_pid || echo "?")
        echo "prometheus (pid $pid) is ready on $PROM_URL; targets: $({ tr -s ' \n' ' ' <"$TARGETS"; } 2>/dev/null || echo none)"
    else
        ok=1
        if pid=$(prom_pid); then
            echo "prometheus (pid $pid) runs but is not ready on $PROM_URL (see $LOGS/prometheus.log)"
        else
            echo "prometheus is not running on $PROM_URL: start it with scripts/observability.sh up"
        fi
    fi
    if sink_ready; then
        pid=$(sink_pid || echo "?")
        echo "otlp sink (pid $pid) answers on grpc 127.0.0.1:$OTLP_GRPC_PORT and $SINK_URL;" \
            "$(wc -l <"$RECEIVED" 2>/dev/null || echo 0) requests in $RECEIVED"
    else
        ok=1
        if pid=$(sink_pid); then
            echo "otlp sink (pid $pid) runs but does not answer on $SINK_URL (see $LOGS/otlp-sink.log)"
        else
            echo "the otlp sink is not running on 127.0.0.1:$OTLP_GRPC_PORT/$OTLP_HTTP_PORT:" \
                "start it with scripts/observability.sh up (or otlp-start)"
        fi
    fi
    return $ok
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
otlp-stop) cmd_otlp_stop ;;
otlp-start) cmd_otlp_start ;;
target)
    shift
    cmd_target "$@"
    ;;
*)
    echo "usage: $0 up|down|status|otlp-stop|otlp-start|target [HOST:PORT...]" >&2
    exit 2
    ;;
esac
