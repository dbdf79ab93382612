//! What the OTLP receiver of `scripts/observability.sh` got: it appends every
//! export request as one JSON line to `otlp-received.jsonl`. The file is
//! shared and append-only: note [`otlp_mark`] before starting a daemon and
//! read from there, and/or give each daemon its own `OTEL_SERVICE_NAME` and
//! filter on it ([`OtlpReceived::for_service`]).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{
    POLL, received_file,
    records::{self, LogRecord, MetricPoint, attributes},
    run_script, state_dir,
};

/// How long a receiver or collector started here may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Stops the OTLP receiver (`scripts/observability.sh otlp-stop`): its ports
/// refuse connections until the outage [ends](OtlpOutage::end), or the
/// returned guard is dropped (a failing test must not leave the receiver down
/// for the tests after it).
pub fn otlp_outage() -> Result<OtlpOutage> {
    run_script("otlp-stop")?;
    Ok(OtlpOutage { ended: false })
}

/// The OTLP receiver stopped by [`otlp_outage`].
#[must_use = "the receiver is started again when this is dropped"]
pub struct OtlpOutage {
    ended: bool,
}

impl OtlpOutage {
    /// Starts the OTLP receiver again on the same ports, appending to the
    /// same file.
    pub fn end(mut self) -> Result<()> {
        self.ended = true;
        run_script("otlp-start")
    }
}

impl Drop for OtlpOutage {
    fn drop(&mut self) {
        if !self.ended
            && let Err(error) = run_script("otlp-start")
        {
            eprintln!("restarting the OTLP receiver after a test: {error:#}");
        }
    }
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
        Self::read_file_since(&received_file(), offset)
    }

    /// [`OtlpReceived::read_since`] of another receiver's file (a [`Sink`]'s).
    pub fn read_file_since(path: &Path, offset: u64) -> Result<Self> {
        let data = match std::fs::read(path) {
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
        predicate: impl FnMut(&OtlpReceived) -> bool,
        timeout: Duration,
    ) -> Result<Self> {
        Self::wait_until_in(&received_file(), offset, predicate, timeout)
    }

    /// [`OtlpReceived::wait_until_since`] on another receiver's file.
    pub fn wait_until_in(
        path: &Path,
        offset: u64,
        mut predicate: impl FnMut(&OtlpReceived) -> bool,
        timeout: Duration,
    ) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = Self::read_file_since(path, offset)?;
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

/// The TLS a [`Sink`] serves: its certificate and key (PEM files) and, for
/// mutual TLS, the CA that must sign client certificates.
#[derive(Clone, Debug)]
pub struct SinkTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// A test's own OTLP receiver (tests-runtime/otlp_sink.py, run with the
/// interpreter of the venv `scripts/observability.sh` made) on ports of its
/// own, appending to its own file: the shared one stays untouched. Stopped
/// (SIGKILL) on drop.
pub struct Sink {
    child: Option<Child>,
    /// `127.0.0.1:<port>` for OTLP/gRPC and OTLP/HTTP.
    pub grpc: String,
    pub http: String,
    /// Its JSON lines (the shared receiver's format).
    pub out: PathBuf,
    log: PathBuf,
}

impl Sink {
    /// Starts it on `grpc` and `http` (`127.0.0.1:<port>`), plain text or
    /// with `tls`, and waits until both ports accept connections.
    pub fn start(dir: &Path, grpc: &str, http: &str, tls: Option<&SinkTls>) -> Result<Self> {
        let python = state_dir().join("venv/bin/python");
        anyhow::ensure!(python.exists(), "{} is missing: run scripts/observability.sh up", python.display());
        let script = crate::components::workspace_root().join("tests-runtime/otlp_sink.py");
        let out = dir.join("received.jsonl");
        let log = dir.join("sink.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut command = Command::new(&python);
        command.arg(&script).args(["--grpc", grpc, "--http", http, "--out"]).arg(&out);
        if let Some(tls) = tls {
            command.arg("--tls-cert").arg(&tls.cert).arg("--tls-key").arg(&tls.key);
            if let Some(ca) = &tls.client_ca {
                command.arg("--tls-client-ca").arg(ca);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("sink log")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let child = crate::http::listening(child, &[grpc, http], START_TIMEOUT, "the OTLP sink", &log)?;
        Ok(Sink { child: Some(child), grpc: grpc.to_owned(), http: http.to_owned(), out, log })
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its file's length now (see [`otlp_mark`]).
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.out).map_or(0, |m| m.len())
    }

    /// What it wrote (stdout and stderr): its start line, failed handshakes.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it now: its ports refuse connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `rotel-agent` binary (PyPI's rotel, a real OTLP collector written in
/// Rust): `ROTEL_AGENT` when set, else the one `scripts/observability.sh up`
/// installs in its venv.
pub fn rotel_agent() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ROTEL_AGENT") {
        let path = PathBuf::from(path);
        anyhow::ensure!(path.exists(), "ROTEL_AGENT={} does not exist", path.display());
        return Ok(path);
    }
    let lib = state_dir().join("venv/lib");
    let found = std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("site-packages/rotel/rotel-agent"))
        .find(|path| path.exists());
    found.with_context(|| format!("no rotel/rotel-agent under {}: run scripts/observability.sh up", lib.display()))
}

/// A rotel collector configured by the shipped
/// deploy/observability/collector/rotel.env, with only its receiving ports
/// (`receive`, `receive_http`) and its exporter's endpoint (`forward`,
/// OTLP/gRPC; `127.0.0.1:<port>` each) replaced; killed on drop.
pub struct Rotel {
    child: Child,
    log: PathBuf,
}

/// The collector configuration oomtrace ships for rotel.
const ROTEL_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/observability/collector/rotel.env");

/// The variables of [`ROTEL_CONFIG`] with the test's ports and endpoint.
fn rotel_env(receive: &str, receive_http: &str, forward: &str, dir: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(ROTEL_CONFIG).with_context(|| format!("reading {ROTEL_CONFIG}"))?;
    let mut env: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(key, value)| {
            let value = match key {
                "ROTEL_OTLP_GRPC_ENDPOINT" => receive.to_owned(),
                "ROTEL_OTLP_HTTP_ENDPOINT" => receive_http.to_owned(),
                "ROTEL_OTLP_EXPORTER_ENDPOINT" => format!("http://{forward}"),
                _ => value.to_owned(),
            };
            (key.to_owned(), value)
        })
        .collect();
    for key in ["ROTEL_OTLP_GRPC_ENDPOINT", "ROTEL_OTLP_EXPORTER_ENDPOINT"] {
        if !env.iter().any(|(k, _)| k == key) {
            bail!("{ROTEL_CONFIG} does not set {key}");
        }
    }
    env.push(("ROTEL_PID_FILE".to_owned(), dir.join("rotel.pid").display().to_string()));
    env.push(("ROTEL_LOG_FILE".to_owned(), dir.join("rotel-agent.log").display().to_string()));
    Ok(env)
}

impl Rotel {
    pub fn start(dir: &Path, receive: &str, receive_http: &str, forward: &str) -> Result<Self> {
        let agent = rotel_agent()?;
        let log = dir.join("rotel.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&agent)
            .arg("start")
            .env_clear()
            .envs(rotel_env(receive, receive_http, forward, dir)?)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("rotel log")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", agent.display()))?;
        let child = crate::http::listening(child, &[receive], START_TIMEOUT, "rotel", &log)?;
        Ok(Rotel { child, log })
    }

    pub fn version(&self) -> String {
        rotel_agent()
            .ok()
            .and_then(|agent| Command::new(agent).arg("--version").output().ok())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
