//! `oomtrace daemon` against real components: a Prometheus server scrapes it,
//! an OTLP receiver gets its logs and metrics over gRPC and HTTP, the receiver
//! goes down and comes back, and SIGTERM flushes what is queued.

#[path = "support/cri.rs"]
mod cri;
#[path = "support/observability.rs"]
mod observability;
mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use observability::{OtlpReceived, Transport};
use support::{MemCgroup, privileged, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const NAMESPACE: &str = "oomtrace-test";
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One daemon test at a time: they share Prometheus' target and the receiver.
static SHARED_COMPONENTS: Mutex<()> = Mutex::new(());

/// Root and the observability components, or None after printing why the
/// test is skipped (OOMTRACE_TEST_REQUIRE_OBSERVABILITY makes that a failure).
fn components(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if !privileged(test) {
        return None;
    }
    let required = std::env::var_os("OOMTRACE_TEST_REQUIRE_OBSERVABILITY").is_some_and(|v| !v.is_empty() && v != "0");
    if let Err(reason) = observability::prometheus_available().and_then(|_| observability::otlp_available()) {
        assert!(!required, "{test}: {reason} (and OOMTRACE_TEST_REQUIRE_OBSERVABILITY is set)");
        println!("SKIPPED {test}: {reason}");
        return None;
    }
    Some(SHARED_COMPONENTS.lock().unwrap_or_else(|p| p.into_inner()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A running `oomtrace daemon`, stopped on drop.
struct Daemon {
    child: Child,
    address: String,
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Daemon {
    fn start(service: &str, env: &[(String, String)], args: &[&str]) -> Daemon {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
            .args(["daemon", "--metrics-address", &address, "--log-format", "json"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("OTEL_SERVICE_NAME", service)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn oomtrace daemon");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let daemon = Daemon { child, address, stdout: rx };
        let deadline = Instant::now() + Duration::from_secs(20);
        while observability::http_get(&daemon.address, "/readyz").map(|(s, _)| s) != Ok(200) {
            assert!(Instant::now() < deadline, "daemon on {} never became ready", daemon.address);
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        let (status, text) = observability::http_get(&self.address, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        observability::parse_exposition(&text)
            .into_iter()
            .filter(|(n, labels, _)| {
                n == name && label.is_none_or(|(k, v)| labels.get(k).map(String::as_str) == Some(v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// SIGTERM; returns how long the exit took.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            assert!(started.elapsed() < Duration::from_secs(15), "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_container_kill_reaches_prometheus_and_the_otlp_receiver() {
    let test = "prometheus_and_otlp";
    let Some(_components) = components(test) else { return };
    let Some(client) = cri::connect_or_skip(test) else { return };
    let prometheus = observability::prometheus_available().expect("prometheus");
    let service = unique("svc");
    let mark = OtlpReceived::mark();
    let env = observability::otlp_env(Transport::Grpc, Duration::from_secs(1));
    let daemon = Daemon::start(&service, &env, &["--cri-socket", client.socket()]);
    observability::set_scrape_target(&daemon.address).expect("scrape target");
    observability::wait_for_scrape(&prometheus, &daemon.address, Duration::from_secs(30)).expect("first scrape");

    let pod_name = unique("shop");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let id = client.run_container(&pod, "cart", &["hog", "256", "1"], Some(LIMIT)).expect("run hog");
    let pid = client.container_status(&id).expect("status").pid;
    let (exit_code, reason) = client.wait_exited(&id, Duration::from_secs(30)).expect("hog exits");
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));

    // Prometheus' own query API returns the kill for that pod.
    let query = format!(r#"oomtrace_oom_kills_total{{namespace="{NAMESPACE}",pod="{pod_name}",container="cart"}}"#);
    let series = observability::wait_for_series(&prometheus, &query, |s| !s.is_empty(), DELIVERY_TIMEOUT)
        .expect("series in Prometheus");
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(observability::sample_value(&series[0]), Some(1.0), "{series:?}");
    assert_eq!(observability::series_label(&series[0], "scope"), Some("memcg"));

    // The receiver has the log record with the k8s/process attributes and the memory fields.
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| r.for_service(&service).log_records().iter().any(|l| l.attr_str("k8s.pod.name") == Some(pod_name.as_str())),
        DELIVERY_TIMEOUT,
    )
    .expect("log record delivered");
    let ours = received.for_service(&service);
    let records = ours.log_records();
    let record = records.iter().find(|l| l.attr_str("k8s.pod.name") == Some(pod_name.as_str())).expect("record");
    assert_eq!(record.transport, "grpc");
    assert_eq!(record.attr_str("k8s.namespace.name"), Some(NAMESPACE));
    assert_eq!(record.attr_str("k8s.container.name"), Some("cart"));
    assert_eq!(record.attr_str("container.id"), Some(id.as_str()));
    assert_eq!(record.attr_str("k8s.pod.uid"), Some(pod.uid.as_str()));
    assert_eq!(record.attr_i64("process.pid"), Some(i64::from(pid)));
    assert_eq!(record.attr_str("process.executable.name"), Some("hog"));
    assert_eq!(record.attr_i64("oom.memcg.limit_bytes"), Some(LIMIT as i64));
    assert!(
        record.attr_i64("oom.victim.anon_rss_bytes").is_some_and(|b| b > 32 * MIB as i64),
        "{:?}",
        record.attributes
    );
    assert_eq!(record.attr_bool("oom.killed"), Some(true));
    assert_eq!(record.event_name.as_deref(), Some("oomtrace.oom_kill"));

    // ... and the kill counter as an OTLP metric.
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| {
            r.for_service(&service)
                .metric_points("oomtrace.oom_kills")
                .iter()
                .any(|p| p.attr_str("k8s.pod.name") == Some(pod_name.as_str()) && p.value == Some(1.0))
        },
        DELIVERY_TIMEOUT,
    );
    assert!(received.is_ok(), "{received:?}");

    // NDJSON on stdout names the pod too.
    let line = daemon.stdout.recv_timeout(Duration::from_secs(5)).expect("an NDJSON line");
    let event: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(event["workload"]["pod"], pod_name.as_str(), "{event}");

    let (status, took) = daemon.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    client.remove_pod(pod).expect("remove pod");
}

#[test]
fn otlp_over_http_delivers_the_kill() {
    let test = "otlp_http";
    let Some(_components) = components(test) else { return };
    let service = unique("svc-http");
    let mark = OtlpReceived::mark();
    let env = observability::otlp_env(Transport::HttpProtobuf, Duration::from_secs(1));
    let cgroup = MemCgroup::create(&unique("daemon-http"), Some(LIMIT));
    let daemon = Daemon::start(&service, &env, &[]);
    let pid = cgroup.oom_kill_hog(256 * MIB);
    let received = OtlpReceived::wait_until_since(
        mark,
        |r| r.for_service(&service).log_records().iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(pid))),
        DELIVERY_TIMEOUT,
    )
    .expect("log record over HTTP");
    let records = received.for_service(&service).log_records();
    let record = records.iter().find(|l| l.attr_i64("process.pid") == Some(i64::from(pid))).expect("record");
    assert_eq!(record.transport, "http");
    assert_eq!(record.attr_str("oom.cgroup.path"), Some(cgroup.path.as_str()));
    assert_eq!(record.attr_str("oom.scope"), Some("memcg"));
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn a_collector_outage_is_survived_counted_and_caught_up() {
    let test = "collector_outage";
    let Some(_components) = components(test) else { return };
    const KILLS: usize = 3;
    const QUEUE: usize = 2;
    let service = unique("svc-outage");
    let env = observability::otlp_env(Transport::Grpc, Duration::from_secs(1));
    let cgroup = MemCgroup::create(&unique("daemon-outage"), Some(LIMIT));
    let daemon = Daemon::start(&service, &env, &["--otlp-queue", &QUEUE.to_string()]);

    observability::otlp_stop().expect("stop the receiver");
    let mark = OtlpReceived::mark();
    let pids: Vec<u32> = (0..KILLS).map(|_| cgroup.oom_kill_hog(256 * MIB)).collect();
    // The daemon keeps tracing and counts the failed attempts.
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while daemon.metric("oomtrace_exporter_failures_total", Some(("exporter", "otlp"))) < 1.0 {
        assert!(Instant::now() < deadline, "no export failure counted while the receiver was down");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(observability::http_get(&daemon.address, "/healthz").map(|r| r.0), Ok(200));
    let kills_seen = daemon.metric("oomtrace_oom_kills_total", None);
    assert!(kills_seen >= KILLS as f64, "the daemon traced all {KILLS} kills during the outage: {kills_seen}");
    // Three kills into a queue of two: the oldest was dropped, and counted.
    assert_eq!(daemon.metric("oomtrace_exporter_dropped_total", Some(("exporter", "otlp"))), (KILLS - QUEUE) as f64);

    observability::otlp_start().expect("restart the receiver");
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
    let records = received.expect("checked").for_service(&service).log_records();
    assert!(
        !records.iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(pids[0]))),
        "the dropped (oldest) event must not appear"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn sigterm_flushes_what_is_queued() {
    let test = "sigterm_flush";
    let Some(_components) = components(test) else { return };
    let service = unique("svc-flush");
    let env = observability::otlp_env(Transport::Grpc, Duration::from_secs(60));
    let cgroup = MemCgroup::create(&unique("daemon-flush"), Some(LIMIT));
    let daemon = Daemon::start(&service, &env, &[]);
    observability::otlp_stop().expect("stop the receiver");
    let mark = OtlpReceived::mark();
    let pid = cgroup.oom_kill_hog(256 * MIB);
    // Let the export fail at least once so the event sits in the queue, backing off.
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while daemon.metric("oomtrace_exporter_failures_total", Some(("exporter", "otlp"))) < 1.0 {
        assert!(Instant::now() < deadline, "no failed attempt");
        std::thread::sleep(Duration::from_millis(100));
    }
    observability::otlp_start().expect("restart the receiver");
    let (status, took) = daemon.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(6), "SIGTERM took {took:?}");
    let received = OtlpReceived::read_since(mark).expect("read").for_service(&service);
    assert!(
        received.log_records().iter().any(|l| l.attr_i64("process.pid") == Some(i64::from(pid))),
        "the queued event was delivered before exit: {}",
        received.summary()
    );
}

#[test]
fn a_malformed_config_is_a_clear_error() {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("bad-config")));
    std::fs::write(&path, "metrics_adress = \"0.0.0.0:1\"\n").expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .args(["daemon", "--config"])
        .arg(&path)
        .output()
        .expect("run daemon");
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics_adress") && stderr.contains(&*path.to_string_lossy()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
