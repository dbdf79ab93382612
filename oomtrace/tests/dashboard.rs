//! The observability pieces shipped in deploy/observability against real
//! components: every query of the Grafana dashboard returns data from the real
//! Prometheus after real kills and a real warning, and a real OpenTelemetry
//! collector (rotel, from PyPI) forwards the daemon's kill log record and
//! kill counter to the test's OTLP receiver.

mod support;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    cri::{Qos, blocking::Cri, new_uid},
    daemon::Daemon,
    harness::{self, Need},
    observability::{self, KeptScrapeTarget, Transport},
    trial,
    workload::{Running, Workload},
};
use serde_json::Value;
use support::{oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const NAMESPACE: &str = "oomtrace-dash";
const TIMEOUT: Duration = Duration::from_secs(30);
/// What the test puts for Grafana's `$__rate_interval` (Prometheus scrapes
/// every second here; Grafana would pick at least 4 scrape intervals).
const RATE_INTERVAL: &str = "20s";
const STEP: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    harness::main(vec![trial!(every_dashboard_query_returns_data_after_real_kills, Need::Observability, Need::Cri)])
}

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability/grafana/oomtrace-dashboard.json")
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// One query of a panel, as the dashboard has it.
struct PanelQuery {
    panel: String,
    ref_id: String,
    expr: String,
    instant: bool,
}

/// Every panel's targets, rows' nested panels included.
fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(PanelQuery {
                panel: panel["title"].as_str().unwrap_or("?").to_owned(),
                ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                instant: target["instant"].as_bool().unwrap_or(false),
            });
        }
    }
    queries
}

/// Grafana's variables put in as Grafana would for this node, every
/// namespace ("All" is `.*`), the given range and the test's intervals.
fn substitute(expr: &str, node: &str, range_seconds: u64) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", "2s")
        .replace("$__range", &format!("{range_seconds}s"))
        .replace("$node", &regex_escape(node))
        .replace("$namespace", ".*")
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_ascii_alphanumeric() || c == '-' { vec![c] } else { vec!['\\', '\\', c] })
        .collect()
}

/// `label_values(metric, label)` (Grafana's variable query) as PromQL.
fn label_values_query(definition: &str) -> Result<(String, String)> {
    let inner = definition
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .with_context(|| format!("not a label_values() query: {definition}"))?;
    let (metric, label) = inner.rsplit_once(',').with_context(|| format!("no label in {definition}"))?;
    Ok((format!("group by ({}) ({})", label.trim(), metric.trim()), label.trim().to_owned()))
}

/// Real kills (three of one pod's container at its limit, two in a systemd
/// unit's cgroup at its limit) and a real warning (a leak climbing towards a
/// unit's limit) on a daemon Prometheus scrapes with the `node` label the
/// scrape configurations set; then every panel query of the dashboard, with
/// its variables put in, returns at least one series for that node, the kill
/// count is the daemon's, and the latest kills agree with what the test did.
fn every_dashboard_query_returns_data_after_real_kills() -> Result<()> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(dashboard_path()).with_context(|| format!("{}", dashboard_path().display()))?,
    )
    .context("the dashboard is not JSON")?;
    let queries = panel_queries(&dashboard);
    anyhow::ensure!(queries.len() >= 10, "only {} panel queries", queries.len());
    let client = Cri::connect_test_runtime()?;
    let node = unique("dash-node");
    let started = now();
    let mut env = observability::otlp_env(Transport::Grpc, Duration::from_secs(1));
    env.push(("OTEL_SERVICE_NAME", unique("svc-dash")));
    let daemon = Daemon::start(oomtrace(), env, &["--kernel-log", "false", "--cri-socket", client.socket()])?;
    // Kept in the targets file while daemon tests of other processes replace it.
    let _target = KeptScrapeTarget::keep(&daemon.address, &[("node", node.as_str())]).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, TIMEOUT).context("first scrape")?;

    // Three kills of one container (kubelet's restarts: attempts 0, 1, 2).
    let pod_name = unique("shop");
    let pod = client.run_pod(&pod_name, NAMESPACE, &new_uid(), Qos::Burstable).context("run pod")?;
    for attempt in 0..3 {
        let id = client
            .run_container_attempt(&pod, "cart", &["hog", "256", "1"], Some(LIMIT), attempt)
            .context("run hog")?;
        let (exit_code, reason) = client.wait_exited(&id, TIMEOUT).context("hog exits")?;
        assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));
        std::thread::sleep(Duration::from_secs(3));
    }
    // Two kills in a unit's cgroup.
    let name = unique("dash-unit");
    let unit = format!("{name}.service");
    let cgroup = MemCgroup::create(&format!("{name}.slice/{unit}"), Some(LIMIT))?;
    for _ in 0..2 {
        cgroup.oom_kill_hog(256 * MIB)?;
        std::thread::sleep(Duration::from_secs(3));
    }
    // Every kill on this machine reaches the daemon (other tests' too): wait
    // for the test's own.
    for (selector, kills) in [(format!(r#"pod="{pod_name}""#), 3.0), (format!(r#"unit="{unit}""#), 2.0)] {
        let query = format!(r#"sum(oomtrace_oom_kills_total{{node="{node}",{selector}}})"#);
        observability::wait_for_value(&query, |v| v == kills, TIMEOUT)
            .with_context(|| format!("{query} in Prometheus"))?;
    }

    // A leak of 4 MiB/s towards a 512 MiB limit: a warning within the default
    // 5 min, and no kill for two minutes.
    let leaking = unique("dash-leak");
    let leak_unit = format!("{leaking}.service");
    let leak_cgroup = MemCgroup::create(&format!("{leaking}.slice/{leak_unit}"), Some(512 * MIB))?;
    let leak = Running::start(&leak_cgroup, &Workload::Leak { bytes_per_second: 4 * MIB })?;
    let warned = format!(r#"oomtrace_oom_warnings_total{{node="{node}",unit="{leak_unit}"}}"#);
    observability::wait_for_series(&warned, |s| !s.is_empty(), TIMEOUT).context("the warning in Prometheus")?;
    let climbing = format!(r#"oomtrace_seconds_to_oom{{node="{node}",unit="{leak_unit}"}}"#);
    observability::wait_for_series(&climbing, |s| !s.is_empty(), TIMEOUT).context("the time to OOM in Prometheus")?;
    // A few more seconds of countdown for the graph.
    std::thread::sleep(Duration::from_secs(10));
    drop(leak);

    let end = now();
    let range_seconds = (end - started).ceil() as u64 + 1;
    let mut empty = Vec::new();
    for query in &queries {
        let expr = substitute(&query.expr, &node, range_seconds);
        let series = if query.instant {
            observability::query(&expr)
        } else {
            observability::query_range(&expr, started, end, STEP)
        }
        .with_context(|| format!("panel {:?} query {}", query.panel, query.ref_id))?;
        // The node filter must keep other nodes' (other tests') series out.
        let others: Vec<&Value> =
            series.iter().filter(|s| s["metric"]["node"].as_str().is_some_and(|n| n != node)).collect();
        assert!(others.is_empty(), "panel {:?} {}: series of other nodes {others:?}", query.panel, query.ref_id);
        println!(
            "panel {:?} query {} ({}): {} series",
            query.panel,
            query.ref_id,
            if query.instant { "instant" } else { "range" },
            series.len()
        );
        if series.is_empty() {
            empty.push(format!("{:?} {}: {expr}", query.panel, query.ref_id));
        }
    }
    assert!(empty.is_empty(), "panel queries without data:\n{}", empty.join("\n"));

    // The kills stat counts every kill the daemon counted in the range, the
    // first kill of each series included (which increase() alone would miss):
    // the test's five, and any other test's on this machine meanwhile.
    let stat = queries.iter().find(|q| q.panel == "OOM kills").context("no OOM kills panel")?;
    let value = observability::query_value(&substitute(&stat.expr, &node, range_seconds))?;
    let counted = observability::query_value(&format!(r#"sum(oomtrace_oom_kills_total{{node="{node}"}})"#))?;
    assert!(counted.is_some_and(|c| c >= 5.0), "{counted:?}");
    assert_eq!(value, counted, "{}", stat.expr);
    // The latest kills table: the container's three kills, its last one
    // within the test, its limit.
    let latest = |ref_id: &str| -> Result<Vec<Value>> {
        let q = queries
            .iter()
            .find(|q| q.panel == "Latest kills" && q.ref_id == ref_id)
            .context("no Latest kills panel")?;
        observability::query(&substitute(&q.expr, &node, range_seconds))
    };
    let of_the_pod = |series: &[Value]| -> Option<f64> {
        series
            .iter()
            .find(|s| observability::series_label(s, "pod") == Some(pod_name.as_str()))
            .and_then(observability::sample_value)
    };
    assert_eq!(of_the_pod(&latest("B")?), Some(3.0), "kills of {pod_name}");
    let last_kill_ms = of_the_pod(&latest("A")?).context("no last kill time for the pod")?;
    assert!(
        (started * 1000.0..=end * 1000.0 + 1000.0).contains(&last_kill_ms),
        "last kill at {last_kill_ms} ms, test from {started} to {end} s"
    );
    assert_eq!(of_the_pod(&latest("C")?), Some(LIMIT as f64), "limit at the kill");

    // The variables' queries find this node and namespace.
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let Some(definition) = variable["query"]["query"].as_str() else { continue };
        let (query, label) = label_values_query(&substitute(definition, &node, range_seconds))?;
        let values: Vec<String> = observability::query(&query)?
            .iter()
            .filter_map(|s| observability::series_label(s, &label).map(str::to_owned))
            .collect();
        let expected = if label == "node" { node.as_str() } else { NAMESPACE };
        assert!(values.iter().any(|v| v == expected), "variable {label}: {values:?} lacks {expected}");
    }
    println!(
        "render this run: scripts/render-dashboard.py --node {node} --start {started:.0} --end {end:.0} --out docs/dashboard.png"
    );
    let (status, _) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    drop(cgroup);
    drop(leak_cgroup);
    client.remove_pod(pod).context("remove pod")
}
