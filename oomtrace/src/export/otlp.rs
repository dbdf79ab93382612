//! OpenTelemetry export (official `opentelemetry` / `opentelemetry-otlp`
//! crates), configured by the standard `OTEL_EXPORTER_OTLP_*` variables (TLS
//! with rustls: [`tls`]): each kill is a log record with `k8s.*`,
//! `container.*` and `process.*` attributes and everything else under one
//! prefix, `oomtrace.*` (the memory fields, the diagnosis and its advice; its
//! summary first in the body); the node and the agent are on the resource;
//! the kill counter is an OTLP metric. docs/daemon.md has the table.
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
use opentelemetry_otlp::{
    LogExporter, MetricExporter, WithHttpConfig as _, WithTonicConfig as _, tonic_types::transport::ClientTlsConfig,
};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogBatch, LogExporter as _, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider},
    metrics::{SdkMeterProvider, periodic_reader_with_async_runtime::PeriodicReader},
    resource::{EnvResourceDetector, TelemetryResourceDetector},
    runtime::Tokio,
};
use tokio::{sync::Notify, task::JoinSet};

use super::labels;
use tls::{Signal, TlsSettings};

mod tls;
use oomtrace_event::{Diagnosis, KernelReportRecord, OomEvent, Warning, WorkloadInfo};

/// The log attributes the kill counter carries too: bounded (the pod names
/// are bounded by the SDK's cardinality limit, the others are enums or units).
const METRIC_ATTRIBUTES: [&str; 7] = [
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "oomtrace.systemd.unit",
    "oomtrace.scope",
    "oomtrace.source",
    "oomtrace.diagnosis.cause",
];

/// Records exported per request.
const BATCH: usize = 256;
/// Requests on their way at once (multiplexed on one HTTP/2 connection with
/// gRPC): a record queued while one is out goes in the next at once.
const IN_FLIGHT: usize = 4;
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
    /// The message carries the TLS error's; not chained again.
    #[error("OTLP {signal} exporter: {error}")]
    Tls { signal: &'static str, error: tls::TlsError },
    #[error(
        "OTLP {signal} exporter: {variable}={value} is not a protocol this build speaks: use grpc or http/protobuf"
    )]
    Protocol { signal: &'static str, variable: String, value: String },
    #[error("cannot start the OTLP export thread: {0}")]
    Thread(String),
}

/// The transport of one signal, from `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`
/// then `OTEL_EXPORTER_OTLP_PROTOCOL` (default `http/protobuf`, the
/// specification's and the crate's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Grpc,
    HttpProtobuf,
}

fn transport(signal: Signal) -> Result<Transport, OtlpError> {
    let upper = signal.as_str().to_ascii_uppercase();
    let found = [format!("OTEL_EXPORTER_OTLP_{upper}_PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned()]
        .into_iter()
        .find_map(|variable| std::env::var(&variable).ok().filter(|v| !v.trim().is_empty()).map(|v| (variable, v)));
    match found {
        None => Ok(Transport::HttpProtobuf),
        Some((variable, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Transport::Grpc),
            "http/protobuf" => Ok(Transport::HttpProtobuf),
            _ => Err(OtlpError::Protocol { signal: signal.as_str(), variable, value }),
        },
    }
}

/// How one signal's exporter is built: gRPC with TLS or not, or HTTP with
/// the client made from its TLS settings.
enum Channel {
    Grpc(Option<ClientTlsConfig>),
    Http(reqwest::Client),
}

/// `signal`'s transport and TLS settings, read and checked.
fn channel(signal: Signal) -> Result<Channel, OtlpError> {
    let transport = transport(signal)?;
    let tls_error = |error| OtlpError::Tls { signal: signal.as_str(), error };
    let tls = TlsSettings::from_env(signal).map_err(tls_error)?;
    if tls.is_set() {
        tracing::info!(signal = signal.as_str(), transport = ?transport, tls = %tls.describe(), "OTLP over TLS");
    }
    Ok(match transport {
        Transport::Grpc => Channel::Grpc(tls.tonic()),
        Transport::HttpProtobuf => Channel::Http(tls.reqwest(tls::timeout(signal)).map_err(tls_error)?),
    })
}

/// Builds `$exporter` (`LogExporter` or `MetricExporter`: one builder API)
/// for `$signal` on its [`Channel`].
macro_rules! exporter {
    ($exporter:ident, $signal:expr) => {
        match channel($signal)? {
            Channel::Grpc(Some(tls)) => $exporter::builder().with_tonic().with_tls_config(tls).build(),
            Channel::Grpc(None) => $exporter::builder().with_tonic().build(),
            Channel::Http(client) => $exporter::builder().with_http().with_http_client(client).build(),
        }
        .map_err(|e| OtlpError::Build { signal: $signal.as_str(), reason: e.to_string() })
    };
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

/// A queued record, numbered in the order it was queued.
struct Entry {
    seq: u64,
    record: SdkLogRecord,
    scope: InstrumentationScope,
}

/// The bounded queue between the logger and the export task.
struct Queue {
    entries: Mutex<VecDeque<Entry>>,
    bound: usize,
    wake: Notify,
    /// Records taken out for requests not answered yet.
    in_flight: AtomicU64,
    /// The next record's number (under the entries' lock).
    next_seq: AtomicU64,
    delivered: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
}

impl Queue {
    /// An empty queue holding at most `bound` records (at least one).
    fn new(bound: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            bound: bound.max(1),
            wake: Notify::new(),
            in_flight: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records not delivered yet: waiting, and in requests not answered yet.
    fn undelivered(&self) -> u64 {
        self.lock().len() as u64 + self.in_flight.load(Ordering::Relaxed)
    }

    /// The oldest records, up to [`BATCH`], taken out for a request.
    fn take_batch(&self) -> Vec<Entry> {
        let mut entries = self.lock();
        let count = entries.len().min(BATCH);
        let batch: Vec<Entry> = entries.drain(..count).collect();
        self.in_flight.fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch
    }

    /// A request's answer: its records delivered, or put back in front of
    /// those queued meanwhile (in their order) for the next attempt; the
    /// oldest beyond the bound are dropped and counted, as when queued.
    /// Records on their way are dropped only here, when their request
    /// failed: until then they may yet be delivered.
    fn answered(&self, batch: Vec<Entry>, result: &OTelSdkResult) {
        if result.is_ok() {
            self.in_flight.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            self.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.lock();
        // Under the lock, as `undelivered` reads: the records move from on
        // their way back to waiting without a moment counted in neither.
        self.in_flight.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        // Requests fail in any order: back in the order they were queued.
        let mut all: Vec<Entry> = batch.into_iter().chain(entries.drain(..)).collect();
        all.sort_by_key(|entry| entry.seq);
        entries.extend(all);
        while entries.len() > self.bound {
            entries.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stats(&self) -> OtlpStats {
        OtlpStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.undelivered(),
        }
    }
}

/// A log processor that only enqueues; `export_loop` delivers.
#[derive(Clone)]
struct QueueingProcessor {
    queue: Arc<Queue>,
    /// An empty record, put in the place of each one queued: the record is
    /// moved into the queue, not copied (the SDK drops what is left of it).
    blank: SdkLogRecord,
}

impl QueueingProcessor {
    fn new(queue: Arc<Queue>) -> Self {
        // The SDK makes records only through a logger; one with no processor
        // makes this empty one and nothing else.
        let blank = SdkLoggerProvider::builder().build().logger("oomtrace").create_log_record();
        Self { queue, blank }
    }
}

impl std::fmt::Debug for QueueingProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueingProcessor").field("bound", &self.queue.bound).finish()
    }
}

impl LogProcessor for QueueingProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let mut entries = self.queue.lock();
        while entries.len() >= self.queue.bound {
            entries.pop_front();
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let seq = self.queue.next_seq.fetch_add(1, Ordering::Relaxed);
        entries.push_back(Entry { seq, record: std::mem::replace(record, self.blank.clone()), scope: scope.clone() });
        drop(entries);
        self.queue.wake.notify_one();
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

pub struct OtlpExporter {
    logger: SdkLogger,
    logger_provider: SdkLoggerProvider,
    kills: Counter<u64>,
    queue: Arc<Queue>,
    /// Tells the export thread to deliver what is queued until the deadline
    /// and stop; it answers once done.
    stop: tokio::sync::oneshot::Sender<Instant>,
    stopped: tokio::sync::oneshot::Receiver<()>,
}

/// What the export thread builds on its own runtime: the clients and their
/// background tasks live there.
struct Exporters {
    logs: Arc<LogExporter>,
    meter_provider: SdkMeterProvider,
    kills: Counter<u64>,
}

impl Exporters {
    /// Builds both exporters from the environment; inside a tokio runtime
    /// (the metric reader and the clients spawn their tasks on it).
    fn from_env(resource: &Resource) -> Result<Self, OtlpError> {
        let mut logs = exporter!(LogExporter, Signal::Logs)?;
        logs.set_resource(resource);
        let metric_exporter = exporter!(MetricExporter, Signal::Metrics)?;
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(PeriodicReader::builder(metric_exporter, Tokio).build())
            .build();
        let kills = meter_provider
            .meter("oomtrace")
            .u64_counter("oomtrace.oom_kills")
            .with_description("OOM kills by namespace, pod, container (or systemd unit), scope, source and cause")
            .build();
        Ok(Self { logs: Arc::new(logs), meter_provider, kills })
    }
}

impl OtlpExporter {
    /// Builds the exporters from the `OTEL_*` environment and starts the
    /// export on its own thread (`oomtrace-otlp`, its own runtime): encoding
    /// and sending requests never takes the event thread's time, which only
    /// queues records.
    pub fn from_env(queue_bound: usize, node_name: Option<&str>) -> Result<Self, OtlpError> {
        let resource = resource(node_name, host_name().as_deref());
        tls::install_crypto_provider();
        let queue = Arc::new(Queue::new(queue_bound));
        let (built_tx, built_rx) = std::sync::mpsc::channel::<Result<Counter<u64>, OtlpError>>();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<Instant>();
        let (stopped_tx, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_queue = Arc::clone(&queue);
        let thread_resource = resource.clone();
        let spawned = std::thread::Builder::new().name("oomtrace-otlp".to_owned()).spawn(move || {
            // The kernel's default slice, not the event thread's short one
            // (a thread inherits it): a request's work is more than it.
            let _ = crate::sched::request_slice(0);
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = built_tx.send(Err(OtlpError::Thread(error.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                let exporters = match Exporters::from_env(&thread_resource) {
                    Ok(exporters) => exporters,
                    Err(error) => {
                        let _ = built_tx.send(Err(error));
                        return;
                    }
                };
                let _ = built_tx.send(Ok(exporters.kills.clone()));
                export_until_stopped(&thread_queue, &exporters, stop_rx).await;
                let _ = stopped_tx.send(());
            });
        });
        if let Err(error) = spawned {
            return Err(OtlpError::Thread(error.to_string()));
        }
        let kills = built_rx.recv().map_err(|error| OtlpError::Thread(error.to_string()))??;
        let processor = QueueingProcessor::new(Arc::clone(&queue));
        let logger_provider =
            SdkLoggerProvider::builder().with_resource(resource).with_log_processor(processor).build();
        let logger = logger_provider.logger("oomtrace");
        Ok(Self { logger, logger_provider, kills, queue, stop, stopped })
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

    /// Queues a kill's kernel report as a log record of severity INFO
    /// (`oomtrace.oom_kernel_report`; the kill's summary revised with the
    /// report as the body), at the kill's time and with its `thread.id`: the
    /// two join it to its `oomtrace.oom_kill` record.
    pub fn emit_kernel_report(&self, report: &KernelReportRecord) {
        let mut record = self.logger.create_log_record();
        record.set_event_name("oomtrace.oom_kernel_report");
        record.set_severity_number(Severity::Info);
        record.set_severity_text("INFO");
        record.set_timestamp(report.time.map_or_else(SystemTime::now, |time| time.system_time()));
        record.set_observed_timestamp(SystemTime::now());
        record.set_body(AnyValue::from(report.diagnosis.summary.clone()));
        for kv in report_attributes(report) {
            record.add_attribute(kv.key, any_value(kv.value));
        }
        self.logger.emit(record);
    }

    pub fn stats(&self) -> OtlpStats {
        self.queue.stats()
    }

    /// Delivers what is queued (trying until `deadline`), then exports the
    /// metrics one last time and shuts the providers down.
    pub async fn shutdown(self, deadline: Duration) -> OtlpStats {
        let Self { logger_provider, queue, stop, stopped, .. } = self;
        if stop.send(Instant::now() + deadline).is_ok() {
            // The thread answers after its last attempt (bounded by the deadline) and the metrics' flush.
            let _ = stopped.await;
        }
        let _ = logger_provider.shutdown();
        queue.stats()
    }
}

/// The export thread: delivers records as they are queued until told to
/// stop, then what is left until the deadline, then the metrics.
async fn export_until_stopped(queue: &Queue, exporters: &Exporters, stop: tokio::sync::oneshot::Receiver<Instant>) {
    let mut requests = JoinSet::new();
    let until = export_loop(queue, &exporters.logs, &mut requests, stop).await;
    deliver_until(queue, &exporters.logs, &mut requests, until).await;
    let meter_provider = exporters.meter_provider.clone();
    // The SDK's shutdown blocks: keep it off the runtime thread.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = meter_provider.force_flush();
        let _ = meter_provider.shutdown();
    })
    .await;
}

/// Requests in flight, each with the records it carries.
type Requests = JoinSet<(Vec<Entry>, OTelSdkResult)>;

/// Sends the oldest records in new requests while fewer than [`IN_FLIGHT`]
/// are on their way.
fn send_waiting(queue: &Queue, exporter: &Arc<LogExporter>, requests: &mut Requests) {
    while requests.len() < IN_FLIGHT {
        let batch = queue.take_batch();
        if batch.is_empty() {
            return;
        }
        let exporter = Arc::clone(exporter);
        requests.spawn(async move {
            let result = {
                let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                    batch.iter().map(|entry| (&entry.record, &entry.scope)).collect();
                exporter.export(LogBatch::new(&refs)).await
            };
            (batch, result)
        });
    }
}

/// A finished request's answer given to the queue; its error, if any.
fn take_answer(queue: &Queue, joined: Result<(Vec<Entry>, OTelSdkResult), tokio::task::JoinError>) -> Option<String> {
    match joined {
        Ok((batch, result)) => {
            queue.answered(batch, &result);
            result.err().map(|error| error.to_string())
        }
        // Its records are lost with it: they stay counted as undelivered.
        Err(error) => Some(format!("export request ended abnormally: {error}")),
    }
}

/// Delivers records as they are queued, up to [`IN_FLIGHT`] requests at once
/// (a record queued while a request is on its way goes out at once, not after
/// that request's answer), backing off after a failure, until told to stop;
/// returns the deadline it was given.
async fn export_loop(
    queue: &Queue,
    exporter: &Arc<LogExporter>,
    requests: &mut Requests,
    mut stop: tokio::sync::oneshot::Receiver<Instant>,
) -> Instant {
    let mut backoff = BACKOFF_MIN;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut last_warning: Option<Instant> = None;
    loop {
        if retry_at.is_none() {
            send_waiting(queue, exporter, requests);
        }
        tokio::select! {
            Some(joined) = requests.join_next() => match take_answer(queue, joined) {
                None => backoff = BACKOFF_MIN,
                Some(error) => {
                    if last_warning.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(
                            %error,
                            queued = queue.undelivered(),
                            failures = queue.failures.load(Ordering::Relaxed),
                            retry_in_ms = backoff.as_millis() as u64,
                            "OTLP export failed; keeping events queued"
                        );
                    }
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            },
            () = queue.wake.notified() => {}
            () = sleep_until(retry_at) => retry_at = None,
            until = &mut stop => return until.unwrap_or_else(|_| Instant::now()),
        }
    }
}

/// Sleeps until `at`; never returns without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Stopping: waits for the requests in flight and sends what is left,
/// retrying after [`BACKOFF_MIN`], until `until`. Requests still out then are
/// dropped, their records counted as undelivered.
async fn deliver_until(queue: &Queue, exporter: &Arc<LogExporter>, requests: &mut Requests, until: Instant) {
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        send_waiting(queue, exporter, requests);
        let Ok(Some(joined)) = tokio::time::timeout_at(deadline, requests.join_next()).await else { return };
        if take_answer(queue, joined).is_some() {
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + BACKOFF_MIN)).await;
        }
    }
}

fn any_value(value: opentelemetry::Value) -> AnyValue {
    match value {
        opentelemetry::Value::Bool(b) => AnyValue::Boolean(b),
        opentelemetry::Value::I64(i) => AnyValue::Int(i),
        opentelemetry::Value::F64(f) => AnyValue::Double(f),
        opentelemetry::Value::Array(Array::String(strings)) => strings.into_iter().collect(),
        opentelemetry::Value::String(string) => AnyValue::String(string),
        other => AnyValue::String(other.as_str().into_owned().into()),
    }
}

/// What describes the node and the agent, once per export rather than on
/// every record: `service.name` (`OTEL_SERVICE_NAME`, default `oomtrace`),
/// `service.version`, `service.instance.id` (the node's name: one agent per
/// node; the host name without one), `host.name`, `k8s.node.name` (when
/// known), then the SDK's `telemetry.sdk.*`. `OTEL_RESOURCE_ATTRIBUTES`
/// comes last and so overrides any of them except `service.name`.
fn resource(node_name: Option<&str>, host_name: Option<&str>) -> Resource {
    let mut attributes = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if let Some(instance) = node_name.or(host_name) {
        attributes.push(KeyValue::new("service.instance.id", instance.to_owned()));
    }
    if let Some(host) = host_name {
        attributes.push(KeyValue::new("host.name", host.to_owned()));
    }
    if let Some(node) = node_name {
        attributes.push(KeyValue::new("k8s.node.name", node.to_owned()));
    }
    Resource::builder_empty()
        .with_attributes(attributes)
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_detector(Box::new(EnvResourceDetector::new()))
        .with_service_name(service_name())
        .build()
}

/// The kernel's host name: the node's own under `hostNetwork`, the pod's
/// otherwise (then `k8s.node.name` names the node).
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
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

/// A workload's pod and container names, as `k8s.*` attributes (the absent ones `None`).
fn pod_names(w: Option<&WorkloadInfo>) -> [(&'static str, Option<String>); 4] {
    [
        ("k8s.namespace.name", w.and_then(|w| w.identity.namespace.clone())),
        ("k8s.pod.name", w.and_then(|w| w.identity.pod.clone())),
        ("k8s.pod.uid", w.and_then(|w| w.identity.pod_uid.clone())),
        ("k8s.container.name", w.and_then(|w| w.identity.container.clone())),
    ]
}

/// A warning's attributes: the workload's `k8s.*` names, then `oomtrace.*`.
fn warning_attributes(warning: &Warning) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = pod_names(warning.workload.as_ref())
        .into_iter()
        .chain([
            ("oomtrace.cgroup.path", warning.cgroup.clone()),
            ("oomtrace.warning.state", Some(warning.state.as_str().to_owned())),
            ("oomtrace.warning.limit_level", Some(warning.limit_level.as_str().to_owned())),
        ])
        .filter_map(|(key, value)| value.map(|v| KeyValue::new(key, v)))
        .collect();
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    out.push(KeyValue::new("oomtrace.warning.unreclaimable_bytes", bytes(warning.unreclaimable_bytes)));
    out.push(KeyValue::new("oomtrace.warning.limit_bytes", bytes(warning.limit_bytes)));
    out.push(KeyValue::new("oomtrace.warning.slope_bytes_per_second", warning.slope_bytes_per_second));
    if let Some(left) = warning.seconds_left {
        out.push(KeyValue::new("oomtrace.warning.seconds_left", left));
    }
    out
}

fn strings(values: impl IntoIterator<Item = StringValue>) -> opentelemetry::Value {
    opentelemetry::Value::Array(Array::String(values.into_iter().collect()))
}

/// A kill's attributes (docs/daemon.md, "OTLP attributes"): OpenTelemetry's
/// semantic conventions where one exists (`k8s.*`, `container.*`,
/// `process.*`, `thread.id`), everything else under `oomtrace.*`. What
/// describes the node and the agent is on the resource ([`resource`]).
fn attributes(event: &OomEvent) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(40);
    // Owned strings and the enums' static names alike: a name is not copied.
    let mut text = |key: &'static str, value: Option<StringValue>| {
        if let Some(value) = value {
            out.push(KeyValue::new(key, value));
        }
    };
    let w = event.workload.as_ref();
    text("k8s.namespace.name", w.and_then(|w| w.identity.namespace.clone()).map(StringValue::from));
    text("k8s.pod.name", w.and_then(|w| w.identity.pod.clone()).map(StringValue::from));
    text("k8s.pod.uid", w.and_then(|w| w.identity.pod_uid.clone()).map(StringValue::from));
    text("k8s.container.name", w.and_then(|w| w.identity.container.clone()).map(StringValue::from));
    text("container.id", w.and_then(|w| w.identity.container_id.clone()).map(StringValue::from));
    text("container.image.name", w.and_then(|w| w.image.clone()).map(StringValue::from));
    text("container.runtime.name", w.and_then(|w| w.identity.runtime.map(|r| r.as_str().into())));
    text("process.executable.name", event.victim.comm.clone().map(StringValue::from));
    text("oomtrace.scope", event.scope.map(|s| s.as_str().into()));
    text("oomtrace.cgroup.path", event.victim_cgroup.as_ref().and_then(|c| c.path.clone()).map(StringValue::from));
    text(
        "oomtrace.oom_memcg.path",
        event.oom_cgroup.as_ref().and_then(|c| c.cgroup.path.clone()).map(StringValue::from),
    );
    text("oomtrace.trigger.executable.name", event.trigger.as_ref().map(|t| t.comm.clone().into()));
    text("oomtrace.source", Some(event.source.as_str().into()));
    text("oomtrace.kernel_log", event.kernel_log.as_ref().map(|l| l.from.as_str().into()));
    text("oomtrace.systemd.unit", Some(labels::unit(event)).filter(|u| !u.is_empty()).map(StringValue::from));
    text("oomtrace.diagnosis.cause", Some(labels::cause(event).into()));
    let mut int = |key: &'static str, value: Option<u64>| {
        if let Some(value) = value {
            out.push(KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX)));
        }
    };
    int("process.pid", Some(u64::from(event.victim.tgid.unwrap_or(event.victim.pid))));
    int("thread.id", Some(u64::from(event.victim.pid)));
    int("oomtrace.trigger.pid", event.trigger.as_ref().and_then(|t| t.tgid.or(t.pid)).map(u64::from));
    int("oomtrace.oom_memcg.usage_bytes", event.oom_cgroup.as_ref().and_then(|c| c.usage_bytes));
    int("oomtrace.oom_memcg.limit_bytes", event.oom_cgroup.as_ref().and_then(|c| c.limit_bytes));
    int("oomtrace.victim.total_vm_bytes", event.victim.total_vm_kb.map(|kb| kb * 1024));
    int("oomtrace.victim.anon_rss_bytes", event.victim.anon_rss_kb.map(|kb| kb * 1024));
    int("oomtrace.victim.file_rss_bytes", event.victim.file_rss_kb.map(|kb| kb * 1024));
    int("oomtrace.victim.shmem_rss_bytes", event.victim.shmem_rss_kb.map(|kb| kb * 1024));
    int("oomtrace.victim.pgtables_bytes", event.victim.pgtables_kb.map(|kb| kb * 1024));
    int("oomtrace.totalpages", event.oom_totalpages);
    if let Some(killed) = event.killed {
        out.push(KeyValue::new("oomtrace.killed", killed));
    }
    if let Some(main) = w.and_then(|w| w.main_process) {
        out.push(KeyValue::new("oomtrace.main_process", main));
    }
    if let Some(diagnosis) = &event.diagnosis {
        diagnosis_attributes(diagnosis, &mut out);
    }
    out
}

/// A diagnosis' findings and advice.
fn diagnosis_attributes(diagnosis: &Diagnosis, out: &mut Vec<KeyValue>) {
    let kinds = diagnosis.findings.iter().map(|f| f.kind().as_str().into());
    out.push(KeyValue::new("oomtrace.diagnosis.findings", strings(kinds)));
    // The advice, step by step: three arrays of the same length, in the
    // diagnosis' order (the first step is the fix it recommends most);
    // a step that is not one command has "" as its command.
    if !diagnosis.advice.is_empty() {
        let advice = &diagnosis.advice;
        let actions = advice.iter().map(|a| a.action.as_str().into());
        out.push(KeyValue::new("oomtrace.advice.action", strings(actions)));
        let commands = advice.iter().map(|a| a.command.clone().unwrap_or_default().into());
        out.push(KeyValue::new("oomtrace.advice.command", strings(commands)));
        out.push(KeyValue::new("oomtrace.advice.text", strings(advice.iter().map(|a| a.text.clone().into()))));
    }
}

/// A kernel report's attributes: its kill's `k8s.*` names and `thread.id`,
/// the report's largest task, and the revised diagnosis' findings and advice.
fn report_attributes(report: &KernelReportRecord) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = pod_names(report.workload.as_ref())
        .into_iter()
        .chain([
            ("process.executable.name", report.victim_comm.clone()),
            ("oomtrace.kernel_report.memory_stat_cgroup", report.kernel_report.memory_stat_cgroup.clone()),
        ])
        .filter_map(|(key, value)| value.map(|v| KeyValue::new(key, v)))
        .collect();
    let int = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    out.push(KeyValue::new("thread.id", i64::from(report.victim_pid)));
    if let Some(task) = report.kernel_report.largest_tasks.first() {
        out.push(KeyValue::new("oomtrace.kernel_report.largest_task.pid", i64::from(task.pid)));
        out.push(KeyValue::new("oomtrace.kernel_report.largest_task.name", task.comm.clone()));
        out.push(KeyValue::new("oomtrace.kernel_report.largest_task.rss_bytes", int(task.rss_kb * 1024)));
    }
    diagnosis_attributes(&report.diagnosis, &mut out);
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

    /// Queues a record whose body is `body` through the processor.
    fn queue_record(processor: &QueueingProcessor, body: &'static str) {
        let mut record = processor.blank.clone();
        record.set_body(AnyValue::from(body));
        processor.emit(&mut record, &InstrumentationScope::default());
    }

    fn bodies(queue: &Queue) -> Vec<Option<AnyValue>> {
        queue.lock().iter().map(|e| e.record.body().cloned()).collect()
    }

    #[test]
    fn failed_requests_go_back_in_their_order_and_the_oldest_beyond_the_bound_are_dropped() {
        let queue = Arc::new(Queue::new(3));
        let processor = QueueingProcessor::new(Arc::clone(&queue));
        let failed = || Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("down".to_owned()));
        queue_record(&processor, "first");
        queue_record(&processor, "second");
        let older = queue.take_batch();
        queue_record(&processor, "third");
        let newer = queue.take_batch();
        queue_record(&processor, "fourth");
        assert_eq!(queue.undelivered(), 4, "waiting and in flight");
        // The older request fails first, then the newer one: each goes back
        // where it was, not in front of what went back before it.
        queue.answered(older, &failed());
        queue.answered(newer, &failed());
        let expected = ["second", "third", "fourth"].map(|body| Some(AnyValue::from(body)));
        assert_eq!(bodies(&queue), expected);
        let stats = queue.stats();
        assert_eq!((stats.failures, stats.dropped, stats.queued, stats.delivered), (2, 1, 3, 0));
        let batch = queue.take_batch();
        queue.answered(batch, &Ok(()));
        let stats = queue.stats();
        assert_eq!((stats.delivered, stats.queued), (3, 0));
    }

    fn attribute(attributes: &[KeyValue], key: &str) -> Option<opentelemetry::Value> {
        attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone())
    }

    #[test]
    fn the_diagnosis_is_in_the_attributes_and_the_body() {
        let event = kubelet_kill();
        let attributes = attributes(&event);
        assert_eq!(attribute(&attributes, "oomtrace.diagnosis.cause"), Some("cgroup_limit".into()));
        assert_eq!(attribute(&attributes, "oomtrace.systemd.unit"), Some("kubelet.service".into()));
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

    #[test]
    fn the_advice_travels_as_parallel_arrays() {
        let event = kubelet_kill();
        let advice = &event.diagnosis.as_ref().expect("diagnosed").advice;
        assert!(!advice.is_empty(), "kubelet at its limit has advice");
        let attributes = attributes(&event);
        let actions = strings(advice.iter().map(|a| a.action.as_str().into()));
        assert_eq!(attribute(&attributes, "oomtrace.advice.action"), Some(actions));
        let commands = strings(advice.iter().map(|a| a.command.clone().unwrap_or_default().into()));
        assert_eq!(attribute(&attributes, "oomtrace.advice.command"), Some(commands));
        let texts = strings(advice.iter().map(|a| a.text.clone().into()));
        assert_eq!(attribute(&attributes, "oomtrace.advice.text"), Some(texts));
    }

    #[test]
    fn one_prefix_and_no_node_on_the_record() {
        for kv in attributes(&kubelet_kill()) {
            let key = kv.key.as_str();
            assert!(
                ["oomtrace.", "k8s.", "container.", "process.", "thread."].iter().any(|p| key.starts_with(p)),
                "{key}"
            );
            assert!(!key.starts_with("oom.") && key != "k8s.node.name", "{key}");
        }
    }

    #[test]
    fn the_node_and_the_agent_are_on_the_resource() {
        let resource = resource(Some("aks-node-1"), Some("host-a"));
        let get = |key: &'static str| resource.get(&opentelemetry::Key::from_static_str(key));
        assert_eq!(get("k8s.node.name"), Some("aks-node-1".into()));
        assert_eq!(get("service.instance.id"), Some("aks-node-1".into()));
        assert_eq!(get("host.name"), Some("host-a".into()));
        assert_eq!(get("service.version"), Some(env!("CARGO_PKG_VERSION").into()));
        assert!(get("service.name").is_some());
        assert!(get("telemetry.sdk.name").is_some());
        let without_node = super::resource(None, Some("host-a"));
        let get = |key: &'static str| without_node.get(&opentelemetry::Key::from_static_str(key));
        assert_eq!(get("service.instance.id"), Some("host-a".into()));
        assert_eq!(get("k8s.node.name"), None);
    }
}
