//! The real backends `scripts/observability.sh up` runs on this machine:
//!
//! * Prometheus on 127.0.0.1:19090 (`PROM_PORT`), job `oomtrace`, scraping
//!   every second whatever the file_sd `targets.json` names ([`prometheus`]).
//!   A new target shows up in queries after ~2-7 s (file_sd refresh, the
//!   discovery manager's 5 s update throttle, first scrape), so wait with
//!   [`prometheus::wait_for_series`] rather than sleeping. Series carry
//!   `instance="<the target>"`: select on it, the TSDB is shared by every
//!   user. Prometheus drops empty labels, and a counter family has no series
//!   at all before its first increment.
//! * An OTLP receiver on gRPC 127.0.0.1:14317 (`OTLP_GRPC_PORT`) and HTTP
//!   127.0.0.1:14318 (`OTLP_HTTP_PORT`) that appends every export request as
//!   one JSON line to `otlp-received.jsonl` ([`otlp`], [`records`]).
//!
//! State lives in /run/oomtrace-test/obs (`OOMTRACE_TEST_OBS_DIR`).

pub mod exposition;
pub mod otlp;
pub mod prometheus;
pub mod records;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};

pub use self::{
    exposition::parse_exposition,
    otlp::{
        OtlpCounts, OtlpOutage, OtlpReceived, Rotel, Sink, SinkTls, otlp_counts_since, otlp_mark, otlp_outage,
        rotel_agent,
    },
    prometheus::{
        KeptScrapeTarget, LoadedRules, ScrapeTarget, alerts, query, query_range, query_value, rule_groups, rules_dir,
        sample_value, series_label, set_scrape_target, set_scrape_targets, targets_file, wait_for_alerts,
        wait_for_scrape, wait_for_series, wait_for_value,
    },
    records::{LogRecord, MetricPoint},
};
use crate::{components, http};

/// Where `scripts/observability.sh` keeps its state.
pub const DEFAULT_DIR: &str = "/run/oomtrace-test/obs";
/// Environment variable naming another state directory (same as the script's).
pub const DIR_ENV: &str = "OOMTRACE_TEST_OBS_DIR";
pub const PROM_PORT_ENV: &str = "PROM_PORT";
pub const OTLP_GRPC_PORT_ENV: &str = "OTLP_GRPC_PORT";
pub const OTLP_HTTP_PORT_ENV: &str = "OTLP_HTTP_PORT";
pub const DEFAULT_PROM_PORT: u16 = 19090;
pub const DEFAULT_OTLP_GRPC_PORT: u16 = 14317;
pub const DEFAULT_OTLP_HTTP_PORT: u16 = 14318;
/// The Prometheus job the targets file feeds.
pub const JOB: &str = "oomtrace";

const POLL: Duration = Duration::from_millis(250);
const HINT: &str = "start it with scripts/observability.sh up";
const SCRIPT: &str = "observability.sh";

fn port(env: &str, default: u16) -> u16 {
    std::env::var(env).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The state directory: `$OOMTRACE_TEST_OBS_DIR` or [`DEFAULT_DIR`].
pub fn state_dir() -> PathBuf {
    std::env::var(DIR_ENV).ok().filter(|s| !s.is_empty()).map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// The JSON lines the OTLP receiver appends to.
pub fn received_file() -> PathBuf {
    state_dir().join("otlp-received.jsonl")
}

/// `scripts/observability.sh <command>` of this checkout.
fn run_script(command: &str) -> Result<()> {
    components::run(&components::workspace_root(), SCRIPT, command)
}

pub fn prometheus_address() -> String {
    format!("127.0.0.1:{}", port(PROM_PORT_ENV, DEFAULT_PROM_PORT))
}

pub fn otlp_grpc_address() -> String {
    format!("127.0.0.1:{}", port(OTLP_GRPC_PORT_ENV, DEFAULT_OTLP_GRPC_PORT))
}

pub fn otlp_http_address() -> String {
    format!("127.0.0.1:{}", port(OTLP_HTTP_PORT_ENV, DEFAULT_OTLP_HTTP_PORT))
}

/// Prometheus' base URL (`http://127.0.0.1:19090`) when it is ready, else why not.
pub fn prometheus_available() -> Result<String> {
    let addr = prometheus_address();
    match http::get(&addr, "/-/ready") {
        Ok((200, _)) => Ok(format!("http://{addr}")),
        Ok((status, body)) => bail!("Prometheus on {addr} is not ready (HTTP {status}: {}): {HINT}", body.trim()),
        Err(error) => Err(error).with_context(|| format!("Prometheus is not running on {addr}: {HINT}")),
    }
}

/// The receiver's endpoints `(grpc, http)`, e.g. `("http://127.0.0.1:14317",
/// "http://127.0.0.1:14318")`, when both answer, else why not.
pub fn otlp_available() -> Result<(String, String)> {
    let grpc = otlp_grpc_address();
    let http = otlp_http_address();
    match http::get(&http, "/healthz") {
        Ok((200, _)) => {}
        Ok((status, body)) => bail!("the OTLP sink on {http} answers HTTP {status} ({}): {HINT}", body.trim()),
        Err(error) => return Err(error).with_context(|| format!("the OTLP sink is not running on {http}: {HINT}")),
    }
    http::connect(&grpc, Duration::from_secs(2))
        .with_context(|| format!("the OTLP sink does not accept gRPC on {grpc}: {HINT}"))?;
    Ok((format!("http://{grpc}"), format!("http://{http}")))
}

/// An OTLP transport the daemon can be configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
    /// Needs opentelemetry-otlp's `http-json` feature in the daemon.
    HttpJson,
}

/// The standard environment that points an OTLP exporter at the receiver:
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` and a
/// `OTEL_METRIC_EXPORT_INTERVAL` of `metric_interval` (the SDK default is 60 s).
pub fn otlp_env(transport: Transport, metric_interval: Duration) -> Vec<(&'static str, String)> {
    let (endpoint, protocol) = match transport {
        Transport::Grpc => (otlp_grpc_address(), "grpc"),
        Transport::HttpProtobuf => (otlp_http_address(), "http/protobuf"),
        Transport::HttpJson => (otlp_http_address(), "http/json"),
    };
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{endpoint}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", metric_interval.as_millis().to_string()),
    ]
}
