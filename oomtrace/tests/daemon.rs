//! `oomtrace daemon` against real components: a Prometheus server scrapes it,
//! an OTLP receiver gets its logs and metrics over gRPC and HTTP, the receiver
//! goes down and comes back, and SIGTERM flushes what is queued.

mod support;

use std::{
    process::{Command, ExitCode},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    cri::{Qos, blocking::Cri, new_uid},
    daemon::{Daemon, free_port},
    dmesg,
    event::Event,
    harness::{self, Need},
    http,
    observability::{self, LogRecord, OtlpReceived, Rotel, Sink, SinkTls, Transport, otlp_mark},
    report::ReportRecord,
    trial,
    workload::{Running, Workload, page_size},
};
use support::{oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const NAMESPACE: &str = "oomtrace-test";
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    harness::main(vec![
        trial!(a_container_kill_reaches_prometheus_and_the_otlp_receiver, Need::Observability, Need::Cri),
        trial!(otlp_over_http_delivers_the_kill, Need::Observability),
        trial!(a_collector_outage_is_survived_counted_and_caught_up, Need::Observability),
        trial!(sigterm_flushes_what_is_queued, Need::Observability),
        trial!(otlp_over_mutual_tls_is_refused_on_a_wrong_ca_and_delivered_on_the_right_one, Need::Observability),
        trial!(an_unusable_otlp_certificate_stops_the_daemon_at_startup, Need::Root),
        trial!(
            a_real_collector_forwards_the_kill_with_its_attributes,
            Need::Observability,
            Need::Probe(|| observability::rotel_agent().map(drop).map_err(|e| format!("{e:#}")))
        ),
        trial!(a_warning_reaches_prometheus_and_the_otlp_receiver, Need::Observability),
        trial!(a_watched_cgroups_headroom_reaches_prometheus_until_it_is_removed, Need::Observability),
        trial!(a_malformed_config_is_a_clear_error),
        trial!(a_missing_config_names_its_cause_once),
        trial!(a_kill_while_the_daemon_was_down_is_reported_once_at_restart, Need::Root),
        trial!(a_live_kills_kernel_report_follows_it_to_the_otlp_receiver, Need::Observability),
    ])
}

/// One daemon test at a time: they share Prometheus' target and the receiver,
/// and each daemon reports every kill of the host, those of the others too.
static SHARED_COMPONENTS: Mutex<()> = Mutex::new(());

fn components() -> MutexGuard<'static, ()> {
    SHARED_COMPONENTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A daemon exporting OTLP over `transport` as `service`.
/// A daemon exporting to the test's OTLP receiver. Without the kernel log:
/// these tests count what is exported and queued, and the kills of this boot
/// from earlier tests would come first as past kills (the kernel log has its
/// own test below, with a state directory of its own).
fn daemon(service: &str, transport: Transport, metric_interval: Duration, args: &[&str]) -> Result<Daemon> {
    let mut env = observability::otlp_env(transport, metric_interval);
    env.push(("OTEL_SERVICE_NAME", service.to_owned()));
    let args = [&["--kernel-log", "false"][..], args].concat();
    Daemon::start(oomtrace(), env, &args)
}

/// Polls the daemon's `oomtrace_exporter_failures_total{exporter="otlp"}` until it counts one.
fn wait_for_an_export_failure(daemon: &Daemon, what: &str, poll: Duration) -> Result<f64> {
    wait_for_otlp_metric(daemon, "oomtrace_exporter_failures_total", 1.0, what, poll)
}

/// Polls the OTLP exporter's `metric` until it reaches `at_least`; its value then.
fn wait_for_otlp_metric(daemon: &Daemon, metric: &str, at_least: f64, what: &str, poll: Duration) -> Result<f64> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let value = daemon.metric(metric, Some(("exporter", "otlp")))?;
        if value >= at_least {
            return Ok(value);
        }
        assert!(Instant::now() < deadline, "{what}: {metric} is {value}");
        std::thread::sleep(poll);
    }
}

fn a_container_kill_reaches_prometheus_and_the_otlp_receiver() -> Result<()> {
    let _components = components();
    let client = Cri::connect_test_runtime()?;
    observability::prometheus_available()?;
    let service = unique("svc");
    let mark = otlp_mark();
    let daemon = daemon(&service, Transport::Grpc, Duration::from_secs(1), &["--cri-socket", client.socket()])?;
    observability::set_scrape_target(&daemon.address).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, Duration::from_secs(30)).context("first scrape")?;

    let pod_name = unique("shop");
    let pod = client.run_pod(&pod_name, NAMESPACE, &new_uid(), Qos::Burstable).context("run pod")?;
    let id = client.run_container(&pod, "cart", &["hog", "256", "1"], Some(LIMIT)).context("run hog")?;
    let pid = client.container_status(&id).context("status")?.pid;
    let (exit_code, reason) = client.wait_exited(&id, Duration::from_secs(30)).context("hog exits")?;
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));

    // Prometheus' own query API returns the kill for that pod.
    let query = format!(r#"oomtrace_oom_kills_total{{namespace="{NAMESPACE}",pod="{pod_name}",container="cart"}}"#);
    let series =
        observability::wait_for_series(&query, |s| !s.is_empty(), DELIVERY_TIMEOUT).context("series in Prometheus")?;
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(observability::sample_value(&series[0]), Some(1.0), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "scope"), Some("memcg"));
    // The kill was at the container's own limit; a pod's container has no unit.
    assert_eq!(observability::series_label(&series[0], "cause"), Some("container_limit"), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "unit"), None, "{series:?}");

    // The receiver has the log record with the k8s/process attributes and the memory fields.
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| r.for_service(&service).log_records().iter().any(|l| l.attr_str("k8s.pod.name") == Some(pod_name.as_str())),
        DELIVERY_TIMEOUT,
    )
    .context("log record delivered")?;
    let ours = received.for_service(&service);
    let records = ours.log_records();
    let record = records.iter().find(|l| l.attr_str("k8s.pod.name") == Some(pod_name.as_str())).context("record")?;
    assert_eq!(record.transport, "grpc");
    assert_eq!(record.attr_str("k8s.namespace.name"), Some(NAMESPACE));
    assert_eq!(record.attr_str("k8s.container.name"), Some("cart"));
    assert_eq!(record.attr_str("container.id"), Some(id.as_str()));
    assert_eq!(record.attr_str("k8s.pod.uid"), Some(pod.uid.as_str()));
    assert_eq!(record.attr_i64("process.pid"), Some(i64::from(pid)));
    assert_eq!(record.attr_str("process.executable.name"), Some("hog"));
    assert_eq!(record.attr_i64("oomtrace.oom_memcg.limit_bytes"), Some(LIMIT as i64));
    assert!(
        record.attr_i64("oomtrace.victim.anon_rss_bytes").is_some_and(|b| b > 32 * MIB as i64),
        "{:?}",
        record.attributes
    );
    assert_eq!(record.attr_bool("oomtrace.killed"), Some(true));
    assert_eq!(record.event_name.as_deref(), Some("oomtrace.oom_kill"));
    assert_eq!(record.attr_str("oomtrace.diagnosis.cause"), Some("container_limit"));
    let record = record.clone();

    // ... and the kill counter as an OTLP metric, with its cause.
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| {
            r.for_service(&service).metric_points("oomtrace.oom_kills").iter().any(|p| {
                p.attr_str("k8s.pod.name") == Some(pod_name.as_str())
                    && p.value == Some(1.0)
                    && p.attr_str("oomtrace.diagnosis.cause") == Some("container_limit")
            })
        },
        DELIVERY_TIMEOUT,
    );
    assert!(received.is_ok(), "{received:?}");

    // NDJSON on stdout names the pod too. Kills of this boot from before the
    // daemon started (earlier tests') may come first, from the kernel log.
    let event = std::iter::from_fn(|| daemon.expect_event(Duration::from_secs(5)).ok())
        .find(|e| e.workload().pod.as_deref() == Some(pod_name.as_str()))
        .context("no event on stdout names the pod")?;
    assert_eq!(event.source, "ebpf", "{event}");
    // What Prometheus and the receiver were told is the event's diagnosis.
    assert_eq!(event.cause(), Some("container_limit"), "{event}");
    assert_the_record_carries_the_diagnosis(&record, &event);

    let (status, took) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    client.remove_pod(pod).context("remove pod")
}

/// `event`'s diagnosis in an OTLP log record: the cause and the finding kinds
/// as attributes (the kinds as a string array), the summary first in the body.
fn assert_the_record_carries_the_diagnosis(record: &LogRecord, event: &Event) {
    let diagnosis = event.diagnosis.as_ref().expect("the event has a diagnosis");
    assert_eq!(record.attr_str("oomtrace.diagnosis.cause"), Some(diagnosis.cause.as_str()), "{:?}", record.attributes);
    let kinds: Vec<&serde_json::Value> = diagnosis.findings.iter().map(|f| &f["kind"]).collect();
    let findings = record.attributes.get("oomtrace.diagnosis.findings").and_then(|f| f.as_array());
    assert_eq!(findings.map(|f| f.iter().collect::<Vec<_>>()), Some(kinds), "{:?}", record.attributes);
    let body = record.body.as_str().unwrap_or_default();
    assert!(!diagnosis.summary.is_empty() && body.starts_with(&diagnosis.summary), "{body:?} vs {diagnosis:?}");
    assert!(body.contains(&format!("(pid {})", event.victim.pid)), "the facts line stays in the body: {body:?}");
    // The advice, as three parallel string arrays: what to do travels too.
    let array = |key: &str| {
        record
            .attributes
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or("?")).collect::<Vec<_>>())
    };
    if diagnosis.advice.is_empty() {
        assert_eq!(array("oomtrace.advice.action"), None, "{:?}", record.attributes);
    } else {
        let actions: Vec<&str> = diagnosis.advice.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(array("oomtrace.advice.action"), Some(actions), "{:?}", record.attributes);
        let commands: Vec<&str> = diagnosis.advice.iter().map(|a| a.command.as_deref().unwrap_or("")).collect();
        assert_eq!(array("oomtrace.advice.command"), Some(commands), "{:?}", record.attributes);
    }
    assert_the_resource_describes_the_agent(record);
}

/// The node and the agent are on the resource, not on each record.
fn assert_the_resource_describes_the_agent(record: &LogRecord) {
    let resource = |key: &str| record.resource.get(key).and_then(|v| v.as_str());
    assert_eq!(resource("service.version"), Some(env!("CARGO_PKG_VERSION")), "{:?}", record.resource);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(resource("host.name"), Some(host.trim()), "{:?}", record.resource);
    assert!(resource("service.instance.id").is_some_and(|id| !id.is_empty()), "{:?}", record.resource);
    assert!(!record.attributes.contains_key("k8s.node.name"), "{:?}", record.attributes);
    let stray: Vec<&String> = record.attributes.keys().filter(|k| k.starts_with("oom.")).collect();
    assert!(stray.is_empty(), "attributes outside the one prefix: {stray:?}");
}

/// A host kill in a cgroup laid out as systemd lays out a service (systemd is
/// not PID 1 on the test hosts, so the test makes the cgroups itself): over
/// OTLP/HTTP and in Prometheus it is that unit's, diagnosed `cgroup_limit`.
fn otlp_over_http_delivers_the_kill() -> Result<()> {
    let _components = components();
    let service = unique("svc-http");
    let mark = otlp_mark();
    let name = unique("daemon-http");
    let unit = format!("{name}.service");
    let cgroup = MemCgroup::create(&format!("{name}.slice/{unit}"), Some(LIMIT))?;
    let daemon = daemon(&service, Transport::HttpProtobuf, Duration::from_secs(1), &[])?;
    observability::set_scrape_target(&daemon.address).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, Duration::from_secs(30)).context("first scrape")?;
    let pid = cgroup.oom_kill_hog(256 * MIB)?;
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| r.for_service(&service).log_records().iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(pid))),
        DELIVERY_TIMEOUT,
    )
    .context("log record over HTTP")?;
    let records = received.for_service(&service).log_records();
    let record = records.iter().find(|l| l.attr_i64("process.pid") == Some(i64::from(pid))).context("record")?;
    assert_eq!(record.transport, "http");
    assert_eq!(record.attr_str("oomtrace.cgroup.path"), Some(cgroup.path.as_str()));
    assert_eq!(record.attr_str("oomtrace.scope"), Some("memcg"));
    assert_eq!(record.attr_str("oomtrace.systemd.unit"), Some(unit.as_str()));
    let event = std::iter::from_fn(|| daemon.expect_event(Duration::from_secs(5)).ok())
        .find(|e| e.victim.pid == pid)
        .context("no event on stdout for the victim")?;
    assert_eq!(event.cause(), Some("cgroup_limit"), "{event}");
    assert_the_record_carries_the_diagnosis(record, &event);

    // Prometheus: the kill is the unit's, not one of the empty-pod host kills.
    let query = format!(r#"oomtrace_oom_kills_total{{unit="{unit}"}}"#);
    let series =
        observability::wait_for_series(&query, |s| !s.is_empty(), DELIVERY_TIMEOUT).context("series in Prometheus")?;
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(observability::sample_value(&series[0]), Some(1.0), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "cause"), Some("cgroup_limit"), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "pod"), None, "{series:?}");
    let (status, _) = daemon.terminate()?;
    assert!(status.success());
    Ok(())
}

/// A leak in a systemd unit's cgroup: while it is warned, the daemon's
/// /metrics has its time to OOM; Prometheus gets the warnings counter and the
/// OTLP receiver a WARN log record `oomtrace.oom_warning` with the warning's
/// summary and figures.
fn a_warning_reaches_prometheus_and_the_otlp_receiver() -> Result<()> {
    let _components = components();
    let service = unique("svc-warn");
    let mark = otlp_mark();
    let name = unique("daemon-warn");
    let unit = format!("{name}.service");
    let limit = 128 * MIB;
    let cgroup = MemCgroup::create(&format!("{name}.slice/{unit}"), Some(limit))?;
    let daemon = daemon(&service, Transport::Grpc, Duration::from_secs(1), &[])?;
    observability::set_scrape_target(&daemon.address).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, Duration::from_secs(30)).context("first scrape")?;
    let _leak = Running::start(&cgroup, &Workload::Leak { bytes_per_second: 12 * MIB })?;
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let mut seconds_to_oom = 0.0;
    while seconds_to_oom <= 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        seconds_to_oom = daemon.metric("oomtrace_seconds_to_oom", Some(("unit", unit.as_str())))?;
    }
    anyhow::ensure!(seconds_to_oom > 0.0 && seconds_to_oom < 11.0, "oomtrace_seconds_to_oom {seconds_to_oom}");
    let is_the_warning = |l: &LogRecord| {
        l.event_name.as_deref() == Some("oomtrace.oom_warning")
            && l.attr_str("oomtrace.cgroup.path") == Some(&cgroup.path)
    };
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| r.for_service(&service).log_records().iter().any(is_the_warning),
        DELIVERY_TIMEOUT,
    )
    .context("the warning's log record")?;
    let records = received.for_service(&service).log_records();
    let record = records.iter().find(|l| is_the_warning(l)).context("record")?;
    assert_eq!(record.severity_number, 13, "WARN: {:?}", record.raw);
    assert_eq!(record.attr_str("oomtrace.warning.state"), Some("warning"), "{:?}", record.raw);
    assert_eq!(record.attr_str("oomtrace.warning.limit_level"), Some("cgroup"), "{:?}", record.raw);
    assert_eq!(record.attr_i64("oomtrace.warning.limit_bytes"), Some(limit as i64), "{:?}", record.raw);
    let body = record.body.as_str().unwrap_or_default();
    assert!(body.contains(&format!("`{unit}` will reach its 128 MiB limit")), "{body}");
    let query = format!(r#"oomtrace_oom_warnings_total{{unit="{unit}",state="warning"}}"#);
    let series =
        observability::wait_for_series(&query, |s| !s.is_empty(), DELIVERY_TIMEOUT).context("series in Prometheus")?;
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(observability::sample_value(&series[0]), Some(1.0), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "limit_level"), Some("cgroup"), "{series:?}");
    let (status, _) = daemon.terminate()?;
    assert!(status.success());
    Ok(())
}

/// Every watched cgroup has a headroom gauge, not only a warned one: a
/// process holding a steady 80 MiB in a 128 MiB unit (no climb, no warning)
/// has `oomtrace_oom_headroom_bytes` = its limit − what its own files say
/// reclaim cannot give back, in Prometheus; the series goes once the cgroup
/// is removed. The watcher's own counters are on /metrics too.
fn a_watched_cgroups_headroom_reaches_prometheus_until_it_is_removed() -> Result<()> {
    let _components = components();
    let name = unique("daemon-gauge");
    let unit = format!("{name}.service");
    let limit = 128 * MIB;
    let held = 80 * MIB;
    let cgroup = MemCgroup::create(&format!("{name}.slice/{unit}"), Some(limit))?;
    let daemon = daemon(&unique("svc-gauge"), Transport::Grpc, Duration::from_secs(1), &[])?;
    observability::set_scrape_target(&daemon.address).context("scrape target")?;
    observability::wait_for_scrape(&daemon.address, Duration::from_secs(30)).context("first scrape")?;
    let steady = Running::start(&cgroup, &Workload::Steady { bytes: held })?;

    // The gauge is the watcher's last reading of memory.stat (at every
    // reading, every 100 ms, once usage is over half the limit), at most 2 s
    // old when Prometheus scrapes it; the process holds its memory unchanged
    // meanwhile. What may still differ between that reading and this test's:
    // the kernel's memcg statistics are per-CPU deltas folded in once they
    // pass 64 pages per CPU (MEMCG_CHARGE_BATCH, the stats flush threshold),
    // and kernel memory allocated and freed in between (slab, page tables):
    // 64 pages per CPU, and at least 1 MiB.
    let tolerance = (64 * page_size() as u64 * online_cpus()?).max(MIB);
    let query = format!(r#"oomtrace_oom_headroom_bytes{{instance="{}",unit="{unit}"}}"#, daemon.address);
    let mut expected = None;
    let series = observability::wait_for_series(
        &query,
        |series| {
            let Ok(unreclaimable) = unreclaimable_bytes(&cgroup) else { return false };
            let headroom = limit.saturating_sub(unreclaimable);
            expected = Some(headroom);
            unreclaimable >= held
                && series.len() == 1
                && observability::sample_value(&series[0])
                    .is_some_and(|v| (v - headroom as f64).abs() <= tolerance as f64)
        },
        DELIVERY_TIMEOUT,
    )
    .with_context(|| format!("the headroom of {unit}: expected {expected:?} ± {tolerance} bytes"))?;
    assert_eq!(observability::series_label(&series[0], "limit_level"), Some("cgroup"), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "pod"), None, "{series:?}");
    // The watcher's counters: it watches this cgroup, and has read its memory.stat.
    assert!(daemon.metric("oomtrace_watch_cgroups", None)? >= 1.0);
    assert!(daemon.metric("oomtrace_watch_scans_total", None)? >= 1.0);
    assert!(daemon.metric("oomtrace_watch_stat_reads_total", None)? >= 1.0);
    let (_, text) = http::get(&daemon.address, "/metrics")?;
    assert!(text.lines().any(|l| l.starts_with("oomtrace_watch_read_errors_total ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("oomtrace_watch_cgroups_unexported ")), "{text}");

    drop(steady);
    drop(cgroup);
    observability::wait_for_series(&query, |series| series.is_empty(), DELIVERY_TIMEOUT)
        .context("the series of the removed cgroup")?;
    let (_, text) = http::get(&daemon.address, "/metrics")?;
    let left: Vec<_> = observability::parse_exposition(&text)
        .into_iter()
        .filter(|(_, labels, _)| labels.get("unit") == Some(&unit))
        .filter(|(metric, _, _)| metric == "oomtrace_oom_headroom_bytes" || metric == "oomtrace_seconds_to_oom")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (status, _) = daemon.terminate()?;
    assert!(status.success());
    Ok(())
}

/// What the cgroup's own files say reclaim cannot give back without swap
/// (docs/warnings.md: anon + shmem + kernel + dirty + under writeback), from
/// the kernel's documented keys: on v2 `memory.stat`'s `anon`, `shmem`,
/// `kernel` (before 5.18 its parts), `file_dirty`, `file_writeback`; on v1 its
/// hierarchical `total_rss`, `total_shmem`, `total_dirty`, `total_writeback`,
/// and kernel memory in `memory.kmem.usage_in_bytes` (absent: not accounted).
fn unreclaimable_bytes(cgroup: &MemCgroup) -> Result<u64> {
    let stat = std::fs::read_to_string(cgroup.dir.join("memory.stat")).context("memory.stat")?;
    let value = |key: &str| {
        stat.lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    let sum = |keys: &[&str]| keys.iter().map(|k| value(k).unwrap_or(0)).sum::<u64>();
    Ok(if cgroup.hierarchy.is_v2() {
        let kernel = value("kernel")
            .unwrap_or_else(|| sum(&["kernel_stack", "pagetables", "percpu", "sock", "slab_unreclaimable"]));
        sum(&["anon", "shmem", "file_dirty", "file_writeback"]) + kernel
    } else {
        let kernel = std::fs::read_to_string(cgroup.dir.join("memory.kmem.usage_in_bytes"))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(0);
        sum(&["total_rss", "total_shmem", "total_dirty", "total_writeback"]) + kernel
    })
}

/// CPUs online (`cpuN` lines of /proc/stat).
fn online_cpus() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
    let cpus =
        stat.lines().filter(|l| l.strip_prefix("cpu").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())));
    Ok(cpus.count() as u64)
}

fn a_collector_outage_is_survived_counted_and_caught_up() -> Result<()> {
    let _components = components();
    const KILLS: usize = 3;
    const QUEUE: usize = 2;
    let service = unique("svc-outage");
    let cgroup = MemCgroup::create(&unique("daemon-outage"), Some(LIMIT))?;
    let daemon = daemon(&service, Transport::Grpc, Duration::from_secs(1), &["--otlp-queue", &QUEUE.to_string()])?;

    let outage = observability::otlp_outage().context("stop the receiver")?;
    let mark = otlp_mark();
    let pids = (0..KILLS).map(|_| cgroup.oom_kill_hog(256 * MIB)).collect::<Result<Vec<u32>>>()?;
    // The daemon keeps tracing and counts the failed attempts.
    wait_for_an_export_failure(
        &daemon,
        "no export failure counted while the receiver was down",
        Duration::from_millis(200),
    )?;
    assert_eq!(http::get(&daemon.address, "/healthz")?.0, 200);
    let kills_seen = daemon.metric("oomtrace_oom_kills_total", None)?;
    assert!(kills_seen >= KILLS as f64, "the daemon traced all {KILLS} kills during the outage: {kills_seen}");
    // Three kills into a queue of two: the oldest is dropped, and counted,
    // once the requests that carried them have failed (up to 4 are out at
    // once; a record on its way may yet be delivered, so it is dropped only
    // when its request fails). Then two are left, no more dropped.
    let dropped = wait_for_otlp_metric(
        &daemon,
        "oomtrace_exporter_dropped_total",
        1.0,
        "no record dropped from a full queue",
        Duration::from_millis(100),
    )?;
    assert_eq!(dropped, (KILLS - QUEUE) as f64);
    assert_eq!(daemon.metric("oomtrace_exporter_queued", Some(("exporter", "otlp")))?, QUEUE as f64);

    outage.end().context("restart the receiver")?;
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| {
            let records = r.for_service(&service).log_records();
            pids[KILLS - QUEUE..]
                .iter()
                .all(|pid| records.iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(*pid))))
        },
        DELIVERY_TIMEOUT,
    );
    assert!(received.is_ok(), "queued events delivered after the outage: {received:?}");
    let records = received?.for_service(&service).log_records();
    assert!(
        !records.iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(pids[0]))),
        "the dropped (oldest) event must not appear"
    );
    let (status, _) = daemon.terminate()?;
    assert!(status.success());
    Ok(())
}

fn sigterm_flushes_what_is_queued() -> Result<()> {
    let _components = components();
    let service = unique("svc-flush");
    let cgroup = MemCgroup::create(&unique("daemon-flush"), Some(LIMIT))?;
    let daemon = daemon(&service, Transport::Grpc, Duration::from_secs(60), &[])?;
    let outage = observability::otlp_outage().context("stop the receiver")?;
    let mark = otlp_mark();
    let pid = cgroup.oom_kill_hog(256 * MIB)?;
    // Let the export fail at least once so the event sits in the queue, backing off.
    wait_for_an_export_failure(&daemon, "no failed attempt", Duration::from_millis(100))?;
    outage.end().context("restart the receiver")?;
    let (status, took) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(6), "SIGTERM took {took:?}");
    let received = OtlpReceived::read_since(mark)?.for_service(&service);
    assert!(
        received.log_records().iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(pid))),
        "the queued event was delivered before exit: {}",
        received.summary()
    );
    Ok(())
}

/// The PEM files of a test PKI: a CA, the receiver's certificate signed by it
/// and the same receiver's certificate signed by an impostor CA the daemon
/// does not trust, and a client certificate signed by the CA (mutual TLS).
struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    fn make(dir: std::path::PathBuf) -> Result<Self> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, pem: &str| {
            std::fs::write(dir.join(name), pem).with_context(|| format!("writing {name} in {}", dir.display()))
        };
        let ca = |name: &str| -> Result<CertifiedIssuer<'static, KeyPair>> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
            Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
        };
        let leaf =
            |names: Vec<String>, usage, issuer: &CertifiedIssuer<'static, KeyPair>| -> Result<(String, String)> {
                let mut params = CertificateParams::new(names)?;
                params.distinguished_name.push(DnType::CommonName, "oomtrace test");
                params.extended_key_usages = vec![usage];
                let key = KeyPair::generate()?;
                Ok((params.signed_by(&key, issuer)?.pem(), key.serialize_pem()))
            };
        let trusted = ca("oomtrace test CA")?;
        let impostor = ca("impostor CA")?;
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        write("ca.pem", &trusted.pem())?;
        let (cert, key) = leaf(names.clone(), ExtendedKeyUsagePurpose::ServerAuth, &trusted)?;
        write("server.pem", &cert)?;
        write("server-key.pem", &key)?;
        let (cert, key) = leaf(names, ExtendedKeyUsagePurpose::ServerAuth, &impostor)?;
        write("impostor-server.pem", &cert)?;
        write("impostor-server-key.pem", &key)?;
        let (cert, key) = leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, &trusted)?;
        write("client.pem", &cert)?;
        write("client-key.pem", &key)?;
        Ok(Pki { dir })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// What the receiver serves: its certificate by the trusted CA or by the
    /// impostor; it requires a client certificate signed by the trusted CA.
    fn sink_tls(&self, impostor: bool) -> SinkTls {
        let prefix = if impostor { "impostor-" } else { "" };
        SinkTls {
            cert: self.path(&format!("{prefix}server.pem")),
            key: self.path(&format!("{prefix}server-key.pem")),
            client_ca: Some(self.path("ca.pem")),
        }
    }
}

/// OTLP over TLS with the standard variables, both stacks at once: logs over
/// gRPC (tonic) and metrics over HTTP (reqwest), both on rustls, to a real
/// receiver that requires a client certificate. First the receiver presents
/// a certificate of a CA the daemon does not trust: every export is refused,
/// counted and logged, and the kill stays queued. Then the receiver comes
/// back with a certificate of the trusted CA on the same ports: the queued
/// kill is delivered, over TLS, with its attributes.
fn otlp_over_mutual_tls_is_refused_on_a_wrong_ca_and_delivered_on_the_right_one() -> Result<()> {
    let _components = components();
    let scratch = std::env::temp_dir().join(unique("otlp-tls"));
    let pki = Pki::make(scratch.join("pki"))?;
    let grpc = format!("127.0.0.1:{}", free_port()?);
    let http = format!("127.0.0.1:{}", free_port()?);
    let mut sink = Sink::start(&scratch, &grpc, &http, Some(&pki.sink_tls(true))).context("the TLS receiver")?;

    let service = unique("svc-tls");
    let env = vec![
        ("OTEL_SERVICE_NAME", service.clone()),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", format!("https://{grpc}")),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc".to_owned()),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("https://{http}/v1/metrics")),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem").display().to_string()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pki.path("client.pem").display().to_string()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.path("client-key.pem").display().to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_owned()),
    ];
    let daemon = Daemon::start(oomtrace(), env, &["--kernel-log", "false"])?;
    let cgroup = MemCgroup::create(&unique("daemon-tls"), Some(LIMIT))?;
    let pid = cgroup.oom_kill_hog(256 * MIB)?;

    // The wrong CA: refused, counted, logged; the kill waits in the queue.
    wait_for_an_export_failure(
        &daemon,
        "no export failure counted against the impostor's certificate",
        Duration::from_millis(200),
    )?;
    let queued = daemon.metric("oomtrace_exporter_queued", Some(("exporter", "otlp")))?;
    // At least ours: the daemon exports every kill of the host, and other
    // tests on this machine may be making kills meanwhile.
    assert!(queued >= 1.0, "the kill stays queued while the receiver is not trusted: {queued}");
    assert_eq!(daemon.metric("oomtrace_exporter_dropped_total", Some(("exporter", "otlp")))?, 0.0);
    let log = daemon.log_text();
    let refused = log.lines().find(|l| l.contains("OTLP export failed; keeping events queued"));
    assert!(refused.is_some(), "{log}");
    let failures = daemon.metric("oomtrace_exporter_failures_total", Some(("exporter", "otlp")))?;
    eprintln!("wrong CA: failures {failures}, queued {queued}; logged: {}", refused.unwrap_or_default());
    let nothing = OtlpReceived::read_file_since(&sink.out, 0)?.for_service(&service);
    assert!(nothing.log_records().is_empty(), "nothing may reach an untrusted receiver: {}", nothing.summary());

    // The right CA, same ports: the queued kill arrives over TLS.
    sink.stop();
    let mut sink = Sink::start(&scratch, &grpc, &http, Some(&pki.sink_tls(false))).context("the trusted receiver")?;
    let is_ours = |l: &LogRecord| l.attr_i64("process.pid") == Some(i64::from(pid));
    let received = OtlpReceived::wait_until_in(
        &sink.out,
        0,
        |r| r.for_service(&service).log_records().iter().any(is_ours),
        DELIVERY_TIMEOUT,
    )
    .with_context(|| format!("the queued kill over TLS; receiver log:\n{}", sink.log_text()))?;
    let records = received.for_service(&service).log_records();
    let record = records.iter().find(|l| is_ours(l)).context("record")?;
    eprintln!(
        "right CA: delivered over {} with {} attributes, resource {:?}",
        record.transport,
        record.attributes.len(),
        record.resource
    );
    assert_eq!(record.transport, "grpc");
    assert_eq!(record.attr_str("oomtrace.cgroup.path"), Some(cgroup.path.as_str()), "{:?}", record.attributes);
    assert_eq!(record.attr_i64("oomtrace.oom_memcg.limit_bytes"), Some(LIMIT as i64), "{:?}", record.attributes);
    assert_eq!(record.attr_bool("oomtrace.killed"), Some(true), "{:?}", record.attributes);
    let event = std::iter::from_fn(|| daemon.expect_event(Duration::from_secs(5)).ok())
        .find(|e| e.victim.pid == pid)
        .context("no event on stdout for the victim")?;
    assert_the_record_carries_the_diagnosis(record, &event);
    // The kill counter over HTTPS (reqwest), with the same client certificate.
    let received = OtlpReceived::wait_until_in(
        &sink.out,
        0,
        |r| r.for_service(&service).metric_points("oomtrace.oom_kills").iter().any(|p| p.value >= Some(1.0)),
        DELIVERY_TIMEOUT,
    )
    .context("the kill counter over HTTPS")?;
    assert!(received.requests_of("metrics").all(|r| r["transport"] == "http"), "{}", received.summary());
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while daemon.metric("oomtrace_exporter_queued", Some(("exporter", "otlp")))? > 0.0 {
        assert!(Instant::now() < deadline, "the queue never emptied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    sink.stop();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// A real collector in the path (rotel, from PyPI): the daemon exports over
/// OTLP/gRPC to rotel, rotel forwards to a receiver of the test's own. What
/// arrives there is what a backend behind a collector sees: the kill's log
/// record with its one-prefix attributes, the advice, the node and the agent
/// on the resource, and the kill counter.
fn a_real_collector_forwards_the_kill_with_its_attributes() -> Result<()> {
    let _components = components();
    let scratch = std::env::temp_dir().join(unique("otlp-rotel"));
    std::fs::create_dir_all(&scratch)?;
    let sink =
        Sink::start(&scratch, &format!("127.0.0.1:{}", free_port()?), &format!("127.0.0.1:{}", free_port()?), None)?;
    let rotel_grpc = format!("127.0.0.1:{}", free_port()?);
    let rotel_http = format!("127.0.0.1:{}", free_port()?);
    let rotel = Rotel::start(&scratch, &rotel_grpc, &rotel_http, &sink.grpc).context("rotel")?;
    eprintln!("collector: {}", rotel.version());

    let service = unique("svc-rotel");
    let name = unique("daemon-rotel");
    let unit = format!("{name}.service");
    let cgroup = MemCgroup::create(&format!("{name}.slice/{unit}"), Some(LIMIT))?;
    let env = vec![
        ("OTEL_SERVICE_NAME", service.clone()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{rotel_grpc}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_owned()),
    ];
    let daemon = Daemon::start(oomtrace(), env, &["--kernel-log", "false"])?;
    let pid = cgroup.oom_kill_hog(256 * MIB)?;
    let is_ours = |l: &LogRecord| l.attr_i64("process.pid") == Some(i64::from(pid));
    let received = OtlpReceived::wait_until_in(
        &sink.out,
        0,
        |r| {
            let ours = r.for_service(&service);
            ours.log_records().iter().any(is_ours)
                && ours
                    .metric_points("oomtrace.oom_kills")
                    .iter()
                    .any(|p| p.attr_str("oomtrace.systemd.unit") == Some(unit.as_str()) && p.value == Some(1.0))
        },
        DELIVERY_TIMEOUT,
    )
    .with_context(|| format!("through rotel; its log:\n{}", rotel.log_text()))?;
    let ours = received.for_service(&service);
    let records = ours.log_records();
    let record = records.iter().find(|l| is_ours(l)).context("record")?;
    eprintln!("through rotel: resource {:?}", record.resource);
    eprintln!("through rotel: attributes {:?}", record.attributes);
    assert_eq!(record.event_name.as_deref(), Some("oomtrace.oom_kill"), "{:?}", record.raw);
    assert_eq!(record.attr_str("oomtrace.cgroup.path"), Some(cgroup.path.as_str()));
    assert_eq!(record.attr_str("oomtrace.scope"), Some("memcg"));
    assert_eq!(record.attr_str("oomtrace.systemd.unit"), Some(unit.as_str()));
    assert_eq!(record.attr_str("oomtrace.source"), Some("ebpf"));
    assert_eq!(record.attr_i64("oomtrace.oom_memcg.limit_bytes"), Some(LIMIT as i64));
    assert_eq!(record.attr_bool("oomtrace.killed"), Some(true));
    let event = std::iter::from_fn(|| daemon.expect_event(Duration::from_secs(5)).ok())
        .find(|e| e.victim.pid == pid)
        .context("no event on stdout for the victim")?;
    assert!(event.diagnosis.as_ref().is_some_and(|d| !d.advice.is_empty()), "a unit at its limit has advice: {event}");
    assert_the_record_carries_the_diagnosis(record, &event);
    let point = ours
        .metric_points("oomtrace.oom_kills")
        .into_iter()
        .find(|p| p.attr_str("oomtrace.systemd.unit") == Some(unit.as_str()))
        .context("the kill counter")?;
    assert_eq!(point.attr_str("oomtrace.scope"), Some("memcg"), "{point:?}");
    assert_eq!(point.attr_str("oomtrace.diagnosis.cause"), Some("cgroup_limit"), "{point:?}");
    let (status, _) = daemon.terminate()?;
    assert!(status.success(), "{status}");
    drop(rotel);
    drop(sink);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// A certificate variable naming a missing file, or a key file without a
/// key, stops the daemon at startup with the variable and the file named.
fn an_unusable_otlp_certificate_stops_the_daemon_at_startup() -> Result<()> {
    let dir = std::env::temp_dir().join(unique("otlp-bad-pem"));
    std::fs::create_dir_all(&dir)?;
    let not_a_key = dir.join("key.pem");
    std::fs::write(&not_a_key, "this is not PEM\n")?;
    let missing = dir.join("missing-ca.pem");
    let cases = [
        vec![("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", missing.clone())],
        vec![
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", not_a_key.clone()),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", not_a_key.clone()),
        ],
    ];
    for case in cases {
        let mut command = Command::new(oomtrace());
        command
            .args(["daemon", "--metrics-address", &format!("127.0.0.1:{}", free_port()?), "--kernel-log", "false"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:1")
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
        for (variable, path) in &case {
            command.env(variable, path);
        }
        let out = command.output().context("run daemon")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case:?}: {stderr}");
        let (variable, path) = &case[0];
        assert!(stderr.contains(variable) && stderr.contains(&*path.to_string_lossy()), "{case:?}: {stderr}");
        assert_eq!(stderr.matches(&*path.to_string_lossy()).count(), 1, "the cause once: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn a_malformed_config_is_a_clear_error() -> Result<()> {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("bad-config")));
    std::fs::write(&path, "metrics_adress = \"0.0.0.0:1\"\n").context("write config")?;
    let out = Command::new(oomtrace()).args(["daemon", "--config"]).arg(&path).output().context("run daemon")?;
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics_adress") && stderr.contains(&*path.to_string_lossy()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

/// The error names the file and the operating system's reason, once: an
/// error that prints its cause in its message does not also chain it.
fn a_missing_config_names_its_cause_once() -> Result<()> {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("no-config")));
    let out = Command::new(oomtrace()).args(["daemon", "--config"]).arg(&path).output().context("run daemon")?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&*path.to_string_lossy()), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory (os error 2)").count(), 1, "{stderr}");
    Ok(())
}

/// Past kills from the kernel log, exactly once across restarts: the daemon
/// keeps its position in the log (and the kills it reported) in --state-dir.
/// A kill made while it is down comes at the next start as a `kernel_log`
/// event, is counted apart from live kills, and comes at no later start; no
/// kill the first run reported is reported again.
fn a_kill_while_the_daemon_was_down_is_reported_once_at_restart() -> Result<()> {
    let _components = components();
    let state = std::env::temp_dir().join(unique("daemon-state"));
    let state_arg = state.display().to_string();
    let args = ["--state-dir", state_arg.as_str()];
    // Past kills of this boot come ~2 s after start (no live event claims
    // them); the state is saved every second and on SIGTERM.
    let quiet = Duration::from_secs(4);
    let first = Daemon::start(oomtrace(), Vec::new(), &args)?;
    let first_pids: Vec<u32> = first.drain(quiet).iter().map(|e| e.victim.pid).collect();
    first.terminate()?;

    let cgroup = MemCgroup::create(&unique("while-down"), Some(LIMIT))?;
    let pid = cgroup.oom_kill_hog(256 * MIB)?;

    let second = Daemon::start(oomtrace(), Vec::new(), &args)?;
    let events = second.drain(quiet);
    let ours: Vec<_> = events.iter().filter(|e| e.victim.pid == pid).collect();
    assert_eq!(ours.len(), 1, "the kill while down, once: {events:#?}");
    let event = ours[0];
    assert_eq!(event.source, "kernel_log", "{event}");
    assert_eq!(event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()), Some(cgroup.path.as_str()), "{event}");
    assert_eq!(event.oom_cgroup.as_ref().and_then(|c| c.limit_bytes), Some(LIMIT), "{event}");
    let again: Vec<_> =
        events.iter().filter(|e| e.source == "kernel_log" && first_pids.contains(&e.victim.pid)).collect();
    assert!(again.is_empty(), "kills the first run reported, reported again: {again:#?}");
    assert!(second.metric("oomtrace_kernel_log_oom_kills_total", None)? >= 1.0);
    assert!(second.metric("oomtrace_kernel_oom_kills", None)? >= 1.0);
    second.terminate()?;

    let third = Daemon::start(oomtrace(), Vec::new(), &args)?;
    let events = third.drain(quiet);
    assert!(events.iter().all(|e| e.victim.pid != pid), "reported twice: {events:#?}");
    third.terminate()?;
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

/// With the kernel log read (the daemon's default), a live kill is exported
/// at once and its kernel report after it: a log record
/// `oomtrace.oom_kernel_report` at the kill's time with its `thread.id`, the
/// report's largest task and memcg, and the diagnosis revised with it.
fn a_live_kills_kernel_report_follows_it_to_the_otlp_receiver() -> Result<()> {
    let _components = components();
    let service = unique("svc-report");
    let state = std::env::temp_dir().join(unique("daemon-report-state"));
    let state_arg = state.display().to_string();
    let mut env = observability::otlp_env(Transport::Grpc, Duration::from_secs(1));
    env.push(("OTEL_SERVICE_NAME", service.clone()));
    let cgroup = MemCgroup::create(&unique("daemon-report"), Some(LIMIT))?;
    let daemon =
        Daemon::start_reading(oomtrace(), env, &["--state-dir", state_arg.as_str()], ReportRecord::victim_and_ktime)?;
    let mark = otlp_mark();
    // The report is printed only outside the kernel's rate limit.
    dmesg::wait_for_whole_reports();
    let pid = cgroup.oom_kill_hog(256 * MIB)?;
    let is_kill = |l: &LogRecord| l.attr_i64("process.pid") == Some(i64::from(pid));
    let is_report = |l: &LogRecord| {
        l.event_name.as_deref() == Some("oomtrace.oom_kernel_report") && l.attr_i64("thread.id") == Some(i64::from(pid))
    };
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| {
            let records = r.for_service(&service).log_records();
            records.iter().any(is_kill) && records.iter().any(is_report)
        },
        DELIVERY_TIMEOUT,
    )
    .with_context(|| format!("the kill and its report; the daemon's log:\n{}", daemon.log_text()))?;
    let records = received.for_service(&service).log_records();
    let kill = records.iter().find(|l| is_kill(l)).context("the kill")?;
    let report = records.iter().find(|l| is_report(l)).context("the report")?;
    assert_eq!(kill.event_name.as_deref(), Some("oomtrace.oom_kill"), "{:?}", kill.raw);
    assert_eq!(report.time_unix_nano, kill.time_unix_nano, "the report is at its kill's time: {:?}", report.raw);
    assert_eq!(report.severity_text.as_deref(), Some("INFO"), "{:?}", report.raw);
    assert_eq!(report.attr_i64("oomtrace.kernel_report.largest_task.pid"), Some(i64::from(pid)), "{:?}", report.raw);
    assert_eq!(
        report.attr_str("oomtrace.kernel_report.memory_stat_cgroup"),
        Some(cgroup.path.as_str()),
        "{:?}",
        report.raw
    );
    assert!(report.attributes.contains_key("oomtrace.diagnosis.findings"), "{:?}", report.raw);
    assert_eq!(report.attr_str("process.executable.name"), Some("dd"), "{:?}", report.raw);
    // Its body is the revised summary the daemon wrote on stdout.
    let written = std::iter::from_fn(|| daemon.next_line(Duration::from_secs(5)))
        .map(|line| ReportRecord::parse(&line))
        .find(|record| record.as_ref().is_ok_and(|r| r.victim_pid == pid))
        .with_context(|| format!("no kernel report of pid {pid} on the daemon's stdout"))??;
    assert_eq!(report.body.as_str(), Some(written.diagnosis.summary.as_str()), "{:?}", report.raw);
    daemon.terminate()?;
    std::fs::remove_dir_all(&state)?;
    Ok(())
}
