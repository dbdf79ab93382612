//! Prometheus and the OTLP receiver that `scripts/observability.sh up` runs
//! (the same ones oomtrace's tests use; see
//! oomtrace/tests/support/observability.rs): the file_sd scrape target,
//! instant queries, and what the receiver got.

use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::http;

const HINT: &str = "start it with scripts/observability.sh up";

fn port(env: &str, default: u16) -> u16 {
    std::env::var(env).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// State directory of scripts/observability.sh (`$OOMTRACE_TEST_OBS_DIR`).
fn state_dir() -> PathBuf {
    std::env::var("OOMTRACE_TEST_OBS_DIR")
        .ok()
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from("/run/oomtrace-test/obs"), PathBuf::from)
}

pub fn targets_file() -> PathBuf {
    state_dir().join("targets.json")
}

fn received_file() -> PathBuf {
    state_dir().join("otlp-received.jsonl")
}

pub fn prometheus_address() -> String {
    format!("127.0.0.1:{}", port("PROM_PORT", 19090))
}

pub fn otlp_grpc_address() -> String {
    format!("127.0.0.1:{}", port("OTLP_GRPC_PORT", 14317))
}

/// Adds one target to Prometheus' file_sd targets file; the file's previous
/// content (other users' targets) is put back on drop.
pub struct ScrapeTarget {
    previous: Option<String>,
}

impl ScrapeTarget {
    pub fn add(target: &str) -> Result<Self> {
        let path = targets_file();
        let previous = fs::read_to_string(&path).ok();
        let mut groups = previous
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|value| value.as_array().cloned())
            .unwrap_or_default();
        groups.push(serde_json::json!({ "targets": [target], "labels": {} }));
        write_atomically(&path, &Value::Array(groups).to_string())?;
        Ok(ScrapeTarget { previous })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let path = targets_file();
        let restored = self.previous.clone().unwrap_or_else(|| "[]\n".to_owned());
        if let Err(error) = write_atomically(&path, &restored) {
            eprintln!("xtask: warning: could not restore {}: {error:#}", path.display());
        }
    }
}

/// Temporary file + rename: Prometheus never reads half a file.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("json.xtask-{}.tmp", std::process::id()));
    fs::write(&tmp, text).with_context(|| format!("writing {} ({HINT})", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// An instant query; returns `data.result`.
pub fn query(promql: &str) -> Result<Vec<Value>> {
    let path = format!("/api/v1/query?query={}", http::urlencode(promql));
    let (status, body) = http::get(&prometheus_address(), &path)?;
    let json: Value = serde_json::from_str(&body)
        .with_context(|| format!("query {promql:?}: HTTP {status} with a body that is not JSON: {body}"))?;
    if json["status"] != "success" {
        bail!("query {promql:?}: HTTP {status}: {}", json["error"].as_str().unwrap_or(&body));
    }
    Ok(json["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The value of the first series of an instant query, if any.
pub fn query_value(promql: &str) -> Result<Option<f64>> {
    Ok(query(promql)?.first().and_then(|series| match &series["value"][1] {
        Value::String(s) => s.parse().ok(),
        other => other.as_f64(),
    }))
}

/// Polls `promql` until its value satisfies `accept`; the time it took.
pub fn wait_for_value(promql: &str, accept: impl Fn(f64) -> bool, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match query_value(promql) {
            Ok(Some(value)) if accept(value) => return Ok(started.elapsed()),
            Ok(value) => last = format!("{value:?}"),
            Err(error) => last = format!("{error:#}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("after {timeout:?} the query {promql:?} still gives {last}")
}

/// The receiver's file length now: what arrives later starts there.
pub fn otlp_mark() -> u64 {
    fs::metadata(received_file()).map_or(0, |m| m.len())
}

/// What one `service.name` exported after `offset`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OtlpCounts {
    pub log_requests: usize,
    pub log_records: usize,
    pub metric_requests: usize,
}

pub fn otlp_counts_since(offset: u64, service: &str) -> Result<OtlpCounts> {
    let path = received_file();
    let data = match fs::read(&path) {
        Ok(data) => data,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let mut counts = OtlpCounts::default();
    for line in data[start..].split(|&b| b == b'\n') {
        // A line still being written does not parse; the next read sees it.
        let Ok(request) = serde_json::from_slice::<Value>(line) else { continue };
        let (list, is_logs) = match request["signal"].as_str() {
            Some("logs") => ("resource_logs", true),
            Some("metrics") => ("resource_metrics", false),
            _ => continue,
        };
        let ours: Vec<&Value> = request["request"][list]
            .as_array()
            .map(|resources| resources.iter().filter(|r| service_of(&r["resource"]) == Some(service)).collect())
            .unwrap_or_default();
        if ours.is_empty() {
            continue;
        }
        if is_logs {
            counts.log_requests += 1;
            counts.log_records += ours
                .iter()
                .flat_map(|r| r["scope_logs"].as_array().into_iter().flatten())
                .map(|scope| scope["log_records"].as_array().map_or(0, Vec::len))
                .sum::<usize>();
        } else {
            counts.metric_requests += 1;
        }
    }
    Ok(counts)
}

fn service_of(resource: &Value) -> Option<&str> {
    resource["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == "service.name")
        .and_then(|kv| kv["value"]["string_value"].as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_service_name_of_a_resource() {
        let resource = serde_json::json!({"attributes": [
            {"key": "host.name", "value": {"string_value": "h"}},
            {"key": "service.name", "value": {"string_value": "oomtrace-bench-1"}}
        ]});
        assert_eq!(service_of(&resource), Some("oomtrace-bench-1"));
        assert_eq!(service_of(&serde_json::json!({})), None);
    }
}
