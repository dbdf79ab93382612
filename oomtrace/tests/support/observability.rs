//! Helpers for integration tests that check oomtrace's exports against the
//! real backends `scripts/observability.sh up` runs on this machine:
//!
//! * Prometheus on 127.0.0.1:19090 (`PROM_PORT`), job `oomtrace`, scraping
//!   every second whatever [`set_scrape_target`] wrote to its file_sd
//!   `targets.json`. A new target shows up in queries after ~2-7 s (file_sd
//!   refresh, the discovery manager's 5 s update throttle, first scrape), so
//!   wait with [`wait_for_series`] rather than sleeping. Series carry
//!   `instance="<the target>"`: select on it, the TSDB is shared by every test.
//!   Prometheus drops empty labels: a kill outside Kubernetes shows up as
//!   `oomtrace_oom_kills_total{scope="memcg"}`, without namespace/pod/container,
//!   and a counter family has no series at all before its first increment.
//! * An OTLP receiver on gRPC 127.0.0.1:14317 (`OTLP_GRPC_PORT`) and HTTP
//!   127.0.0.1:14318 (`OTLP_HTTP_PORT`) that appends every export request as
//!   one JSON line to `otlp-received.jsonl`; [`OtlpReceived`] reads it back.
//!   The file is shared and append-only: note [`OtlpReceived::mark`] before
//!   starting a daemon and read from there, and/or give each daemon its own
//!   `OTEL_SERVICE_NAME` and filter on it ([`OtlpReceived::for_service`]).
//!   [`otlp_stop`] / [`otlp_start`] take the receiver down and up again (a
//!   collector outage).
//!
//! State lives in /run/oomtrace-test/obs (`OOMTRACE_TEST_OBS_DIR`).
//! Standalone (std, serde_json, libc): include it with
//! `#[path = "support/observability.rs"] mod observability;`.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

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

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(250);
const HINT: &str = "start it with scripts/observability.sh up";

fn port(env: &str, default: u16) -> u16 {
    std::env::var(env).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The state directory: `$OOMTRACE_TEST_OBS_DIR` or [`DEFAULT_DIR`].
pub fn state_dir() -> PathBuf {
    std::env::var(DIR_ENV).ok().filter(|s| !s.is_empty()).map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// Prometheus' file_sd targets file.
pub fn targets_file() -> PathBuf {
    state_dir().join("targets.json")
}

/// The JSON lines the OTLP receiver appends to.
pub fn received_file() -> PathBuf {
    state_dir().join("otlp-received.jsonl")
}

/// `scripts/observability.sh` of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/observability.sh")
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
pub fn prometheus_available() -> Result<String, String> {
    let addr = prometheus_address();
    match http_get(&addr, "/-/ready") {
        Ok((200, _)) => Ok(format!("http://{addr}")),
        Ok((status, body)) => {
            Err(format!("Prometheus on {addr} is not ready (HTTP {status}: {}): {HINT}", body.trim()))
        }
        Err(error) => Err(format!("Prometheus is not running on {addr} ({error}): {HINT}")),
    }
}

/// The receiver's endpoints `(grpc, http)`, e.g. `("http://127.0.0.1:14317",
/// "http://127.0.0.1:14318")`, when both answer, else why not.
pub fn otlp_available() -> Result<(String, String), String> {
    let grpc = otlp_grpc_address();
    let http = otlp_http_address();
    match http_get(&http, "/healthz") {
        Ok((200, _)) => {}
        Ok((status, body)) => {
            return Err(format!("the OTLP sink on {http} answers HTTP {status} ({}): {HINT}", body.trim()));
        }
        Err(error) => return Err(format!("the OTLP sink is not running on {http} ({error}): {HINT}")),
    }
    connect(&grpc, Duration::from_secs(2))
        .map_err(|error| format!("the OTLP sink does not accept gRPC on {grpc} ({error}): {HINT}"))?;
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
pub fn otlp_env(transport: Transport, metric_interval: Duration) -> Vec<(String, String)> {
    let (endpoint, protocol) = match transport {
        Transport::Grpc => (otlp_grpc_address(), "grpc"),
        Transport::HttpProtobuf => (otlp_http_address(), "http/protobuf"),
        Transport::HttpJson => (otlp_http_address(), "http/json"),
    };
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://{endpoint}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), protocol.to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), metric_interval.as_millis().to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Prometheus

/// Points Prometheus at one target (`"127.0.0.1:PORT"`), replacing the
/// previous ones.
pub fn set_scrape_target(target: &str) -> Result<(), String> {
    set_scrape_targets(&[target])
}

/// Writes the file_sd targets file atomically (temporary file + rename);
/// an empty list scrapes nothing. Prometheus re-reads it within ~1 s.
pub fn set_scrape_targets(targets: &[&str]) -> Result<(), String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = targets_file();
    let dir = path.parent().expect("targets file has a directory");
    let groups = if targets.is_empty() {
        serde_json::json!([])
    } else {
        serde_json::json!([{ "targets": targets, "labels": {} }])
    };
    let tmp = dir.join(format!(".targets.json.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let text = serde_json::to_string_pretty(&groups).expect("serialize targets");
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("writing {}: {e}: {HINT}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}: {e}", tmp.display(), path.display())
    })
}

/// Runs an instant query; returns `data.result` (for vector queries an array
/// of `{"metric": {labels}, "value": [time, "value"]}`).
pub fn prom_query(base: &str, promql: &str) -> Result<Value, String> {
    let (addr, prefix) = split_base(base);
    let path = format!("{prefix}/api/v1/query?query={}", urlencode(promql));
    let (status, body) = http_get(&addr, &path)?;
    let json: Value = serde_json::from_str(&body)
        .map_err(|e| format!("query {promql:?}: HTTP {status} with a body that is not JSON ({e}): {body}"))?;
    if json["status"] != "success" {
        return Err(format!(
            "query {promql:?}: HTTP {status}, {}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or(&body)
        ));
    }
    Ok(json["data"]["result"].clone())
}

/// Polls `promql` until `predicate` accepts its result (the series array),
/// returning that result, or fails after `timeout` saying what it last saw.
pub fn wait_for_series(
    base: &str,
    promql: &str,
    mut predicate: impl FnMut(&[Value]) -> bool,
    timeout: Duration,
) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match prom_query(base, promql) {
            Ok(Value::Array(series)) => {
                if predicate(&series) {
                    return Ok(series);
                }
                Value::Array(series).to_string()
            }
            Ok(other) => format!("a non-vector result {other}"),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(format!("after {timeout:?}, query {promql:?} still gives {last}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until Prometheus has scraped `target` successfully (`up == 1`).
pub fn wait_for_scrape(base: &str, target: &str, timeout: Duration) -> Result<(), String> {
    let promql = format!(r#"up{{job="{JOB}",instance="{target}"}}"#);
    wait_for_series(base, &promql, |s| s.iter().any(|x| sample_value(x) == Some(1.0)), timeout).map(|_| ())
}

/// The value of one series of an instant-vector result.
pub fn sample_value(series: &Value) -> Option<f64> {
    match &series["value"][1] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// One label of one series of a query result.
pub fn series_label<'a>(series: &'a Value, label: &str) -> Option<&'a str> {
    series["metric"][label].as_str()
}

/// `http://host:port/prefix` -> (`host:port`, `/prefix`).
fn split_base(base: &str) -> (String, String) {
    let rest = base.strip_prefix("http://").unwrap_or(base);
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].trim_end_matches('/').to_owned()),
        None => (rest.to_owned(), String::new()),
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Plain HTTP/1.1 over std (no HTTP client crate in the tests)

/// `GET path` on `addr` (`host:port`, an optional `http://` is ignored);
/// returns the status and the body (chunked transfer encoding decoded).
/// Also good for the daemon's `/metrics`, `/healthz`, `/readyz`.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    http_request(addr, "GET", path, None)
}

/// `POST path` with a body of `content_type`.
pub fn http_post(addr: &str, path: &str, content_type: &str, body: &[u8]) -> Result<(u16, String), String> {
    http_request(addr, "POST", path, Some((content_type, body)))
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
    let mut last = format!("{addr} resolves to no address");
    for sa in addrs {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("connecting to {sa}: {e}"),
        }
    }
    Err(last)
}

fn http_request(addr: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<(u16, String), String> {
    let addr = addr.strip_prefix("http://").unwrap_or(addr).trim_end_matches('/');
    let what = format!("{method} http://{addr}{path}");
    let mut stream = connect(addr, HTTP_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(|e| format!("{what}: {e}"))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(|e| format!("{what}: {e}"))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: oomtrace-tests\r\nAccept: */*\r\nConnection: close\r\n"
    )
    .into_bytes();
    if let Some((content_type, data)) = body {
        request.extend_from_slice(
            format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", data.len()).as_bytes(),
        );
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(data);
    } else {
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).map_err(|e| format!("{what}: sending: {e}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("{what}: reading the response: {e}"))?;
    parse_response(&raw).map_err(|e| format!("{what}: {e}"))
}

fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response head in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err(format!("body truncated: {} of {n} bytes", rest.len()));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or("chunked body: missing chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("chunked body: bad size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out); // trailers, if any, are ignored
        }
        if data.len() < size {
            return Err(format!("chunked body truncated: {} of {size} bytes", data.len()));
        }
        out.extend_from_slice(&data[..size]);
        data = data[size..].strip_prefix(b"\r\n").ok_or("chunked body: no CRLF after a chunk")?;
    }
}

/// Samples of a Prometheus text exposition (e.g. the daemon's /metrics):
/// `(name, labels, value)`, comments skipped.
pub fn parse_exposition(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut key = String::new();
            let mut end = inner.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        // a quoted value with \\, \" and \n escapes
                        let mut value = String::new();
                        chars.next(); // opening quote
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => {}
                                },
                                '"' => break,
                                _ => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    _ => key.push(c),
                }
            }
            rest = &inner[end.min(inner.len())..];
        }
        let Some(value) = rest.split_whitespace().next() else { continue };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        out.push((name, labels, value));
    }
    out
}

// ---------------------------------------------------------------------------
// OTLP

/// Stops the OTLP receiver (`scripts/observability.sh otlp-stop`): its ports
/// refuse connections until [`otlp_start`].
pub fn otlp_stop() -> Result<(), String> {
    run_script("otlp-stop")
}

/// Starts the OTLP receiver again on the same ports, appending to the same file.
pub fn otlp_start() -> Result<(), String> {
    run_script("otlp-start")
}

fn run_script(command: &str) -> Result<(), String> {
    let script = script();
    let out = Command::new("bash")
        .arg(&script)
        .arg(command)
        .output()
        .map_err(|e| format!("running {} {command}: {e}", script.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {command} failed ({}): {}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The export requests the receiver wrote, each
/// `{"signal", "transport", "encoding", "received_unix_nano", "request"}`,
/// where `request` is the `Export*ServiceRequest` in proto field names
/// (64-bit integers as strings).
#[derive(Clone, Debug, Default)]
pub struct OtlpReceived {
    pub requests: Vec<Value>,
    /// File offset just past the last complete line read: the next `mark`.
    pub end_offset: u64,
}

/// One log record, flattened.
#[derive(Clone, Debug, Default)]
pub struct LogRecord {
    pub transport: String,
    pub encoding: String,
    pub resource: BTreeMap<String, Value>,
    pub scope_name: String,
    pub event_name: Option<String>,
    /// 1..=24 (`WARN` = 13); 0 when unset.
    pub severity_number: u32,
    pub severity_text: Option<String>,
    /// The body as plain JSON (see [`any_value`]).
    pub body: Value,
    /// Attribute key -> plain JSON value (string, integer, bool, double, ...).
    pub attributes: BTreeMap<String, Value>,
    pub time_unix_nano: Option<u64>,
    pub observed_time_unix_nano: Option<u64>,
    pub raw: Value,
}

impl LogRecord {
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }

    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attributes.get(key).and_then(Value::as_bool)
    }

    pub fn service_name(&self) -> Option<&str> {
        self.resource.get("service.name").and_then(Value::as_str)
    }
}

/// One metric data point, flattened.
#[derive(Clone, Debug, Default)]
pub struct MetricPoint {
    pub name: String,
    pub description: String,
    pub unit: String,
    /// `sum`, `gauge`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: String,
    /// Sums only.
    pub monotonic: Option<bool>,
    /// e.g. `AGGREGATION_TEMPORALITY_CUMULATIVE`.
    pub temporality: Option<String>,
    /// `as_int` / `as_double` of sums and gauges, `sum` of the others.
    pub value: Option<f64>,
    /// Histograms and summaries.
    pub count: Option<u64>,
    pub attributes: BTreeMap<String, Value>,
    pub resource: BTreeMap<String, Value>,
    pub scope_name: String,
    pub start_time_unix_nano: Option<u64>,
    pub time_unix_nano: Option<u64>,
    pub transport: String,
    pub raw: Value,
}

impl MetricPoint {
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    pub fn service_name(&self) -> Option<&str> {
        self.resource.get("service.name").and_then(Value::as_str)
    }
}

impl OtlpReceived {
    /// Everything in the file (an absent file reads as nothing).
    pub fn read() -> Result<Self, String> {
        Self::read_since(0)
    }

    /// The current end of the file: pass it to [`Self::read_since`] to see
    /// only what arrives afterwards.
    pub fn mark() -> u64 {
        std::fs::metadata(received_file()).map_or(0, |m| m.len())
    }

    /// The complete lines from byte `offset` on (a line still being written
    /// is left for the next read).
    pub fn read_since(offset: u64) -> Result<Self, String> {
        let path = received_file();
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let complete = data[start..].iter().rposition(|&b| b == b'\n').map_or(start, |i| start + i + 1);
        let mut requests = Vec::new();
        for (n, line) in data[start..complete].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = serde_json::from_slice(line).map_err(|e| {
                format!(
                    "{} line {} after offset {offset}: {e}: {}",
                    path.display(),
                    n + 1,
                    String::from_utf8_lossy(line)
                )
            })?;
            requests.push(value);
        }
        Ok(Self { requests, end_offset: complete as u64 })
    }

    /// Re-reads the whole file until `predicate` accepts it.
    pub fn wait_until(predicate: impl FnMut(&OtlpReceived) -> bool, timeout: Duration) -> Result<Self, String> {
        Self::wait_until_since(0, predicate, timeout)
    }

    /// Re-reads from `offset` until `predicate` accepts what is there.
    pub fn wait_until_since(
        offset: u64,
        mut predicate: impl FnMut(&OtlpReceived) -> bool,
        timeout: Duration,
    ) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = Self::read_since(offset)?;
            if predicate(&received) {
                return Ok(received);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "after {timeout:?} the OTLP sink has {} requests since offset {offset} ({}), none matching; \
                     log records: {:?}",
                    received.requests.len(),
                    received.summary(),
                    received.log_records().iter().map(|r| (&r.body, &r.attributes)).collect::<Vec<_>>()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The requests of one signal (`logs`, `metrics`, `traces`).
    pub fn requests_of<'a>(&'a self, signal: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.requests.iter().filter(move |r| r["signal"] == signal)
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

    /// Every log record of every logs request, in arrival order.
    pub fn log_records(&self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        for request in self.requests_of("logs") {
            let transport = request["transport"].as_str().unwrap_or_default();
            let encoding = request["encoding"].as_str().unwrap_or_default();
            for rl in array(&request["request"]["resource_logs"]) {
                let resource = attributes(&rl["resource"]["attributes"]);
                for sl in array(&rl["scope_logs"]) {
                    let scope_name = sl["scope"]["name"].as_str().unwrap_or_default();
                    for record in array(&sl["log_records"]) {
                        out.push(LogRecord {
                            transport: transport.to_owned(),
                            encoding: encoding.to_owned(),
                            resource: resource.clone(),
                            scope_name: scope_name.to_owned(),
                            event_name: record["event_name"].as_str().filter(|s| !s.is_empty()).map(str::to_owned),
                            severity_number: severity_number(&record["severity_number"]),
                            severity_text: record["severity_text"].as_str().map(str::to_owned),
                            body: any_value(&record["body"]),
                            attributes: attributes(&record["attributes"]),
                            time_unix_nano: as_u64(&record["time_unix_nano"]),
                            observed_time_unix_nano: as_u64(&record["observed_time_unix_nano"]),
                            raw: record.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Every data point of the metric `name` (e.g. `oomtrace.oom_kills`), in
    /// arrival order: with cumulative temporality the last point of a given
    /// attribute set holds its current total.
    pub fn metric_points(&self, name: &str) -> Vec<MetricPoint> {
        let mut out = Vec::new();
        for request in self.requests_of("metrics") {
            let transport = request["transport"].as_str().unwrap_or_default();
            for rm in array(&request["request"]["resource_metrics"]) {
                let resource = attributes(&rm["resource"]["attributes"]);
                for sm in array(&rm["scope_metrics"]) {
                    let scope_name = sm["scope"]["name"].as_str().unwrap_or_default();
                    for metric in array(&sm["metrics"]).iter().filter(|m| m["name"] == name) {
                        let Some((kind, data)) = ["sum", "gauge", "histogram", "exponential_histogram", "summary"]
                            .iter()
                            .find_map(|k| metric.get(*k).map(|d| (*k, d)))
                        else {
                            continue;
                        };
                        for point in array(&data["data_points"]) {
                            let value = match kind {
                                "sum" | "gauge" => as_f64(&point["as_int"]).or_else(|| as_f64(&point["as_double"])),
                                _ => as_f64(&point["sum"]),
                            };
                            out.push(MetricPoint {
                                name: name.to_owned(),
                                description: metric["description"].as_str().unwrap_or_default().to_owned(),
                                unit: metric["unit"].as_str().unwrap_or_default().to_owned(),
                                kind: kind.to_owned(),
                                monotonic: data["is_monotonic"].as_bool().or(if kind == "sum" {
                                    Some(false)
                                } else {
                                    None
                                }),
                                temporality: data["aggregation_temporality"].as_str().map(str::to_owned),
                                value,
                                count: as_u64(&point["count"]),
                                attributes: attributes(&point["attributes"]),
                                resource: resource.clone(),
                                scope_name: scope_name.to_owned(),
                                start_time_unix_nano: as_u64(&point["start_time_unix_nano"]),
                                time_unix_nano: as_u64(&point["time_unix_nano"]),
                                transport: transport.to_owned(),
                                raw: point.clone(),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Names of every metric received.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .requests_of("metrics")
            .flat_map(|r| array(&r["request"]["resource_metrics"]).iter())
            .flat_map(|rm| array(&rm["scope_metrics"]).iter())
            .flat_map(|sm| array(&sm["metrics"]).iter())
            .filter_map(|m| m["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A list of OTLP `KeyValue`s as key -> plain value.
pub fn attributes(list: &Value) -> BTreeMap<String, Value> {
    array(list).iter().filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), any_value(&kv["value"])))).collect()
}

/// An OTLP `AnyValue` as plain JSON: strings, integers (int64 arrives as a
/// string and is parsed), bools, doubles, arrays, kvlists as objects, bytes
/// as their base64 string; an empty value as null.
pub fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("string_value") {
        return s.clone();
    }
    if let Some(i) = v.get("int_value") {
        return match i {
            Value::String(s) => s.parse::<i64>().map_or_else(|_| i.clone(), Value::from),
            other => other.clone(),
        };
    }
    if let Some(b) = v.get("bool_value") {
        return b.clone();
    }
    if let Some(d) = v.get("double_value") {
        return d.clone();
    }
    if let Some(a) = v.get("array_value") {
        return Value::Array(array(&a["values"]).iter().map(any_value).collect());
    }
    if let Some(kv) = v.get("kvlist_value") {
        return Value::Object(attributes(&kv["values"]).into_iter().collect());
    }
    if let Some(b) = v.get("bytes_value") {
        return b.clone();
    }
    Value::Null
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// `SEVERITY_NUMBER_WARN` (how MessageToDict renders the enum) or a number -> 13.
fn severity_number(v: &Value) -> u32 {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).unwrap_or(0);
    }
    let Some(name) = v.as_str().and_then(|s| s.strip_prefix("SEVERITY_NUMBER_")) else { return 0 };
    let (level, step) = match name.find(|c: char| c.is_ascii_digit()) {
        Some(i) => (&name[..i], name[i..].parse::<u32>().unwrap_or(1)),
        None => (name, 1),
    };
    let base = match level {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return 0,
    };
    base + step.clamp(1, 4) - 1
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn http_bodies_are_dechunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (200, "Wikipedia".to_owned()));
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_response(raw).unwrap(), (404, "abc".to_owned()));
    }

    #[test]
    fn exposition_and_values() {
        let text = "# HELP x y\nfoo_total{a=\"b\\\"c\",d=\"e\"} 3\nbar 1.5\n# EOF\n";
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].1["a"], "b\"c");
        assert_eq!(samples[0].2, 3.0);
        assert_eq!(severity_number(&Value::from("SEVERITY_NUMBER_WARN")), 13);
        assert_eq!(severity_number(&Value::from("SEVERITY_NUMBER_ERROR3")), 19);
        assert_eq!(urlencode("up{a=\"b c\"}"), "up%7Ba%3D%22b%20c%22%7D");
        assert_eq!(any_value(&serde_json::json!({"int_value": "42"})), Value::from(42));
    }
}
