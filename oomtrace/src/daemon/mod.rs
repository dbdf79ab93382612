//! `oomtrace daemon`: the node agent. Serves Prometheus metrics and health on
//! one listener, exports OTLP when configured, writes NDJSON events on
//! stdout, and on SIGTERM flushes what it holds before exiting.

mod account;
mod gauges;

use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use crate::{
    config::DaemonConfig,
    enrich::pod::PodResolver,
    export::{
        otlp::{self, OtlpExporter},
        prometheus::{ExporterTotals, Metrics},
    },
    klog::join::side::KernelLogMode,
    output::{EventWriter as _, json::JsonWriter},
    pipeline::{EventHandler, Flow, Pipeline, PipelineOptions, PipelineStats, WarnOptions, log_stats},
    probe::{AttachPlan, DEFAULT_RING_BYTES},
};
use oomtrace_event::{EventSource, KernelReportRecord, OomEvent, Warning};

use self::account::Account;

/// How long SIGTERM may spend delivering queued OTLP records.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Shared {
    metrics: Metrics,
    ready: AtomicBool,
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.metrics.encode() {
        Ok(text) => (StatusCode::OK, [("content-type", OPENMETRICS)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "attaching\n")
    }
}

/// Hands each event to the metrics, the OTLP exporter and stdout.
struct Deliver<'a> {
    metrics: &'a Metrics,
    otlp: Option<&'a OtlpExporter>,
    events_stdout: bool,
    account: Option<Account>,
}

impl Deliver<'_> {
    /// Writes a record on stdout where records go there; a closed stdout
    /// (nobody reading the logs) must not stop the agent.
    fn to_stdout(&self, what: &str, write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) {
        if self.events_stdout
            && let Err(error) = write(&mut std::io::stdout().lock())
        {
            tracing::debug!(%error, record = what, "could not write a record to stdout");
        }
    }
}

impl EventHandler for Deliver<'_> {
    fn event(&mut self, event: &OomEvent) -> anyhow::Result<Flow> {
        self.metrics.record(event);
        // A live event goes out before its kill line is read (see klog::join):
        // remembered, so that a restart reading that line does not report it.
        if let (Some(account), Some(ktime)) = (self.account.as_mut(), event.ktime_ns)
            && event.source == EventSource::Ebpf
        {
            account.sent(event.victim.pid, ktime);
        }
        if let Some(otlp) = self.otlp {
            otlp.emit(event);
        }
        self.to_stdout("an event", |out| JsonWriter.event(out, event));
        Ok(Flow::Continue)
    }

    fn warning(&mut self, warning: Warning) -> anyhow::Result<Flow> {
        self.metrics.record_warning(&warning);
        if let Some(otlp) = self.otlp {
            otlp.emit_warning(&warning);
        }
        self.to_stdout("a warning", |out| JsonWriter.warning(out, &warning));
        Ok(Flow::Continue)
    }

    fn kernel_report(&mut self, record: &KernelReportRecord) -> anyhow::Result<Flow> {
        if let Some(otlp) = self.otlp {
            otlp.emit_kernel_report(record);
        }
        self.to_stdout("a kernel report", |out| JsonWriter.kernel_report(out, record));
        Ok(Flow::Continue)
    }

    fn stats(&mut self, stats: PipelineStats) {
        self.metrics.update_pipeline(stats);
        if let Some(account) = self.account.as_mut() {
            account.update(&stats, self.metrics);
        }
        if let Some(otlp) = self.otlp {
            let s = otlp.stats();
            self.metrics
                .update_exporter("otlp", ExporterTotals { failures: s.failures, dropped: s.dropped, queued: s.queued });
        }
    }

    /// At once, not at the next tick: the daemon keeps its position in the
    /// kernel log, which a SIGKILL must not set back. The rest (the kernel's
    /// kill count, the exporter's) waits for the tick.
    fn delivered(&mut self, counts: PipelineStats) {
        self.metrics.update_pipeline(counts);
        if let Some(account) = self.account.as_mut() {
            account.keep_position(&counts);
        }
    }
}

pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let shared = Arc::new(Shared { metrics: Metrics::new(config.max_label_series), ready: AtomicBool::new(false) });
    let listener = tokio::net::TcpListener::bind(config.metrics_address)
        .await
        .with_context(|| format!("listening on {} (--metrics-address)", config.metrics_address))?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::clone(&shared));
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = server_stopped.await;
            })
            .await
    });
    tracing::info!(address = %config.metrics_address, "serving /metrics, /healthz, /readyz");

    let account = Account::load(&config.state_dir);
    let kernel_log = match (&account, config.kernel_log) {
        (_, false) => KernelLogMode::Off,
        (Some(account), true) => {
            KernelLogMode::JoinAndReport { from: account.position(), sent: account.sent_unjoined() }
        }
        (None, true) => KernelLogMode::Join,
    };
    let options = PipelineOptions {
        plan: AttachPlan { confirm_kills: true, ..AttachPlan::default() },
        ring_bytes: DEFAULT_RING_BYTES,
        // The eBPF programs' own messages: on (debug) when the log filter lets debug through.
        ebpf_log: crate::probe::EbpfLog::for_log_filter(&config.log),
        cri_socket: config.cri_socket.clone(),
        cri_timeout: config.cri_timeout,
        node_name: config.node_name.clone(),
        kernel_log,
        warnings: config.warnings.map(WarnOptions::from_settings),
    };
    let mut pipeline = Pipeline::start(&options).await?;
    for method in &pipeline.attached().methods {
        shared.metrics.probe_attached(method.role().name(), method.name());
    }
    let gauges = pipeline.foresight().map(|foresight| {
        let pods = PodResolver::new(config.cri_socket.clone(), config.cri_timeout);
        gauges::spawn(foresight.view(), pods, Arc::clone(&shared))
    });
    let otlp = if otlp::configured() {
        let exporter = OtlpExporter::from_env(config.otlp_queue, config.node_name.as_deref())?;
        tracing::info!(queue = config.otlp_queue, "exporting OTLP logs and metrics");
        Some(exporter)
    } else {
        tracing::info!("OTLP export off (set OTEL_EXPORTER_OTLP_ENDPOINT to enable)");
        None
    };
    shared.ready.store(true, Ordering::Relaxed);

    let mut deliver =
        Deliver { metrics: &shared.metrics, otlp: otlp.as_ref(), events_stdout: config.events_stdout, account };
    pipeline.run(None, &mut deliver).await?;
    tracing::info!("shutting down: flushing exporters");
    shared.ready.store(false, Ordering::Relaxed);
    if let Some(gauges) = gauges {
        gauges.abort();
    }
    let stats = pipeline.stats();
    drop(pipeline);
    // The last position, so a restart does not report this run's kills again.
    Deliver::stats(&mut deliver, stats);
    if let Some(otlp) = otlp {
        let s = otlp.shutdown(FLUSH_DEADLINE).await;
        tracing::info!(
            delivered = s.delivered,
            failures = s.failures,
            dropped = s.dropped,
            undelivered = s.queued,
            "OTLP flushed"
        );
    }
    let _ = std::io::stdout().flush();
    let _ = stop_server.send(());
    let _ = server.await;
    log_stats!("stopped", stats, events = stats.events);
    Ok(())
}
