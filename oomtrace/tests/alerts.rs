//! The alert rules of deploy/observability: `promtool check rules` and the
//! promtool unit tests of every rule, the prometheus-operator PrometheusRule
//! in sync with the plain rules file, and the rules loaded into the real
//! Prometheus of `scripts/observability.sh`, which scrapes a real daemon
//! while real kills happen: the alerts its own `/api/v1/alerts` reports.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    cri::{Qos, blocking::Cri, new_uid},
    daemon::Daemon,
    harness::{self, Need},
    observability::{self, LoadedRules},
    trial,
    workload::{Running, Workload},
};
use serde_json::Value;
use support::{oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
/// The plain rules file: the one source of truth.
const RULES: &str = "deploy/observability/prometheus/oomtrace-rules.yaml";
/// The promtool unit tests of every rule.
const RULE_TESTS: &str = "deploy/observability/prometheus/tests";
/// The PrometheusRule that embeds the rules file's groups.
const PROMETHEUS_RULE: &str = "deploy/observability/prometheus-operator/prometheusrule.yaml";
/// `OOMTRACE_BLESS_RULES=1` rewrites [`PROMETHEUS_RULE`] from [`RULES`].
const BLESS: &str = "OOMTRACE_BLESS_RULES";
/// The groups of the rules file, as Prometheus lists them once loaded.
const GROUPS: &[&str] = &["oomtrace.kills", "oomtrace.warnings", "oomtrace.agent"];
const ALERT_TIMEOUT: Duration = Duration::from_secs(45);

fn main() -> ExitCode {
    harness::main(vec![
        trial!(promtool_checks_the_rules, Need::SourceTree, Need::Probe(promtool_installed)),
        trial!(every_rule_passes_its_promtool_unit_tests, Need::SourceTree, Need::Probe(promtool_installed)),
        trial!(every_rule_has_a_unit_test, Need::SourceTree),
        trial!(the_prometheus_rule_embeds_the_rules_file, Need::SourceTree),
        trial!(real_kills_fire_the_kill_alerts_in_prometheus, Need::SourceTree, Need::Observability, Need::Cri),
        trial!(a_real_leak_fires_the_time_to_oom_alert_in_prometheus, Need::SourceTree, Need::Observability),
    ])
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// promtool comes with Prometheus (Debian's `prometheus` package, which
/// `scripts/observability.sh up` installs). Missing, the promtool tests are
/// skipped, saying so; where the components must be up
/// (`OOMTRACE_TEST_REQUIRE_OBSERVABILITY`, as `scripts/test.sh` sets) they run
/// and fail on it instead.
fn promtool_installed() -> Result<(), String> {
    let required = std::env::var_os(harness::REQUIRE_OBSERVABILITY_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ if required => Ok(()),
        Ok(out) => Err(format!("promtool --version failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(error) => Err(format!(
            "needs promtool ({error}); it comes with Debian's prometheus package: scripts/observability.sh up installs it"
        )),
    }
}

/// Runs promtool in the repository; its output when it fails.
fn promtool(args: &[&str]) -> Result<String> {
    let out = Command::new("promtool").args(args).current_dir(repo()).output().context("running promtool")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "promtool {} failed ({}):\n{text}", args.join(" "), out.status);
    Ok(text)
}

fn rule_test_files() -> Result<Vec<String>> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join(RULE_TESTS))
        .with_context(|| format!("listing {RULE_TESTS}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.yaml"))
        .map(|name| format!("{RULE_TESTS}/{name}"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no *.test.yaml in {RULE_TESTS}");
    Ok(files)
}

fn promtool_checks_the_rules() -> Result<()> {
    let out = promtool(&["check", "rules", RULES])?;
    ensure!(out.contains("SUCCESS"), "{out}");
    // The PrometheusRule's groups are the same rules: promtool reads them too.
    let groups = yaml(&repo().join(PROMETHEUS_RULE))?["spec"].clone();
    let file = std::env::temp_dir().join(format!("{}.yaml", unique("prometheusrule-groups")));
    std::fs::write(&file, serde_yaml_ng::to_string(&groups)?)?;
    let out = promtool(&["check", "rules", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    ensure!(out?.contains("SUCCESS"), "the PrometheusRule's spec");
    Ok(())
}

fn every_rule_passes_its_promtool_unit_tests() -> Result<()> {
    let files = rule_test_files()?;
    let args: Vec<&str> = ["test", "rules"].into_iter().chain(files.iter().map(String::as_str)).collect();
    let out = promtool(&args)?;
    ensure!(out.matches("SUCCESS").count() == files.len(), "{out}");
    println!("{out}");
    Ok(())
}

/// Each rule of the file is exercised by a unit test: each alert is named by
/// an `alertname:` of some test, each recording rule appears in a test's
/// `expr:` or is read by an alert that is tested.
fn every_rule_has_a_unit_test() -> Result<()> {
    let tests: String = rule_test_files()?
        .iter()
        .map(|f| std::fs::read_to_string(repo().join(f)).with_context(|| f.clone()))
        .collect::<Result<_>>()?;
    let rules = yaml(&repo().join(RULES))?;
    let mut untested = Vec::new();
    for group in rules["groups"].as_sequence().context("groups")? {
        for rule in group["rules"].as_sequence().context("rules")? {
            if let Some(alert) = rule["alert"].as_str() {
                if !tests.contains(&format!("alertname: {alert}\n")) {
                    untested.push(alert.to_owned());
                }
            } else if let Some(record) = rule["record"].as_str()
                && !tests.contains(record)
                && !rules_text()?.contains(&format!("expr: {record}"))
                && !rules_text()?.contains(&format!("({record}"))
            {
                untested.push(record.to_owned());
            }
        }
    }
    ensure!(untested.is_empty(), "rules without a promtool unit test: {untested:?}");
    Ok(())
}

fn rules_text() -> Result<String> {
    std::fs::read_to_string(repo().join(RULES)).with_context(|| format!("reading {RULES}"))
}

fn yaml(path: &Path) -> Result<serde_yaml_ng::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The PrometheusRule as generated from the rules file: a fixed head, then the
/// file from `groups:` on under `spec:`, comments and all.
fn prometheus_rule_from(rules: &str) -> Result<String> {
    let start = rules.find("\ngroups:\n").context("the rules file has no top-level `groups:`")? + 1;
    let mut out = String::from(
        "# Generated from deploy/observability/prometheus/oomtrace-rules.yaml, the one\n\
         # source of the rules: edit that file, then\n\
         #   OOMTRACE_BLESS_RULES=1 cargo test -p oomtrace --test alerts the_prometheus_rule\n\
         # rewrites this one (the test fails while the two differ).\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: oomtrace\n  namespace: oomtrace\n  labels:\n    app.kubernetes.io/name: oomtrace\n    \
         app.kubernetes.io/part-of: oomtrace\n    \
         # Prometheus selects PrometheusRules by label (kube-prometheus-stack:\n    \
         # release: <helm release name>); add yours with a patch.\n\
         spec:\n",
    );
    for line in rules[start..].lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

fn the_prometheus_rule_embeds_the_rules_file() -> Result<()> {
    let expected = prometheus_rule_from(&rules_text()?)?;
    let path = repo().join(PROMETHEUS_RULE);
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os(BLESS).is_some() {
        if actual != expected {
            std::fs::write(&path, &expected).with_context(|| format!("writing {}", path.display()))?;
            println!("rewrote {PROMETHEUS_RULE}");
        }
        return Ok(());
    }
    ensure!(
        actual == expected,
        "{PROMETHEUS_RULE} differs from what {RULES} generates: run {BLESS}=1 cargo test -p oomtrace --test alerts"
    );
    // And as data: the same groups.
    let plain = yaml(&repo().join(RULES))?;
    let operator = yaml(&path)?;
    ensure!(operator["spec"]["groups"] == plain["groups"], "the groups differ");
    Ok(())
}

/// One live test at a time: they share Prometheus' scrape target and rules.
static SHARED_COMPONENTS: Mutex<()> = Mutex::new(());

fn components() -> MutexGuard<'static, ()> {
    SHARED_COMPONENTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The rules file as the live checks load it: every `for:` at 0 s. They check
/// what each expression, its labels and annotations give on real data within
/// seconds; the `for:` durations are the promtool tests' to check.
fn rules_without_for() -> Result<String> {
    let text = rules_text()?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.trim_start().strip_prefix("for: ") {
            Some(_) => out.push_str(&format!("{}for: 0s", &line[..line.len() - line.trim_start().len()])),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// Loads the rules into the shared Prometheus.
fn load_rules() -> Result<LoadedRules> {
    LoadedRules::load("oomtrace-rules.yaml", &rules_without_for()?, GROUPS, Duration::from_secs(30))
        .context("loading the rules into Prometheus")
}

fn label<'a>(alert: &'a Value, name: &str) -> Option<&'a str> {
    alert["labels"][name].as_str()
}

fn annotation<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["annotations"][name].as_str().unwrap_or_default()
}

fn value(alert: &Value) -> Option<f64> {
    alert["value"].as_str().and_then(|v| v.parse().ok())
}

/// The firing alerts named `name` from the agent at `instance`.
fn firing<'a>(alerts: &'a [Value], name: &str, instance: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| label(a, "alertname") == Some(name) && label(a, "instance") == Some(instance))
        .filter(|a| a["state"] == "firing")
        .collect()
}

fn of_pod<'a>(alerts: &[&'a Value], pod: &str) -> Option<&'a Value> {
    alerts.iter().copied().find(|a| label(a, "pod") == Some(pod))
}

/// Real kills in pods created over CRI as kubelet creates them: three of one
/// container (three attempts, as kubelet restarts it) and one of a kube-system
/// pod's container, scraped from a real daemon by the real Prometheus with the
/// rules loaded. Its `/api/v1/alerts` then reports the container alert with the
/// pod's namespace/pod/container and the cause, the VPA limit in its runbook;
/// the repeated-kills alert for that container; the system-pod alert for the
/// kube-system pod and not the user container's; for this agent, no
/// node-level OOM, no agent down and no missing probe; and the unreported-kills
/// alert exactly when the daemon's gauge counts some.
fn real_kills_fire_the_kill_alerts_in_prometheus() -> Result<()> {
    let _components = components();
    let client = Cri::connect_test_runtime()?;
    let daemon = Daemon::start(oomtrace(), Vec::new(), &["--kernel-log", "false", "--cri-socket", client.socket()])?;
    observability::set_scrape_target(&daemon.address).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, Duration::from_secs(30)).context("first scrape")?;
    let _rules = load_rules()?;
    let instance = daemon.address.clone();

    const NAMESPACE: &str = "oomtrace-test";
    let api = unique("alerts-api");
    let pod = client.run_pod(&api, NAMESPACE, &new_uid(), Qos::Burstable).context("run pod")?;
    for attempt in 0..3 {
        let id = client
            .run_container_attempt(&pod, "api", &["hog", "256", "1"], Some(LIMIT), attempt)
            .with_context(|| format!("run hog, attempt {attempt}"))?;
        let (exit_code, reason) = client.wait_exited(&id, Duration::from_secs(30)).context("hog exits")?;
        assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));
    }
    let system = unique("alerts-metrics-server");
    let system_pod = client.run_pod(&system, "kube-system", &new_uid(), Qos::Burstable).context("run system pod")?;
    let id = client
        .run_container(&system_pod, "metrics-server", &["hog", "256", "1"], Some(LIMIT))
        .context("run the system pod's hog")?;
    let (exit_code, reason) = client.wait_exited(&id, Duration::from_secs(30)).context("hog exits")?;
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));

    let alerts = observability::wait_for_alerts(
        |alerts| {
            let repeated = firing(alerts, "OomtraceWorkloadOOMKilledRepeatedly", &instance);
            of_pod(&firing(alerts, "OomtraceContainerOOMKilled", &instance), &api).is_some()
                && of_pod(&repeated, &api).and_then(value) == Some(3.0)
                && of_pod(&firing(alerts, "OomtraceSystemPodOOMKilled", &instance), &system).is_some()
        },
        ALERT_TIMEOUT,
    )
    .context("the kill alerts")?;
    let ours: Vec<&Value> = alerts.iter().filter(|a| label(a, "instance") == Some(&instance)).collect();
    println!("/api/v1/alerts, this agent's: {}", serde_json::to_string_pretty(&ours)?);

    let container = of_pod(&firing(&alerts, "OomtraceContainerOOMKilled", &instance), &api).context("container")?;
    for (name, expected) in [
        ("namespace", NAMESPACE),
        ("pod", api.as_str()),
        ("container", "api"),
        ("cause", "container_limit"),
        ("scope", "memcg"),
        ("severity", "warning"),
        ("job", "oomtrace"),
    ] {
        assert_eq!(label(container, name), Some(expected), "{name}: {container:#}");
    }
    assert_eq!(label(container, "unit"), None, "{container:#}");
    // The annotations read the daemon's last-kill gauges through Prometheus:
    // the 64 MiB limit, and VPA's 64 + 100 MiB.
    assert!(annotation(container, "description").contains("It was killed at a limit of 64MiB."), "{container:#}");
    assert!(
        annotation(container, "runbook").starts_with("Raise the memory limit and request of container `api` to 164Mi,"),
        "{container:#}"
    );
    assert!(annotation(container, "summary").contains(&format!("{NAMESPACE}/{api}/api")), "{container:#}");

    let repeated =
        of_pod(&firing(&alerts, "OomtraceWorkloadOOMKilledRepeatedly", &instance), &api).context("repeated")?;
    for (name, expected) in [("namespace", NAMESPACE), ("container", "api"), ("severity", "critical")] {
        assert_eq!(label(repeated, name), Some(expected), "{name}: {repeated:#}");
    }
    assert_eq!(label(repeated, "cause"), None, "summed over causes: {repeated:#}");
    assert!(annotation(repeated, "summary").ends_with("was OOM-killed 3 times in the last hour"), "{repeated:#}");

    let system_alert =
        of_pod(&firing(&alerts, "OomtraceSystemPodOOMKilled", &instance), &system).context("system pod")?;
    for (name, expected) in [
        ("namespace", "kube-system"),
        ("container", "metrics-server"),
        ("cause", "container_limit"),
        ("severity", "critical"),
    ] {
        assert_eq!(label(system_alert, name), Some(expected), "{name}: {system_alert:#}");
    }
    // What must not fire: the user-container alert for the system pod (its
    // advice would be to raise a limit AKS manages), and for this agent any
    // node-level OOM or agent health alert.
    let container_alerts = firing(&alerts, "OomtraceContainerOOMKilled", &instance);
    assert!(of_pod(&container_alerts, &system).is_none(), "{container_alerts:#?}");
    for name in ["OomtraceNodeOOM", "OomtraceAgentDown", "OomtraceProbesNotAttached", "OomtraceEventsLost"] {
        let ours: Vec<&Value> = alerts
            .iter()
            .filter(|a| label(a, "alertname") == Some(name) && label(a, "instance") == Some(&instance))
            .collect();
        assert!(ours.is_empty(), "{name} for this agent: {ours:#?}");
    }

    // Kills the kernel counted that this daemon (without the kernel log) did
    // not report: the earlier kills of this boot. The alert fires exactly when
    // the daemon's own gauge says there are some.
    observability::wait_for_alerts(
        |alerts| {
            let unreported = daemon.metric("oomtrace_kernel_oom_kills_unreported", None).unwrap_or(-1.0);
            let firing = !firing(alerts, "OomtraceKillsUnreported", &instance).is_empty();
            unreported >= 0.0 && firing == (unreported > 0.0)
        },
        ALERT_TIMEOUT,
    )
    .context("OomtraceKillsUnreported against the daemon's oomtrace_kernel_oom_kills_unreported")?;

    let (status, _) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    client.remove_pod(pod).context("remove pod")?;
    client.remove_pod(system_pod).context("remove system pod")
}

/// A leak toward a systemd unit's limit (the cgroups laid out as systemd lays
/// out a service): the daemon's time-to-OOM gauge falls under 5 min and the
/// real Prometheus reports the time-to-OOM alert with the unit and the limit
/// level, the time left in its summary.
fn a_real_leak_fires_the_time_to_oom_alert_in_prometheus() -> Result<()> {
    let _components = components();
    let name = unique("alerts-leak");
    let unit = format!("{name}.service");
    let cgroup = MemCgroup::create(&format!("{name}.slice/{unit}"), Some(256 * MIB))?;
    let daemon = Daemon::start(oomtrace(), Vec::new(), &["--kernel-log", "false"])?;
    observability::set_scrape_target(&daemon.address).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, Duration::from_secs(30)).context("first scrape")?;
    let _rules = load_rules()?;
    let instance = daemon.address.clone();
    let _leak = Running::start(&cgroup, &Workload::Leak { bytes_per_second: 8 * MIB })?;

    let is_ours = |a: &&Value| label(a, "unit") == Some(unit.as_str());
    let alerts = observability::wait_for_alerts(
        |alerts| firing(alerts, "OomtraceTimeToOOMShort", &instance).iter().any(is_ours),
        ALERT_TIMEOUT,
    )
    .context("the time-to-OOM alert")?;
    let ours: Vec<&Value> = alerts.iter().filter(|a| label(a, "instance") == Some(&instance)).collect();
    println!("/api/v1/alerts, this agent's: {}", serde_json::to_string_pretty(&ours)?);
    let alert = firing(&alerts, "OomtraceTimeToOOMShort", &instance).into_iter().find(is_ours).context("alert")?;
    assert_eq!(label(alert, "limit_level"), Some("cgroup"), "{alert:#}");
    assert_eq!(label(alert, "severity"), Some("warning"), "{alert:#}");
    assert_eq!(label(alert, "pod"), None, "{alert:#}");
    let seconds = value(alert).context("value")?;
    ensure!(seconds > 0.0 && seconds < 300.0, "time to OOM {seconds} s: {alert:#}");
    let summary = annotation(alert, "summary");
    if !summary.starts_with(&format!("{unit} will reach its cgroup memory limit in ")) {
        bail!("summary {summary:?}");
    }
    let (status, _) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    Ok(())
}
