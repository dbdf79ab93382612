//! OpenTelemetry export (official `opentelemetry` / `opentelemetry-otlp`
//! crates), configured by the standard `OTEL_EXPORTER_OTLP_*` variables: each
//! kill is a log record with `k8s.*`, `container.*` and `process.*` attributes
//! plus the memory fields and the diagnosis (`oomtrace.diagnosis.*`, its
//! summary first in the body), and the kill counter is an OTLP metric.
//!
//! A collector that is down or slow must not stop tracing or lose events
//! silently: records wait in a bounded queue (oldest dropped and counted when
//! it is full) and are retried with exponential backoff until delivered.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use opentelemetry::{
    Array, InstrumentationScope, KeyValue, StringValue,
    logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity},
    metrics::{Counter, MeterProvider as _},
};
use opentelemetry_otlp::{LogExporter, MetricExporter};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogBatch, LogExporter as _, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider},
    metrics::{SdkMeterProvider, periodic_reader_with_async_runtime::PeriodicReader},
    runtime::Tokio,
};
use tokio::sync::Notify;

use super::labels;
use oomtrace_event::{OomEvent, Warning};

/// The log attributes the kill counter carries too: bounded (the pod names
/// are bounded by the SDK's cardinality limit, the others are enums or units).
const METRIC_ATTRIBUTES: [&str; 7] = [
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "oom.systemd.unit",
    "oom.scope",
    "oom.source",
    "oomtrace.diagnosis.cause",
];

/// Records exported per request.
const BATCH: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Minimum time between two warnings about a failing collector.
const WARN_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error(
        "cannot build the OTLP {signal} exporter: {reason} (check OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL)"
    )]
    Build { signal: &'static str, reason: String },
}

/// Export counters (absolute).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OtlpStats {
    pub delivered: u64,
    pub failures: u64,
    pub dropped: u64,
    pub queued: u64,
}

/// Whether the environment asks for OTLP export.
pub fn configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}

type Entry = (SdkLogRecord, InstrumentationScope);

/// The bounded queue between the logger and the export task.
struct Queue {
    entries: Mutex<VecDeque<Entry>>,
    bound: usize,
    wake: Notify,
    delivered: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
}

impl Queue {
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |q| q.len())
    }
}

/// A log processor that only enqueues; `export_loop` delivers.
#[derive(Clone)]
struct QueueingProcessor {
    queue: Arc<Queue>,
    exporter: Arc<LogExporter>,
}

impl std::fmt::Debug for QueueingProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueingProcessor").field("bound", &self.queue.bound).finish()
    }
}

impl LogProcessor for QueueingProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let mut entries = self.queue.entries.lock().unwrap_or_else(|p| p.into_inner());
        while entries.len() >= self.queue.bound {
            entries.pop_front();
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
        entries.push_back((record.clone(), scope.clone()));
        drop(entries);
        self.queue.wake.notify_one();
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(exporter) = Arc::get_mut(&mut self.exporter) {
            exporter.set_resource(resource);
        }
    }
}

pub struct OtlpExporter {
    logger: SdkLogger,
    logger_provider: SdkLoggerProvider,
    meter_provider: SdkMeterProvider,
    kills: Counter<u64>,
    queue: Arc<Queue>,
    exporter: Arc<LogExporter>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpExporter {
    /// Builds the exporters from the `OTEL_*` environment; must run inside a
    /// tokio runtime (the export task is spawned on it).
    pub fn from_env(queue_bound: usize) -> Result<Self, OtlpError> {
        let resource = Resource::builder().with_service_name(service_name()).build();
        let mut log_exporter =
            LogExporter::builder().build().map_err(|e| OtlpError::Build { signal: "logs", reason: e.to_string() })?;
        log_exporter.set_resource(&resource);
        let exporter = Arc::new(log_exporter);
        let queue = Arc::new(Queue {
            entries: Mutex::new(VecDeque::new()),
            bound: queue_bound.max(1),
            wake: Notify::new(),
            delivered: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let processor = QueueingProcessor { queue: Arc::clone(&queue), exporter: Arc::clone(&exporter) };
        let logger_provider =
            SdkLoggerProvider::builder().with_resource(resource.clone()).with_log_processor(processor).build();
        let logger = logger_provider.logger("oomtrace");
        let metric_exporter = MetricExporter::builder()
            .build()
            .map_err(|e| OtlpError::Build { signal: "metrics", reason: e.to_string() })?;
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource)
            // On the daemon's runtime: the HTTP exporter's client needs tokio.
            .with_reader(PeriodicReader::builder(metric_exporter, Tokio).build())
            .build();
        let kills = meter_provider
            .meter("oomtrace")
            .u64_counter("oomtrace.oom_kills")
            .with_description("OOM kills by namespace, pod, container (or systemd unit), scope, source and cause")
            .build();
        let task = tokio::spawn(export_loop(Arc::clone(&queue), Arc::clone(&exporter)));
        Ok(Self { logger, logger_provider, meter_provider, kills, queue, exporter, task })
    }

    /// Queues one kill as a log record and counts it in the metric.
    pub fn emit(&self, event: &OomEvent) {
        let attributes = attributes(event);
        let metric_attributes: Vec<KeyValue> =
            attributes.iter().filter(|kv| METRIC_ATTRIBUTES.contains(&kv.key.as_str())).cloned().collect();
        self.kills.add(1, &metric_attributes);
        let mut record = self.logger.create_log_record();
        record.set_event_name("oomtrace.oom_kill");
        record.set_severity_number(Severity::Warn);
        record.set_severity_text("WARN");
        record.set_timestamp(event_time(event));
        record.set_observed_timestamp(SystemTime::now());
        record.set_body(AnyValue::from(body(event)));
        for kv in attributes {
            record.add_attribute(kv.key, any_value(kv.value));
        }
        self.logger.emit(record);
    }

    /// Queues one warning as a log record of severity WARN
    /// (`oomtrace.oom_warning`; its summary as the body).
    pub fn emit_warning(&self, warning: &Warning) {
        let mut record = self.logger.create_log_record();
        record.set_event_name("oomtrace.oom_warning");
        record.set_severity_number(Severity::Warn);
        record.set_severity_text("WARN");
        record.set_timestamp(warning.time.system_time());
        record.set_observed_timestamp(SystemTime::now());
        record.set_body(AnyValue::from(warning.summary.clone()));
        for kv in warning_attributes(warning) {
            record.add_attribute(kv.key, any_value(kv.value));
        }
        self.logger.emit(record);
    }

    pub fn stats(&self) -> OtlpStats {
        OtlpStats {
            delivered: self.queue.delivered.load(Ordering::Relaxed),
            failures: self.queue.failures.load(Ordering::Relaxed),
            dropped: self.queue.dropped.load(Ordering::Relaxed),
            queued: self.queue.len() as u64,
        }
    }

    /// Delivers what is queued (trying until `deadline`), then exports the
    /// metrics one last time and shuts the providers down.
    pub async fn shutdown(self, deadline: Duration) -> OtlpStats {
        let until = Instant::now() + deadline;
        while self.queue.len() > 0 && Instant::now() < until {
            if export_once(&self.queue, &self.exporter).await.is_err() {
                tokio::time::sleep(BACKOFF_MIN).await;
            }
        }
        self.task.abort();
        let stats = self.stats();
        let meter_provider = self.meter_provider.clone();
        // The SDK's shutdown blocks: keep it off the runtime thread.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = meter_provider.force_flush();
            let _ = meter_provider.shutdown();
        })
        .await;
        let _ = self.logger_provider.shutdown();
        stats
    }
}

/// Exports the oldest batch; on success removes it from the queue.
async fn export_once(queue: &Queue, exporter: &LogExporter) -> OTelSdkResult {
    let batch: Vec<Entry> = {
        let entries = queue.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().take(BATCH).cloned().collect()
    };
    if batch.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> = batch.iter().map(|(r, s)| (r, s)).collect();
    match exporter.export(LogBatch::new(&refs)).await {
        Ok(()) => {
            let mut entries = queue.entries.lock().unwrap_or_else(|p| p.into_inner());
            // Entries dropped meanwhile (queue full) were the oldest: remove at most what is left of this batch.
            let delivered = batch.len().min(entries.len());
            entries.drain(..delivered);
            queue.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        }
        Err(error) => {
            queue.failures.fetch_add(1, Ordering::Relaxed);
            Err(error)
        }
    }
}

async fn export_loop(queue: Arc<Queue>, exporter: Arc<LogExporter>) {
    let mut backoff = BACKOFF_MIN;
    let mut last_warning: Option<Instant> = None;
    loop {
        if queue.len() == 0 {
            queue.wake.notified().await;
        }
        match export_once(&queue, &exporter).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(error) => {
                if last_warning.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        %error,
                        queued = queue.len(),
                        failures = queue.failures.load(Ordering::Relaxed),
                        retry_in_ms = backoff.as_millis() as u64,
                        "OTLP export failed; keeping events queued"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn any_value(value: opentelemetry::Value) -> AnyValue {
    match value {
        opentelemetry::Value::Bool(b) => AnyValue::Boolean(b),
        opentelemetry::Value::I64(i) => AnyValue::Int(i),
        opentelemetry::Value::F64(f) => AnyValue::Double(f),
        opentelemetry::Value::Array(Array::String(strings)) => strings.into_iter().collect(),
        other => AnyValue::String(other.as_str().into_owned().into()),
    }
}

fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "oomtrace".to_owned())
}

fn event_time(event: &OomEvent) -> SystemTime {
    event.time.map_or_else(SystemTime::now, |time| time.system_time())
}

/// The log body: the diagnosis' summary first (what a person reads in a log
/// view), then the facts line, on one line so line-based pipelines keep both.
fn body(event: &OomEvent) -> String {
    let who = event.victim.comm.as_deref().unwrap_or("?");
    let place = event
        .workload
        .as_ref()
        .and_then(|w| w.kubernetes_name())
        .or_else(|| event.victim_cgroup.as_ref().and_then(|c| c.path.clone()))
        .unwrap_or_else(|| "?".to_owned());
    let facts = format!("OOM kill: {who} (pid {}) in {place}", event.victim.pid);
    match &event.diagnosis {
        Some(diagnosis) => format!("{} — {facts}", diagnosis.summary),
        None => facts,
    }
}

/// A warning's attributes: the workload's k8s.* names, then `oom.warning.*`.
fn warning_attributes(warning: &Warning) -> Vec<KeyValue> {
    let w = warning.workload.as_ref();
    let mut out: Vec<KeyValue> = [
        ("k8s.node.name", warning.node.clone()),
        ("k8s.namespace.name", w.and_then(|w| w.identity.namespace.clone())),
        ("k8s.pod.name", w.and_then(|w| w.identity.pod.clone())),
        ("k8s.pod.uid", w.and_then(|w| w.identity.pod_uid.clone())),
        ("k8s.container.name", w.and_then(|w| w.identity.container.clone())),
        ("oom.cgroup.path", warning.cgroup.clone()),
        ("oom.warning.state", Some(warning.state.as_str().to_owned())),
        ("oom.warning.limit_level", Some(warning.limit_level.as_str().to_owned())),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| KeyValue::new(key, v)))
    .collect();
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    out.push(KeyValue::new("oom.warning.unreclaimable_bytes", bytes(warning.unreclaimable_bytes)));
    out.push(KeyValue::new("oom.warning.limit_bytes", bytes(warning.limit_bytes)));
    out.push(KeyValue::new("oom.warning.slope_bytes_per_second", warning.slope_bytes_per_second));
    if let Some(left) = warning.seconds_left {
        out.push(KeyValue::new("oom.warning.seconds_left", left));
    }
    out
}

/// Semantic-convention attributes (k8s.*, container.*, process.*) plus the
/// OOM fields under `oom.*`.
fn attributes(event: &OomEvent) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut text = |key: &'static str, value: Option<String>| {
        if let Some(value) = value {
            out.push(KeyValue::new(key, value));
        }
    };
    let w = event.workload.as_ref();
    text("k8s.node.name", event.node.clone());
    text("k8s.namespace.name", w.and_then(|w| w.identity.namespace.clone()));
    text("k8s.pod.name", w.and_then(|w| w.identity.pod.clone()));
    text("k8s.pod.uid", w.and_then(|w| w.identity.pod_uid.clone()));
    text("k8s.container.name", w.and_then(|w| w.identity.container.clone()));
    text("container.id", w.and_then(|w| w.identity.container_id.clone()));
    text("container.image.name", w.and_then(|w| w.image.clone()));
    text("container.runtime", w.and_then(|w| w.identity.runtime.map(|r| format!("{r:?}").to_lowercase())));
    text("process.executable.name", event.victim.comm.clone());
    text("oom.scope", event.scope.map(|s| s.as_str().to_owned()));
    text("oom.cgroup.path", event.victim_cgroup.as_ref().and_then(|c| c.path.clone()));
    text("oom.memcg.path", event.oom_cgroup.as_ref().and_then(|c| c.cgroup.path.clone()));
    text("oom.trigger.executable.name", event.trigger.as_ref().map(|t| t.comm.clone()));
    text("oom.source", Some(event.source.as_str().to_owned()));
    text("oom.kernel_log", event.kernel_log.as_ref().map(|l| l.from.as_str().to_owned()));
    text("oom.systemd.unit", Some(labels::unit(event)).filter(|u| !u.is_empty()));
    text("oomtrace.diagnosis.cause", Some(labels::cause(event).to_owned()));
    let mut int = |key: &'static str, value: Option<u64>| {
        if let Some(value) = value {
            out.push(KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX)));
        }
    };
    int("process.pid", Some(u64::from(event.victim.tgid.unwrap_or(event.victim.pid))));
    int("thread.id", Some(u64::from(event.victim.pid)));
    int("oom.trigger.pid", event.trigger.as_ref().and_then(|t| t.tgid.or(t.pid)).map(u64::from));
    int("oom.memcg.usage_bytes", event.oom_cgroup.as_ref().and_then(|c| c.usage_bytes));
    int("oom.memcg.limit_bytes", event.oom_cgroup.as_ref().and_then(|c| c.limit_bytes));
    int("oom.victim.total_vm_bytes", event.victim.total_vm_kb.map(|kb| kb * 1024));
    int("oom.victim.anon_rss_bytes", event.victim.anon_rss_kb.map(|kb| kb * 1024));
    int("oom.victim.file_rss_bytes", event.victim.file_rss_kb.map(|kb| kb * 1024));
    int("oom.victim.shmem_rss_bytes", event.victim.shmem_rss_kb.map(|kb| kb * 1024));
    int("oom.victim.pgtables_bytes", event.victim.pgtables_kb.map(|kb| kb * 1024));
    int("oom.totalpages", event.oom_totalpages);
    if let Some(killed) = event.killed {
        out.push(KeyValue::new("oom.killed", killed));
    }
    if let Some(main) = w.and_then(|w| w.main_process) {
        out.push(KeyValue::new("oom.main_process", main));
    }
    if let Some(diagnosis) = &event.diagnosis {
        let kinds: Vec<StringValue> = diagnosis.findings.iter().map(|f| f.kind().as_str().into()).collect();
        out.push(KeyValue::new("oomtrace.diagnosis.findings", opentelemetry::Value::Array(Array::String(kinds))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis;
    use oomtrace_event::{Attribution, Cgroup, OomCgroup, Scope, Victim, WorkloadInfo, WorkloadKind};

    /// A group kill of kubelet at its unit's limit, diagnosed.
    fn kubelet_kill() -> OomEvent {
        let mut workload = WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host);
        workload.unit = Some("kubelet.service".to_owned());
        let cgroup = Cgroup { path: Some("/system.slice/kubelet.service".to_owned()), ..Cgroup::default() };
        let mut event = OomEvent {
            scope: Some(Scope::Memcg),
            group_kill: Some(true),
            victim_cgroup: Some(cgroup.clone()),
            oom_cgroup: Some(OomCgroup { cgroup, ..OomCgroup::default() }),
            workload: Some(workload),
            ..OomEvent::of_victim(Victim { pid: 42, comm: Some("kubelet".to_owned()), ..Victim::default() })
        };
        event.diagnosis = Some(diagnosis::diagnose(&event));
        event
    }

    fn attribute(attributes: &[KeyValue], key: &str) -> Option<opentelemetry::Value> {
        attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone())
    }

    #[test]
    fn the_diagnosis_is_in_the_attributes_and_the_body() {
        let event = kubelet_kill();
        let attributes = attributes(&event);
        assert_eq!(attribute(&attributes, "oomtrace.diagnosis.cause"), Some("cgroup_limit".into()));
        assert_eq!(attribute(&attributes, "oom.systemd.unit"), Some("kubelet.service".into()));
        let diagnosis = event.diagnosis.as_ref().expect("diagnosed");
        let kinds: Vec<&str> = diagnosis.findings.iter().map(|f| f.kind().as_str()).collect();
        assert!(kinds.contains(&"group_kill"), "{kinds:?}");
        let findings = attribute(&attributes, "oomtrace.diagnosis.findings").expect("findings");
        let expected = kinds.iter().map(|k| StringValue::from(*k)).collect();
        assert_eq!(findings, opentelemetry::Value::Array(Array::String(expected)));
        let expected = AnyValue::ListAny(Box::new(kinds.iter().map(|k| AnyValue::from(*k)).collect()));
        assert_eq!(any_value(findings), expected);
        let summary = &diagnosis.summary;
        let body = body(&event);
        assert!(body.starts_with(summary.as_str()), "{body}");
        assert!(body.ends_with("OOM kill: kubelet (pid 42) in /system.slice/kubelet.service"), "{body}");
    }

    #[test]
    fn without_a_diagnosis_the_cause_is_unknown_and_the_body_the_facts() {
        let mut event = kubelet_kill();
        event.diagnosis = None;
        let attributes = attributes(&event);
        assert_eq!(attribute(&attributes, "oomtrace.diagnosis.cause"), Some("unknown".into()));
        assert_eq!(attribute(&attributes, "oomtrace.diagnosis.findings"), None);
        assert_eq!(body(&event), "OOM kill: kubelet (pid 42) in /system.slice/kubelet.service");
    }
}
