//! What the OTLP receiver of `scripts/observability.sh` got: it appends every
//! export request as one JSON line to `otlp-received.jsonl`. The file is
//! shared and append-only: note [`otlp_mark`] before starting a daemon and
//! read from there, and/or give each daemon its own `OTEL_SERVICE_NAME` and
//! filter on it ([`OtlpReceived::for_service`]).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{
    POLL, received_file,
    records::{self, LogRecord, MetricPoint, attributes},
    run_script,
};

/// Stops the OTLP receiver (`scripts/observability.sh otlp-stop`): its ports
/// refuse connections until [`otlp_start`].
pub fn otlp_stop() -> Result<()> {
    run_script("otlp-stop")
}

/// Starts the OTLP receiver again on the same ports, appending to the same file.
pub fn otlp_start() -> Result<()> {
    run_script("otlp-start")
}

/// The receiver's file length now: pass it to [`OtlpReceived::read_since`]
/// to see only what arrives afterwards.
pub fn otlp_mark() -> u64 {
    std::fs::metadata(received_file()).map_or(0, |m| m.len())
}

/// The export requests the receiver wrote, each
/// `{"signal", "transport", "encoding", "received_unix_nano", "request"}`,
/// where `request` is the `Export*ServiceRequest` in proto field names
/// (64-bit integers as strings).
#[derive(Clone, Debug, Default)]
pub struct OtlpReceived {
    pub requests: Vec<Value>,
    /// File offset just past the last complete line read: the next [`otlp_mark`].
    pub end_offset: u64,
}

impl OtlpReceived {
    /// Everything in the file (an absent file reads as nothing).
    pub fn read() -> Result<Self> {
        Self::read_since(0)
    }

    /// The complete lines from byte `offset` on (a line still being written
    /// is left for the next read).
    pub fn read_since(offset: u64) -> Result<Self> {
        let path = received_file();
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let complete = data[start..].iter().rposition(|&b| b == b'\n').map_or(start, |i| start + i + 1);
        let mut requests = Vec::new();
        for (n, line) in data[start..complete].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = serde_json::from_slice(line).with_context(|| {
                format!("{} line {} after offset {offset}: {}", path.display(), n + 1, String::from_utf8_lossy(line))
            })?;
            requests.push(value);
        }
        Ok(Self { requests, end_offset: complete as u64 })
    }

    /// Re-reads from `offset` until `predicate` accepts what is there.
    pub fn wait_until_since(
        offset: u64,
        mut predicate: impl FnMut(&OtlpReceived) -> bool,
        timeout: Duration,
    ) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = Self::read_since(offset)?;
            if predicate(&received) {
                return Ok(received);
            }
            if Instant::now() >= deadline {
                bail!(
                    "after {timeout:?} the OTLP sink has {} requests since offset {offset} ({}), none matching; \
                     log records: {:?}",
                    received.requests.len(),
                    received.summary(),
                    received.log_records().iter().map(|r| (&r.body, &r.attributes)).collect::<Vec<_>>()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The requests of one signal (`logs`, `metrics`, `traces`).
    pub fn requests_of<'a>(&'a self, signal: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.requests.iter().filter(move |r| r["signal"] == signal)
    }

    /// Every log record of every logs request, in arrival order.
    pub fn log_records(&self) -> Vec<LogRecord> {
        records::log_records(self.requests_of("logs"))
    }

    /// Every data point of the metric `name` (e.g. `oomtrace.oom_kills`), in
    /// arrival order: with cumulative temporality the last point of a given
    /// attribute set holds its current total.
    pub fn metric_points(&self, name: &str) -> Vec<MetricPoint> {
        records::metric_points(self.requests_of("metrics"), name)
    }

    /// Only what a given `service.name` sent (resource-level filter).
    pub fn for_service(&self, service: &str) -> OtlpReceived {
        let keep = |resource: &Value| {
            attributes(&resource["attributes"]).get("service.name").and_then(Value::as_str) == Some(service)
        };
        let mut requests = Vec::new();
        for request in &self.requests {
            let list = match request["signal"].as_str() {
                Some("logs") => "resource_logs",
                Some("metrics") => "resource_metrics",
                Some("traces") => "resource_spans",
                _ => continue,
            };
            let kept: Vec<Value> = request["request"][list]
                .as_array()
                .map(|a| a.iter().filter(|r| keep(&r["resource"])).cloned().collect())
                .unwrap_or_default();
            if !kept.is_empty() {
                let mut request = request.clone();
                request["request"][list] = Value::Array(kept);
                requests.push(request);
            }
        }
        OtlpReceived { requests, end_offset: self.end_offset }
    }

    /// e.g. "logs/grpc: 2, metrics/grpc: 5".
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in &self.requests {
            *counts
                .entry(format!("{}/{}", r["signal"].as_str().unwrap_or("?"), r["transport"].as_str().unwrap_or("?")))
                .or_default() += 1;
        }
        counts.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
    }
}

/// What one `service.name` exported after `offset`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OtlpCounts {
    pub log_requests: usize,
    pub log_records: usize,
    pub metric_requests: usize,
}

pub fn otlp_counts_since(offset: u64, service: &str) -> Result<OtlpCounts> {
    let ours = OtlpReceived::read_since(offset)?.for_service(service);
    Ok(OtlpCounts {
        log_requests: ours.requests_of("logs").count(),
        log_records: ours.log_records().len(),
        metric_requests: ours.requests_of("metrics").count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_service_keeps_the_resources_of_one_service_name() {
        let resource = |service: &str| {
            serde_json::json!({"resource": {"attributes": [
                {"key": "host.name", "value": {"string_value": "h"}},
                {"key": "service.name", "value": {"string_value": service}}
            ]}, "scope_logs": [{"log_records": [{"body": {"string_value": "x"}}]}]})
        };
        let request = serde_json::json!({"signal": "logs", "transport": "grpc", "request": {
            "resource_logs": [resource("oomtrace-bench-1"), resource("other")]
        }});
        let received = OtlpReceived { requests: vec![request], end_offset: 0 };
        let ours = received.for_service("oomtrace-bench-1");
        assert_eq!((ours.requests_of("logs").count(), ours.log_records().len()), (1, 1));
        assert!(received.for_service("nobody").requests.is_empty());
    }
}
