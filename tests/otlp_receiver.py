"""A local OTLP/HTTP trace receiver for tests: what an OpenTelemetry collector, Phoenix or
Langfuse's OTel endpoint would receive, decoded with opentelemetry-proto.

    with OtlpReceiver(auth=("pk-lf-test", "sk-lf-test")) as rx:
        ...  # point the exporter at rx.url + "/v1/traces" (or any path)
        spans = rx.wait_for(lambda s: s["name"] == "backlog.llm_call")

Each received span is a dict: name, kind, trace_id, span_id, start/end (ns), attributes (decoded
to Python values: str, bool, int, float, lists), resource (its attributes), scope (the
instrumentation scope's name), path (the URL path it was posted to) and headers (of its request).
A request whose Basic credentials do not match `auth` gets 401 and is recorded in `rejected`.
"""

from __future__ import annotations

import base64
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as a Python value."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


def decode(body: bytes) -> list[dict]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                spans.append({
                    "name": span.name,
                    "kind": span.kind,
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "start": span.start_time_unix_nano,
                    "end": span.end_time_unix_nano,
                    "status": span.status.code,
                    "attributes": attributes(span.attributes),
                    "resource": resource,
                    "scope": ss.scope.name,
                })
    return spans


class OtlpReceiver:
    def __init__(self, *, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.spans: list[dict] = []
        self.requests: list[dict] = []  # path, headers, content type of every accepted POST
        self.rejected: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # e.g. Langfuse's SDK asking for its project: nothing to say
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.auth is not None and headers.get("authorization") != receiver.basic():
                    with receiver._lock:
                        receiver.rejected.append({"path": self.path, "headers": headers})
                    self.send_response(401)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                spans = decode(body)
                for span in spans:
                    span["path"] = self.path
                    span["headers"] = headers
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": headers})
                    receiver.spans.extend(spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def basic(self) -> str:
        user, password = self.auth or ("", "")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_for(self, match: Callable[[dict], bool], timeout: float = 20.0) -> list[dict]:
        """The received spans that match, waiting (bounded) until there is at least one."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [s for s in self.spans if match(s)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def __enter__(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
