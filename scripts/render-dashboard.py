#!/usr/bin/env python3
"""Plots the Grafana dashboard's panels from a real Prometheus into one PNG,
so that a reader sees what the dashboard shows without a Grafana.

It reads deploy/observability/grafana/oomtrace-dashboard.json, puts in the
variables as Grafana would (the node and namespace given, `$__range` = the
time range, `$__rate_interval` given), runs every panel's queries against
Prometheus' HTTP API (range queries, or instant ones at the end for targets
marked `instant`) and draws each panel at its place in the 24-column grid:
time series as lines or stacked bars, stats as a number, bar gauges as bars,
tables as tables (merged by labels, columns renamed and formatted as the
dashboard's transformations and overrides say).

    scripts/render-dashboard.py --node NODE --start UNIX --end UNIX --out docs/dashboard.png

oomtrace/tests/dashboard.rs prints the command for its run. Needs matplotlib
(`pip install matplotlib`, or Debian's python3-matplotlib).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import re
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "observability" / "grafana" / "oomtrace-dashboard.json"


def prom(base: str, path: str, params: dict) -> list:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise SystemExit(f"{url}: {body}")
    return body["data"]["result"]


def substitute(expr: str, args) -> str:
    return (
        expr.replace("$__rate_interval", args.rate_interval)
        .replace("$__interval", args.step)
        .replace("$__range", f"{int(args.end - args.start) + 1}s")
        .replace("$node", args.node)
        .replace("$namespace", args.namespace)
    )


def legend(fmt: str | None, labels: dict) -> str:
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).replace("//", "/").strip("/ ")


def human(value: float, unit: str | None) -> str:
    if unit == "bytes":
        for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "dateTimeAsIso":
        return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if unit == "s":
        return f"{value:.0f} s"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def overrides(panel: dict) -> dict:
    """Column name -> {unit, mappings} from the panel's field overrides."""
    out: dict = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        name = o.get("matcher", {}).get("options")
        for p in o.get("properties", []):
            if p["id"] == "unit":
                out.setdefault(name, {})["unit"] = p["value"]
            if p["id"] == "mappings":
                out.setdefault(name, {})["mappings"] = p["value"][0]["options"]
    return out


def draw_timeseries(ax, panel, results, args):
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    bars = custom.get("drawStyle") == "bars"
    bottoms: dict = {}
    width = float(args.step.rstrip("s")) / 86400 * 0.9
    drawn = 0
    total = sum(len(series) for _, series in results)
    for target, series in results:
        for s in series:
            times = [dt.datetime.fromtimestamp(float(t), dt.timezone.utc) for t, _ in s["values"]]
            values = [float(v) for _, v in s["values"]]
            label = legend(target.get("legendFormat"), s["metric"])
            if bars:
                if not any(values):
                    continue
                base = [bottoms.get(t, 0.0) for t in times]
                ax.bar(times, values, width=width, bottom=base, label=label, align="center")
                for t, b, v in zip(times, base, values):
                    bottoms[t] = b + v
            else:
                ax.plot(times, values, label=label, marker="." if custom.get("showPoints") == "always" else None)
            drawn += 1
    if drawn == 0:
        ax.text(0.5, 0.5, "0 in every interval" if total else "No data", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xlim(dt.datetime.fromtimestamp(args.start, dt.timezone.utc), dt.datetime.fromtimestamp(args.end, dt.timezone.utc))
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%H:%M:%S"))
    ax.tick_params(labelsize=7)
    if unit == "s":
        ax.set_ylabel("seconds", fontsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left")


def draw_stat(ax, panel, results, args):
    values = [float(s["value"][1]) for _, series in results for s in series]
    ax.axis("off")
    text = human(sum(values), None) if values else "No data"
    ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=36, weight="bold",
            color="tab:red" if values and sum(values) > 0 and panel["title"] == "OOM kills" else "tab:green")


def draw_bargauge(ax, panel, results, args):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    items = [(legend(t.get("legendFormat"), s["metric"]), float(s["value"][1])) for t, series in results for s in series]
    items.sort(key=lambda i: i[1], reverse=panel["title"].startswith("Top"))
    items = items[:10][::-1]
    ax.barh([name for name, _ in items], [v for _, v in items], color="tab:orange")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, " " + human(v, unit), va="center", fontsize=7)
    ax.tick_params(labelsize=7)
    if unit == "bytes":
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: human(v, "bytes")))


def draw_table(ax, panel, results, args):
    ax.axis("off")
    transformations = {t["id"]: t.get("options", {}) for t in panel.get("transformations", [])}
    organize = transformations.get("organize", {})
    rename = organize.get("renameByName", {})
    excluded = {k for k, v in organize.get("excludeByName", {}).items() if v}
    fields = overrides(panel)
    # Grafana's merge: each query is a frame whose columns are the labels of
    # all its series (a label a series lacks is an empty cell); rows of two
    # frames with equal values in the columns both frames have are one row.
    rows: list = []
    label_names: list = []
    value_columns: list = []
    for target, series in results:
        column = f"Value #{target['refId']}" if len(results) > 1 else "Value"
        value_columns.append(column)
        frame_labels = sorted({k for s in series for k in s["metric"] if k != "__name__"})
        label_names += [k for k in frame_labels if k not in label_names]
        for s in series:
            labels = {k: s["metric"].get(k, "") for k in frame_labels}
            match = next((r for r in rows if all(r["labels"][k] == v for k, v in labels.items() if k in r["labels"])
                          and set(labels) & set(r["labels"])), None)
            if match is None:
                match = {"labels": {}, "values": {}}
                rows.append(match)
            match["labels"].update(labels)
            match["values"][column] = float(s["value"][1])
    rows = {i: r for i, r in enumerate(rows)}
    if "filterByValue" in transformations:
        rows = {k: r for k, r in rows.items() if r["values"].get("Value #B", 0) > 0}
    index = organize.get("indexByName", {})
    columns = [c for c in label_names + value_columns if c not in excluded]
    columns.sort(key=lambda c: index.get(c, 100 + (label_names + value_columns).index(c)))
    header = [rename.get(c, c) for c in columns]
    body = []
    sort = transformations.get("sortBy", {}).get("sort", [{}])[0]
    ordered = list(rows.values())
    if sort.get("field"):
        source = next((c for c in columns if rename.get(c, c) == sort["field"]), None)
        ordered.sort(key=lambda r: r["values"].get(source, 0), reverse=sort.get("desc", False))
    for r in ordered:
        line = []
        for c, h in zip(columns, header):
            if c in r["values"]:
                line.append(human(r["values"][c], fields.get(h, {}).get("unit")))
            else:
                value = r["labels"].get(c, "")
                mapping = fields.get(h, {}).get("mappings", {})
                line.append(mapping.get(value, {}).get("text", value))
        body.append(line)
    if not body:
        ax.text(0.5, 0.5, "No data", ha="center", va="center")
        return
    table = ax.table(cellText=body[:12], colLabels=header, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(header))))
    table.scale(1, 1.3)


DRAW = {"timeseries": draw_timeseries, "stat": draw_stat, "bargauge": draw_bargauge, "table": draw_table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:19090")
    parser.add_argument("--node", default=".*", help="the node variable (a regex)")
    parser.add_argument("--namespace", default=".*", help="the namespace variable (a regex)")
    parser.add_argument("--start", type=float, required=True, help="Unix seconds")
    parser.add_argument("--end", type=float, required=True, help="Unix seconds")
    parser.add_argument("--rate-interval", default="20s", help="what $__rate_interval stands for")
    parser.add_argument("--step", default="2s", help="range query step (and $__interval)")
    parser.add_argument("--dashboard", default=str(DASHBOARD))
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args()

    dashboard = json.load(open(args.dashboard))
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(20, height * 0.33))
    grid = GridSpec(height, 24, figure=fig, hspace=1.8, wspace=1.2, top=0.97, bottom=0.02, left=0.14, right=0.99)
    fig.suptitle(f"{dashboard['title']}: node {args.node}, "
                 f"{dt.datetime.fromtimestamp(args.start, dt.timezone.utc):%Y-%m-%d %H:%M:%S} to "
                 f"{dt.datetime.fromtimestamp(args.end, dt.timezone.utc):%H:%M:%S} UTC", fontsize=14, y=0.99)
    for panel in panels:
        g = panel["gridPos"]
        if panel["type"] == "row":
            ax = fig.add_subplot(grid[g["y"]:g["y"] + 1, :])
            ax.axis("off")
            ax.text(0, 0.0, panel["title"], fontsize=13, weight="bold")
            continue
        results = []
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], args)
            if target.get("instant"):
                series = prom(args.prometheus, "/api/v1/query", {"query": expr, "time": args.end})
            else:
                series = prom(args.prometheus, "/api/v1/query_range",
                              {"query": expr, "start": args.start, "end": args.end, "step": args.step})
            results.append((target, series))
        ax = fig.add_subplot(grid[g["y"] + 1:g["y"] + g["h"], g["x"]:g["x"] + g["w"]])
        ax.set_title(panel["title"], fontsize=10, loc="left")
        DRAW[panel["type"]](ax, panel, results, args)
        print(f"{panel['title']}: {sum(len(s) for _, s in results)} series", file=sys.stderr)
    fig.savefig(args.out, dpi=72, bbox_inches="tight")
    print(args.out)


if __name__ == "__main__":
    main()
