//! The time to know's OTLP receiver: an OTLP/gRPC logs and metrics server
//! (the official protocol types, `opentelemetry-proto`, served by tonic) in a
//! process of its own (`xtask otlp-receiver`), so its threads show in the
//! bench's threads table as a collector's would.
//!
//! It stamps each logs request as its handler starts (the request decoded),
//! answers at once, as a collector answers once its pipeline has the data,
//! and writes the requests from another thread once they pause, in the format of the tests'
//! receiver (tests-runtime/otlp_sink.py: one JSON line per request,
//! `received_unix_nano` and the request in proto field names), so the
//! testkit reads it. Metrics requests are answered and not written.
//!
//! Why not the tests' Python receiver: on 2 cores among a storm's hogs its
//! threads (gRPC's, then the interpreter's) waited ~20 ms per run for a CPU,
//! and that wait was most of "emit to receiver".

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{http, observability::otlp::START_TIMEOUT};
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{
            ExportLogsServiceRequest, ExportLogsServiceResponse,
            logs_service_server::{LogsService, LogsServiceServer},
        },
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
    },
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    logs::v1::LogRecord,
};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

/// The receiver process; killed on drop.
pub struct Receiver {
    child: Option<Child>,
    /// `127.0.0.1:<port>` for OTLP/gRPC.
    pub grpc: String,
    /// Its JSON lines.
    pub out: PathBuf,
}

impl Receiver {
    /// Starts `<xtask> otlp-receiver` (`xtask`: an xtask executable) on
    /// `grpc` writing to `<dir>/received.jsonl` and waits until it accepts
    /// connections.
    pub fn start(xtask: &Path, dir: &Path, grpc: &str) -> Result<Self> {
        let out = dir.join("received.jsonl");
        let log = dir.join("receiver.log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(xtask)
            .args(["otlp-receiver", "--grpc", grpc, "--out"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("the receiver's log")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} otlp-receiver", xtask.display()))?;
        let child = http::listening(child, &[grpc], START_TIMEOUT, "the OTLP receiver", &log)?;
        Ok(Self { child: Some(child), grpc: grpc.to_owned(), out })
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its file's length now: what arrives later is read from there.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.out).map_or(0, |m| m.len())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `xtask otlp-receiver`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReceiverArgs {
    /// Where to listen for OTLP/gRPC (`127.0.0.1:<port>`).
    #[arg(long)]
    pub grpc: SocketAddr,
    /// The JSON lines file to append each logs request to.
    #[arg(long)]
    pub out: PathBuf,
}

/// A logs request as it arrived.
struct Arrival {
    received_unix_nano: u64,
    request: ExportLogsServiceRequest,
}

struct Logs {
    arrivals: mpsc::Sender<Arrival>,
}

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let received_unix_nano = unix_nanos(SystemTime::now());
        let arrival = Arrival { received_unix_nano, request: request.into_inner() };
        self.arrivals.send(arrival).map_err(|_| Status::unavailable("the receiver's writer stopped"))?;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

struct Metrics;

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        _request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Serves until killed: the server on this thread's runtime, the writer on
/// its own thread.
pub fn serve(args: &ReceiverArgs) -> Result<()> {
    let file = File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let (arrivals, received) = mpsc::channel::<Arrival>();
    let writer = thread::Builder::new()
        .name("writer".to_owned())
        .spawn(move || write_all(received, BufWriter::new(file)))
        .context("starting the receiver's writer")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    let served = runtime.block_on(
        tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(Logs { arrivals }))
            .add_service(MetricsServiceServer::new(Metrics))
            .serve(args.grpc),
    );
    let _ = writer.join();
    served.with_context(|| format!("serving OTLP/gRPC on {}", args.grpc))
}

/// How long requests must pause before the writer writes those it holds.
const QUIET: Duration = Duration::from_millis(100);
/// The longest a request is held when they never pause.
const HOLD_MAX: Duration = Duration::from_secs(1);

/// Writes the requests, a line each, once they pause for [`QUIET`]: in a
/// storm they come every few ms, and turning each into JSON as it came took
/// ~0.7 ms of CPU per request that the daemon's and bpftrace's threads waited
/// behind (a collector's pipeline would run on another host). Flushed: the
/// bench reads the file while it grows.
fn write_all(received: mpsc::Receiver<Arrival>, mut out: BufWriter<File>) {
    let mut held: Vec<Arrival> = Vec::new();
    let mut oldest: Option<Instant> = None;
    loop {
        let stopped = match received.recv_timeout(QUIET) {
            Ok(arrival) => {
                held.push(arrival);
                if oldest.get_or_insert_with(Instant::now).elapsed() < HOLD_MAX {
                    continue;
                }
                false
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        oldest = None;
        let written = held.drain(..).try_for_each(|arrival| writeln!(out, "{}", line(&arrival)));
        if written.and_then(|()| out.flush()).is_err() || stopped {
            return;
        }
    }
}

/// One request's line, in the tests' receiver's format.
fn line(arrival: &Arrival) -> Value {
    json!({
        "signal": "logs",
        "transport": "grpc",
        "encoding": "protobuf",
        "received_unix_nano": arrival.received_unix_nano,
        "request": logs_request(&arrival.request),
    })
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The request in proto field names, 64-bit integers as strings (protobuf's
/// JSON mapping, as the tests' receiver writes it).
fn logs_request(request: &ExportLogsServiceRequest) -> Value {
    let resource_logs: Vec<Value> = request
        .resource_logs
        .iter()
        .map(|rl| {
            let attributes = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            let scope_logs: Vec<Value> = rl
                .scope_logs
                .iter()
                .map(|sl| {
                    json!({
                        "scope": sl.scope.as_ref().map_or(Value::Null, scope),
                        "log_records": sl.log_records.iter().map(log_record).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({ "resource": { "attributes": key_values(attributes) }, "scope_logs": scope_logs })
        })
        .collect();
    json!({ "resource_logs": resource_logs })
}

fn scope(scope: &InstrumentationScope) -> Value {
    json!({ "name": scope.name, "version": scope.version })
}

fn log_record(record: &LogRecord) -> Value {
    json!({
        "time_unix_nano": record.time_unix_nano.to_string(),
        "observed_time_unix_nano": record.observed_time_unix_nano.to_string(),
        "severity_number": record.severity_number,
        "severity_text": record.severity_text,
        "event_name": record.event_name,
        "body": record.body.as_ref().map_or(Value::Null, any_value),
        "attributes": key_values(&record.attributes),
    })
}

fn key_values(list: &[KeyValue]) -> Vec<Value> {
    list.iter().map(|kv| json!({ "key": kv.key, "value": kv.value.as_ref().map_or(Value::Null, any_value) })).collect()
}

fn any_value(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => json!({ "string_value": s }),
        Some(any_value::Value::IntValue(i)) => json!({ "int_value": i.to_string() }),
        Some(any_value::Value::BoolValue(b)) => json!({ "bool_value": b }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "double_value": d }),
        Some(any_value::Value::ArrayValue(a)) => {
            json!({ "array_value": { "values": a.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(any_value::Value::KvlistValue(kv)) => json!({ "kvlist_value": { "values": key_values(&kv.values) } }),
        Some(any_value::Value::BytesValue(b)) => json!({ "bytes_value": hex(b) }),
        Some(any_value::Value::StringValueStrindex(i)) => json!({ "string_value_strindex": i }),
        None => json!({}),
    }
}

/// Bytes as hex (the bench reads no bytes values; they are written, not decoded).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use oomtrace_testkit::observability::{OtlpReceived, records};
    use opentelemetry_proto::tonic::{
        common::v1::ArrayValue,
        logs::v1::{ResourceLogs, ScopeLogs},
        resource::v1::Resource,
    };

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    #[test]
    fn a_request_reads_back_through_the_testkit_as_the_daemon_sent_it() {
        let record = LogRecord {
            time_unix_nano: 1_765_000_000_123_456_789,
            observed_time_unix_nano: 1_765_000_000_223_456_789,
            severity_number: 13,
            severity_text: "WARN".to_owned(),
            event_name: "oomtrace.oom_kill".to_owned(),
            body: Some(AnyValue { value: Some(any_value::Value::StringValue("killed".to_owned())) }),
            attributes: vec![
                kv("thread.id", any_value::Value::IntValue(4242)),
                kv("oomtrace.usage_fraction", any_value::Value::DoubleValue(0.5)),
                kv("oomtrace.oom_group", any_value::Value::BoolValue(true)),
                kv(
                    "oomtrace.advice",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue { value: Some(any_value::Value::StringValue("raise".to_owned())) }],
                    }),
                ),
            ],
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", any_value::Value::StringValue("bench-know".to_owned()))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope { name: "oomtrace".to_owned(), ..Default::default() }),
                    log_records: vec![record],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let arrival = Arrival { received_unix_nano: 1_765_000_000_323_456_789, request };
        let received = OtlpReceived { requests: vec![line(&arrival)], end_offset: 0 }.for_service("bench-know");

        let logs: Vec<&Value> = received.requests_of("logs").collect();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0]["received_unix_nano"].as_u64(), Some(1_765_000_000_323_456_789));
        let records = records::log_records(logs);
        assert_eq!(records.len(), 1);
        let got = &records[0];
        assert_eq!(got.event_name.as_deref(), Some("oomtrace.oom_kill"));
        assert_eq!(got.severity_number, 13);
        assert_eq!(got.scope_name, "oomtrace");
        assert_eq!(got.body, json!("killed"));
        assert_eq!(got.attr_i64("thread.id"), Some(4242));
        assert_eq!(got.attributes["oomtrace.usage_fraction"], json!(0.5));
        assert_eq!(got.attr_bool("oomtrace.oom_group"), Some(true));
        assert_eq!(got.attributes["oomtrace.advice"], json!(["raise"]));
        assert_eq!(got.time_unix_nano, Some(1_765_000_000_123_456_789));
        assert_eq!(got.observed_time_unix_nano, Some(1_765_000_000_223_456_789));
        assert!(
            OtlpReceived { requests: vec![line(&arrival)], end_offset: 0 }.for_service("other").requests.is_empty()
        );
    }
}
