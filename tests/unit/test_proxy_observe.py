"""Audit, Prometheus metrics and OTLP export of the real proxy, in process, between the real MCP SDK client and a
real MCP server (the SDK's, served by uvicorn), all on loopback; a loopback OTLP receiver decodes what arrives with
opentelemetry-proto's message types."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from google.protobuf import json_format
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.proxy.app import build_server
from toolhive_apply.proxy.config import load_config
from toolhive_apply.proxy.observer import close_observers

SECRET = "tok-9f8e7d6c5b4a-secret"
COLLECTOR_TOKEN = "collector-bearer-0123456789"
DEADLINE = 60.0  # a bound for a loaded machine; every wait polls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Upstream:
    port: int
    traceparents: list[str] = field(default_factory=list)


def mcp_app(seen: list[str]) -> Any:
    server = MCPServer("observe-test", version="1.0.0")

    @server.tool()
    def echo(text: str) -> str:
        """Return text."""
        return text

    @server.tool()
    def reveal() -> str:
        """Return a secret the proxy knows (it must never reach an audit line)."""
        return f"the token is {SECRET}"

    app = server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if b"traceparent" in headers:
                seen.append(headers[b"traceparent"].decode())
        await app(scope, receive, send)

    return recording


@contextlib.contextmanager
def upstream_server() -> Iterator[Upstream]:
    upstream = Upstream(free_port())
    config = uvicorn.Config(mcp_app(upstream.traceparents), host="127.0.0.1", port=upstream.port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while not server.started:
        assert time.monotonic() < deadline, "the test MCP server did not start"
        time.sleep(0.02)
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(DEADLINE)


@contextlib.contextmanager
def proxy(raw: dict[str, Any], environ: dict[str, str]) -> Iterator[int]:
    """The proxy (http mode) in a thread with its own event loop; yields its port."""
    loop = asyncio.new_event_loop()
    server, _ = build_server(load_config(json.dumps(raw), environ))
    loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(DEADLINE)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(DEADLINE)
        close_observers()
        loop.close()


@dataclass
class Receiver:
    port: int
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def wait_for(self, path: str, predicate: Any = lambda body: True) -> list[bytes]:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            found = [body for p, _, body in list(self.posts) if p == path and predicate(body)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"nothing arrived at {path}")


@contextlib.contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    receiver = Receiver(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(node, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode()
            if k in ("traceId", "spanId", "parentSpanId")
            else hex_ids_to_base64(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [hex_ids_to_base64(item) for item in node]
    return node


def decoded(headers: dict[str, str], body: bytes, message: Any) -> Any:
    """As a collector does: by Content-Type, protobuf with the generated classes, JSON through their JSON mapping."""
    if headers.get("content-type") == "application/x-protobuf":
        return message.FromString(body)
    assert headers.get("content-type") == "application/json"
    return json_format.Parse(json.dumps(hex_ids_to_base64(json.loads(body))), message)


def decode_spans(receiver: Receiver) -> list[Any]:
    spans = []
    for path, headers, body in list(receiver.posts):
        if path != "/v1/traces":
            continue
        message = decoded(headers, body, ExportTraceServiceRequest())
        for resource_spans in message.resource_spans:
            for scope in resource_spans.scope_spans:
                spans += [(resource_spans.resource, span) for span in scope.spans]
    return spans


def attributes(items: Any) -> dict[str, Any]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in items}


def raw_post(port: int, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        connection.request(
            "POST",
            "/mcp",
            json.dumps(body),
            {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def base_config(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "obs",
        "mode": "http",
        "listen_port": 1024,
        "upstream_url": f"http://127.0.0.1:{port}/mcp",
        "tools": ["echo", "reveal"],
        **extra,
    }


@pytest.mark.parametrize("protocol", [None, "http/json", "http/protobuf"])
def test_audit_events_metrics_and_spans_follow_real_sdk_calls(tmp_path: Path, protocol: str | None) -> None:
    log = tmp_path / "audit.jsonl"
    audit = {
        "enabled": True,
        "includeRequestData": True,
        "includeResponseData": True,
        "logFile": str(log),
        "maxDataSize": 4096,
        "scrub_env": ["SERVER_SECRET"],
    }
    with otlp_receiver() as receiver, upstream_server() as upstream:
        telemetry = {
            "endpoint": f"127.0.0.1:{receiver.port}",
            "insecure": True,
            "tracingEnabled": True,
            "metricsEnabled": True,
            "samplingRate": "1.0",
            "serviceName": "obs-svc",
            "serviceVersion": "1.2.3",
            "customAttributes": {"team": "observability"},
            "enablePrometheusMetricsPath": True,
            "headers_env": {"Authorization": "COLLECTOR"},
            "environmentVariables": ["DEPLOY_ENV", "UNSET_ONE", "LEAKY"],
            "environment_values": {"DEPLOY_ENV": "staging", "LEAKY": f"was {SECRET}"},  # a slip the scrubber catches
            **({"protocol": protocol} if protocol else {}),
        }
        environ = {
            "SERVER_SECRET": SECRET,
            "COLLECTOR": f"Bearer {COLLECTOR_TOKEN}",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        }
        with proxy(base_config(upstream.port, audit=audit, telemetry=telemetry), environ) as port:
            url = f"http://127.0.0.1:{port}/mcp"
            assert sorted(list_tools(url)) == ["echo", "reveal"]  # tool labels come only from the server's list
            assert call_tool(url, "echo", {"text": "hello"}) == "hello"
            assert call_tool(url, "echo", {"text": "again"}) == "again"
            assert SECRET in call_tool(url, "reveal", {})  # the client gets the answer; the audit line must not
            with pytest.raises(Exception, match="tool not found"):
                call_tool(url, "hidden", {})
            parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            init = {
                "jsonrpc": "2.0",
                "id": 77,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
            status, _ = raw_post(port, init, {"traceparent": parent})
            assert status == 200
            status, text = get(port, "/metrics")
            assert status == 200
            bodies = receiver.wait_for("/v1/traces", lambda b: b"raw" in b or b"initialize" in b)
            receiver.wait_for("/v1/metrics", lambda b: b"tools/call" in b)
        events = [json.loads(line) for line in log.read_text().splitlines()]

    check_audit(events)
    check_prometheus(text)
    check_spans(decode_spans(receiver), upstream.traceparents, parent)
    check_otlp_metrics(receiver)
    assert bodies
    assert all(h.get("authorization") == f"Bearer {COLLECTOR_TOKEN}" for _, h, _ in receiver.posts)
    wanted = "application/json" if protocol == "http/json" else "application/x-protobuf"  # OTel's default
    assert {h.get("content-type") for _, h, _ in receiver.posts} == {wanted}
    assert COLLECTOR_TOKEN not in log.read_text()


def check_audit(events: list[dict[str, Any]]) -> None:
    calls = [e for e in events if e["type"] == "mcp_tool_call"]
    assert [(e["target"]["name"], e["outcome"]) for e in calls] == [
        ("echo", "success"),
        ("echo", "success"),
        ("reveal", "success"),
        ("hidden", "application_error"),
    ]
    first = calls[0]
    assert first["msg"] == "audit_event" and first["level"] == "INFO+2"
    assert first["component"] == "obs"
    assert first["source"]["type"] == "network" and first["source"]["value"] == "127.0.0.1"
    assert first["subjects"] == {"user": "anonymous"}
    assert first["target"] == {"endpoint": "/mcp", "method": "tools/call", "type": "tool", "name": "echo"}
    extra = first["metadata"]["extra"]
    assert extra["transport"] == "http" and extra["status_code"] == 200
    assert isinstance(extra["duration_ms"], int) and extra["duration_ms"] >= 0
    assert extra["request_size_bytes"] > 0 and extra["response_size_bytes"] > 0
    params = first["data"]["request"]["params"]
    assert (params["name"], params["arguments"]) == ("echo", {"text": "hello"})
    assert first["data"]["response"]["result"]["content"][0]["text"] == "hello"
    assert len(first["audit_id"]) == 36 and first["logged_at"].endswith("Z")
    revealed = json.dumps(calls[2])
    assert SECRET not in revealed and "(sensitive value)" in revealed
    refused = calls[3]["metadata"]["extra"]
    assert refused["jsonrpc_error_code"] == -32602 and "tool not found" in refused["jsonrpc_error_message"]
    assert any(e["type"] == "mcp_initialize" and e["outcome"] == "success" for e in events)
    assert any(e["type"] == "mcp_tools_list" for e in events)


def check_prometheus(text: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {
        (s.labels["mcp_method"], s.labels["tool"], s.labels["outcome"]): s.value
        for s in families["toolhive_mcp_requests"].samples
    }
    assert requests[("tools/call", "echo", "success")] == 2
    assert requests[("tools/call", "reveal", "success")] == 1
    assert requests[("tools/call", "other", "application_error")] == 1  # never listed: not a label value
    assert requests[("initialize", "", "success")] >= 1
    counts = {
        s.labels["tool"]: s.value
        for s in families["toolhive_mcp_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["mcp_method"] == "tools/call"
    }
    assert counts == {"echo": 2, "reveal": 1, "other": 1}
    assert all("session" not in key for s in families["toolhive_mcp_requests"].samples for key in s.labels)
    assert "toolhive_mcp_active_sessions" in families
    assert "toolhive_mcp_backend_restarts" in families


def check_spans(spans: list[Any], upstream_parents: list[str], parent: str) -> None:
    resource, _ = spans[0]
    assert attributes(resource.attributes) == {
        "service.name": "obs-svc",
        "service.version": "1.2.3",
        "team": "observability",
    }
    by_name: dict[str, list[Any]] = {}
    for _, span in spans:
        by_name.setdefault(span.name, []).append(span)
    echo = by_name["tools/call echo"]
    assert len(echo) == 2
    attrs = attributes(echo[0].attributes)
    assert attrs["mcp.method.name"] == "tools/call" and attrs["gen_ai.tool.name"] == "echo"
    assert attrs["mcp.outcome"] == "success" and echo[0].status.code == 1
    # ToolHive's environment.<NAME> on every span; an unset one is empty; a secret value never leaves
    for _, span in spans:
        environment = {k: v for k, v in attributes(span.attributes).items() if k.startswith("environment.")}
        assert environment == {
            "environment.DEPLOY_ENV": "staging",
            "environment.UNSET_ONE": "",
            "environment.LEAKY": "was (sensitive value)",
        }
    assert all(SECRET not in str(attributes(span.attributes)) for _, span in spans)
    hidden = by_name["tools/call hidden"][0]
    assert attributes(hidden.attributes)["mcp.outcome"] == "application_error" and hidden.status.code == 2
    # the client's traceparent is the parent; the proxy's span is the backend's parent
    raw = next(s for s in by_name["initialize"] if s.trace_id.hex() == parent.split("-")[1])
    assert raw.parent_span_id.hex() == parent.split("-")[2]
    forwarded = {tp.split("-")[2] for tp in upstream_parents}
    assert {s.span_id.hex() for s in echo} <= forwarded
    assert raw.span_id.hex() in forwarded
    assert f"00-{parent.split('-')[1]}-{raw.span_id.hex()}-01" in upstream_parents


def check_otlp_metrics(receiver: Receiver) -> None:
    receiver.wait_for("/v1/metrics", lambda b: b"tools/call" in b)
    found = [(h, b) for p, h, b in list(receiver.posts) if p == "/v1/metrics" and b"tools/call" in b]
    headers, body = found[-1]
    message = decoded(headers, body, ExportMetricsServiceRequest())
    metrics = {m.name: m for m in message.resource_metrics[0].scope_metrics[0].metrics}
    points = {
        (attributes(p.attributes)["tool"], attributes(p.attributes)["outcome"]): p.as_int
        for p in metrics["toolhive_mcp_requests_total"].sum.data_points
        if attributes(p.attributes)["mcp_method"] == "tools/call"
    }
    assert points[("echo", "success")] == 2
    assert metrics["toolhive_mcp_requests_total"].sum.is_monotonic
    histogram = metrics["toolhive_mcp_request_duration_seconds"].histogram.data_points
    assert sum(p.count for p in histogram if attributes(p.attributes)["tool"] == "echo") == 2


def test_a_dead_collector_fails_no_call_and_its_drops_are_counted() -> None:
    dead = free_port()  # nothing listens there
    telemetry = {
        "endpoint": f"http://127.0.0.1:{dead}",
        "tracingEnabled": True,
        "metricsEnabled": True,
        "samplingRate": "1",
        "enablePrometheusMetricsPath": True,
    }
    with (
        upstream_server() as upstream,
        proxy(base_config(upstream.port, telemetry=telemetry), {"OTEL_METRIC_EXPORT_INTERVAL": "100"}) as port,
    ):
        url = f"http://127.0.0.1:{port}/mcp"
        list_tools(url)
        for text in ("a", "b", "c"):
            assert call_tool(url, "echo", {"text": text}) == text
        deadline = time.monotonic() + DEADLINE
        dropped: dict[str, float] = {}
        while time.monotonic() < deadline and not (dropped.get("spans") and dropped.get("metrics")):
            _, text = get(port, "/metrics")
            family = {f.name: f for f in text_string_to_metric_families(text)}.get("toolhive_mcp_telemetry_dropped")
            dropped = {s.labels["signal"]: s.value for s in family.samples} if family else {}
            time.sleep(0.05)
    assert dropped["spans"] >= 3 and dropped["metrics"] >= 1


def test_without_audit_or_telemetry_nothing_is_recorded_and_metrics_are_not_served() -> None:
    with upstream_server() as upstream, proxy(base_config(upstream.port), {}) as port:
        assert call_tool(f"http://127.0.0.1:{port}/mcp", "echo", {"text": "x"}) == "x"
        status, _ = get(port, "/metrics")
    assert status == 404
    assert upstream.traceparents == []
