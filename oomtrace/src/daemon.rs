//! `oomtrace daemon`: the node agent. Serves Prometheus metrics and health on
//! one listener, exports OTLP when configured, writes NDJSON events on
//! stdout, and on SIGTERM flushes what it holds before exiting.

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
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    config::DaemonConfig,
    pipeline::{Pipeline, PipelineOptions},
    probe::{AttachPlan, DEFAULT_RING_BYTES},
    sink::{
        Sink as _,
        json::JsonSink,
        otlp::{self, OtlpSink},
        prometheus::{ExporterTotals, Metrics},
    },
};

/// How often self-metrics are refreshed.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
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

    let options = PipelineOptions {
        plan: AttachPlan { confirm_kills: true, ..AttachPlan::default() },
        ring_bytes: DEFAULT_RING_BYTES,
        cri_socket: config.cri_socket.clone(),
        cri_timeout: config.cri_timeout,
        node_name: config.node_name.clone(),
    };
    let mut pipeline = Pipeline::start(&options).await?;
    let attached = pipeline.attached().clone();
    if let Some(program) = attached.victim {
        shared.metrics.probe_attached("victim", program);
    }
    if let Some(program) = attached.context {
        shared.metrics.probe_attached("context", program);
    }
    if attached.kill_signal {
        shared.metrics.probe_attached("kill_confirmation", "signal_generate");
    }
    let otlp = if otlp::configured() {
        let sink = OtlpSink::from_env(config.otlp_queue)?;
        tracing::info!(queue = config.otlp_queue, "exporting OTLP logs and metrics");
        Some(sink)
    } else {
        tracing::info!("OTLP export off (set OTEL_EXPORTER_OTLP_ENDPOINT to enable)");
        None
    };
    shared.ready.store(true, Ordering::Relaxed);

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            batch = pipeline.next_events(&mut events) => {
                batch?;
                for event in events.drain(..) {
                    shared.metrics.record(&event);
                    if let Some(otlp) = &otlp {
                        otlp.emit(&event);
                    }
                    if config.events_stdout
                        && let Err(error) = JsonSink.event(&mut std::io::stdout().lock(), &event)
                    {
                        // A closed stdout (nobody reading the logs) must not stop the agent.
                        tracing::debug!(%error, "could not write an event to stdout");
                    }
                }
            }
            _ = tick.tick() => {
                shared.metrics.update_pipeline(pipeline.poll_stats());
                if let Some(otlp) = &otlp {
                    let s = otlp.stats();
                    shared.metrics.update_exporter("otlp", ExporterTotals { failures: s.failures, dropped: s.dropped });
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    tracing::info!("shutting down: flushing exporters");
    shared.ready.store(false, Ordering::Relaxed);
    let stats = pipeline.stats();
    drop(pipeline);
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
    tracing::info!(
        events = stats.events,
        lost_ringbuf_full = stats.lost_ringbuf_full,
        partially_attributed = stats.partially_attributed,
        cri_failures = stats.cri_failures,
        "stopped"
    );
    Ok(())
}
