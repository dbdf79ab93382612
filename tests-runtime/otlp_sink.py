#!/usr/bin/env python3
"""A local OTLP receiver for oomtrace's integration tests (there is no
OpenTelemetry Collector package in Debian).

It accepts every OTLP transport the daemon can be configured with:

  OTLP/gRPC  on --grpc  (LogsService, MetricsService and TraceService Export)
  OTLP/HTTP  on --http  (POST /v1/logs, /v1/metrics, /v1/traces with
             Content-Type application/x-protobuf or application/json,
             optionally Content-Encoding gzip or chunked bodies)

and appends each export request, as soon as it arrives, as one JSON line to
--out:

  {"signal": "logs" | "metrics" | "traces",
   "transport": "grpc" | "http",
   "encoding": "protobuf" | "json",
   "received_unix_nano": <int>,
   "request": <Export*ServiceRequest as MessageToDict(preserving_proto_field_name=True)>}

(Note that MessageToDict renders 64-bit integers, e.g. time_unix_nano,
as_int and int_value, as JSON strings, and bytes as base64.)

With --tls-cert and --tls-key both servers serve TLS with that certificate
(PEM) instead of plain text; --tls-client-ca additionally requires every
client to present a certificate signed by that CA (mutual TLS). A client
that does not trust the certificate, or presents none when one is required,
fails its handshake: nothing is recorded.

Every request is answered with the empty Export*ServiceResponse (full
success). GET / and GET /healthz answer 200 with a small JSON status, for
readiness checks. SIGTERM or SIGINT stops both servers at once: the ports
then refuse connections, which is how tests simulate a collector outage.

Dependencies (PyPI): grpcio, opentelemetry-proto (the official generated
stubs). scripts/observability.sh installs them in a venv and runs this.
"""

import argparse
import base64
import gzip
import json
import signal
import ssl
import sys
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

# signal name -> (request type, response type)
SIGNALS = {
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
}
HTTP_PATHS = {"/v1/logs": "logs", "/v1/metrics": "metrics", "/v1/traces": "traces"}
MAX_BODY = 64 << 20
# OTLP/JSON writes these ids as hex, protobuf's JSON mapping expects base64.
HEX_ID_FIELDS = {"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"}


def hex_ids_to_base64(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in HEX_ID_FIELDS and isinstance(value, str) and len(value) in (16, 32):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    pass  # already base64
            else:
                hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            hex_ids_to_base64(item)
    return node


class Recorder:
    """Appends one JSON line per request; every line is flushed at once."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.out = open(path, "a", encoding="utf-8")
        self.counts = {(s, t): 0 for s in SIGNALS for t in ("grpc", "http")}
        self.started = time.time()

    def record(self, signal_name, transport, encoding, request):
        line = json.dumps(
            {
                "signal": signal_name,
                "transport": transport,
                "encoding": encoding,
                "received_unix_nano": time.time_ns(),
                "request": json_format.MessageToDict(request, preserving_proto_field_name=True),
            },
            separators=(",", ":"),
        )
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()
            self.counts[(signal_name, transport)] += 1

    def status(self):
        with self.lock:
            counts = {f"{s}/{t}": n for (s, t), n in self.counts.items()}
        return {"status": "ok", "uptime_seconds": round(time.time() - self.started, 3), "received": counts}


def grpc_servicers(recorder):
    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request, context):
            recorder.record("logs", "grpc", "protobuf", request)
            return logs_service_pb2.ExportLogsServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            recorder.record("metrics", "grpc", "protobuf", request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            recorder.record("traces", "grpc", "protobuf", request)
            return trace_service_pb2.ExportTraceServiceResponse()

    return Logs(), Metrics(), Traces()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def start_grpc(recorder, address, tls=None):
    # so_reuseport off: a second sink on the same port must fail, not share it.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
    logs, metrics, traces = grpc_servicers(recorder)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(logs, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(metrics, server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(traces, server)
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            cert, key, client_ca = tls
            credentials = grpc.ssl_server_credentials(
                [(read(key), read(cert))],
                root_certificates=read(client_ca) if client_ca else None,
                require_client_auth=client_ca is not None,
            )
            port = server.add_secure_port(address, credentials)
    except RuntimeError as error:  # newer grpcio raises instead of returning 0
        sys.exit(f"otlp sink: cannot listen for gRPC on {address}: {error}")
    if port == 0:
        sys.exit(f"otlp sink: cannot listen for gRPC on {address}")
    server.start()
    return server


def make_http_handler(recorder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "oomtrace-otlp-sink/1"

        def setup(self):
            if isinstance(self.request, ssl.SSLSocket):
                self.request.settimeout(10)
                try:
                    self.request.do_handshake()
                except (ssl.SSLError, OSError) as error:
                    print(f"otlp sink: TLS handshake with {self.client_address} failed: {error}", flush=True)
                    raise
            super().setup()

        def _reply(self, code, content_type, body):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, code, message):
            # OTLP/HTTP failures carry a google.rpc.Status; a plain message is
            # enough for a test sink.
            body = json.dumps({"code": code, "message": message}).encode()
            self._reply(code, "application/json", body)

        def _read_body(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                data = b"".join(chunks)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise ValueError(f"body of {length} bytes is too large")
                data = self.rfile.read(length)
            encoding = (self.headers.get("Content-Encoding") or "identity").lower()
            if encoding == "gzip":
                data = gzip.decompress(data)
            elif encoding == "deflate":
                data = zlib.decompress(data)
            elif encoding != "identity":
                raise ValueError(f"unsupported Content-Encoding {encoding}")
            return data

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            signal_name = HTTP_PATHS.get(path)
            try:
                data = self._read_body()
            except (ValueError, OSError, zlib.error) as error:
                self.close_connection = True
                self._error(400, f"cannot read the request body: {error}")
                return
            if signal_name is None:
                self._error(404, f"no OTLP endpoint at {path}")
                return
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            request_type, response_type = SIGNALS[signal_name]
            request = request_type()
            try:
                if content_type == "application/json":
                    json_format.ParseDict(hex_ids_to_base64(json.loads(data)), request, ignore_unknown_fields=True)
                    encoding = "json"
                elif content_type == "application/x-protobuf":
                    request.ParseFromString(data)
                    encoding = "protobuf"
                else:
                    self._reply(415, "text/plain", f"unsupported Content-Type {content_type!r}\n".encode())
                    return
            except Exception as error:  # noqa: BLE001 - any parse failure is the client's
                self._error(400, f"cannot parse the {signal_name} request: {error}")
                return
            recorder.record(signal_name, "http", encoding, request)
            if encoding == "json":
                self._reply(200, "application/json", json_format.MessageToJson(response_type()).encode())
            else:
                self._reply(200, "application/x-protobuf", response_type().SerializeToString())

        def do_GET(self):
            if self.path.split("?", 1)[0] in ("/", "/healthz"):
                self._reply(200, "application/json", (json.dumps(recorder.status()) + "\n").encode())
            else:
                self._error(404, f"nothing at {self.path}")

        do_HEAD = do_GET

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grpc", default="127.0.0.1:14317", help="host:port for OTLP/gRPC")
    parser.add_argument("--http", default="127.0.0.1:14318", help="host:port for OTLP/HTTP")
    parser.add_argument("--out", required=True, help="JSON lines file to append to")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) to serve TLS with")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA that must sign client certificates (mutual TLS)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("otlp sink: --tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        sys.exit("otlp sink: --tls-client-ca needs --tls-cert and --tls-key")
    tls = (args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None

    recorder = Recorder(args.out)
    grpc_server = start_grpc(recorder, args.grpc, tls)
    host, _, port = args.http.rpartition(":")
    ThreadingHTTPServer.daemon_threads = True
    try:
        httpd = ThreadingHTTPServer((host, int(port)), make_http_handler(recorder))
    except OSError as error:
        grpc_server.stop(None)
        sys.exit(f"otlp sink: cannot listen for HTTP on {args.http}: {error}")
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.tls_client_ca)
        # The handshake runs in each request's thread (not in accept), so a
        # client that fails it cannot stall the server.
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)

    def stop(signum, _frame):
        print(f"otlp sink: signal {signum}, stopping", flush=True)
        grpc_server.stop(None)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mode = "plain text" if tls is None else ("mutual TLS" if args.tls_client_ca else "TLS")
    print(f"otlp sink: grpc {args.grpc}, http {args.http} ({mode}), appending to {args.out}", flush=True)
    httpd.serve_forever(poll_interval=0.1)
    httpd.server_close()
    grpc_server.wait_for_termination(timeout=2)
    print("otlp sink: stopped", flush=True)


if __name__ == "__main__":
    main()
