"""The pieces the observer is made of, without sockets: outcomes, audit event shape and data rules, the scrubber,
bounded metric labels, trace context, --since parsing, and the principal seam the authentication layer fills."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from toolhive_apply.cli.logs import is_audit, since_time
from toolhive_apply.errors import UsageError
from toolhive_apply.proxy.audit import AuditLog
from toolhive_apply.proxy.httpserver import Request
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.metrics import MAX_TOOLS, Metrics, prometheus_text
from toolhive_apply.proxy.observe_config import AuditConfig, parse_audit, parse_telemetry
from toolhive_apply.proxy.operations import Ending, Exchange, Operation, ending, operations
from toolhive_apply.proxy.principal import PRINCIPAL, Principal, principal_label, principal_subjects
from toolhive_apply.proxy.scrub import REDACTED, Scrubber
from toolhive_apply.proxy.tracing import Tracer, parse_traceparent

SECRET = "s3cr3t-value-XYZ"


@pytest.mark.parametrize(
    ("status", "response", "outcome"),
    [
        (200, {"jsonrpc": "2.0", "id": 1, "result": {}}, "success"),
        (200, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "nope"}}, "application_error"),
        (401, None, "denied"),
        (403, None, "denied"),
        (404, None, "failure"),
        (502, None, "error"),
        (202, None, "success"),
    ],
)
def test_outcomes_use_toolhives_vocabulary(status: int, response: object, outcome: str) -> None:
    assert str(ending(status, response, 0).outcome) == outcome


def test_a_batch_is_one_operation_per_request_and_notification_and_responses_are_not_operations() -> None:
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 9, "result": {}},
            {"jsonrpc": "2.0", "id": "r", "method": "resources/read", "params": {"uri": "file:///a"}},
        ]
    ).encode()
    found = operations(body)
    assert [(o.method, o.name, o.event_type, o.notification) for o in found] == [
        ("tools/call", "echo", "mcp_tool_call", False),
        ("notifications/initialized", None, "mcp_request", True),
        ("resources/read", "file:///a", "mcp_resource_read", False),
    ]
    assert operations(b"{not json")[0].event_type == "mcp_request"


def audit_line(config: AuditConfig, exchange: Exchange) -> dict[str, Any]:
    stream = io.StringIO()
    log = AuditLog(config, Scrubber([SECRET]), "streamable-http", stream)
    log.record(exchange, {"type": "network", "value": "10.0.0.2", "extra": {}}, {"user": "anonymous"}, "/mcp")
    lines = stream.getvalue().splitlines()
    return json.loads(lines[0]) if lines else {}


def test_data_is_scrubbed_before_it_is_cut_and_only_recorded_when_asked() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"k": SECRET}}}
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x" * 50 + SECRET}]}}
    exchange = Exchange(Operation("tools/call", 1, "t", message, 90), Ending(200, answer, 120), 0.0123)
    bare = audit_line(AuditConfig("c"), exchange)
    assert "data" not in bare and bare["metadata"]["extra"]["duration_ms"] == 12
    full = audit_line(AuditConfig("c", include_request_data=True, include_response_data=True), exchange)
    assert full["data"]["request"]["params"]["arguments"]["k"] == REDACTED
    cut = audit_line(AuditConfig("c", include_response_data=True, max_data_size=60), exchange)
    assert cut["data"]["response_truncated"] is True and len(cut["data"]["response"].encode()) <= 60
    for line in (full, cut):
        assert SECRET not in json.dumps(line) and SECRET[:8] not in json.dumps(line)


def test_event_types_filter_as_toolhive_does() -> None:
    exchange = Exchange(Operation("ping", 1), Ending(200), 0.0)
    assert audit_line(AuditConfig("c", event_types=frozenset({"mcp_tool_call"})), exchange) == {}
    assert audit_line(AuditConfig("c", exclude_event_types=frozenset({"mcp_ping"})), exchange) == {}
    assert audit_line(AuditConfig("c"), exchange)["type"] == "mcp_ping"


def test_a_401_is_denied_with_the_reason_unauthenticated() -> None:
    event = audit_line(AuditConfig("c"), Exchange(Operation("tools/call", 1, "t"), Ending(401), 0.0))
    assert event["outcome"] == "denied" and event["metadata"]["extra"]["reason"] == "unauthenticated"


def test_every_spelling_of_a_secret_is_scrubbed_and_short_values_are_left_alone() -> None:
    import base64
    import urllib.parse

    scrubber = Scrubber([SECRET, "ab"])
    for spelling in (SECRET, urllib.parse.quote(SECRET), base64.b64encode(SECRET.encode()).decode()):
        assert scrubber.text(f"<{spelling}>") == f"<{REDACTED}>"
    assert scrubber.value({SECRET: [SECRET]}) == {REDACTED: [REDACTED]}
    assert scrubber.text("ab cd") == "ab cd"


def test_tool_labels_come_only_from_listed_tools_and_are_capped() -> None:
    metrics = Metrics("w")
    metrics.learn_tools([f"t{i}" for i in range(MAX_TOOLS + 50)])
    metrics.record("tools/call", "t1", "success", 0.01)
    metrics.record("tools/call", f"t{MAX_TOOLS + 10}", "success", 0.01)
    metrics.record("tools/call", "arbitrary-" + "x" * 100, "success", 0.01)
    metrics.record("made/up", None, "success", 0.01)
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(metrics.snapshot()).decode())}
    samples = {(s.labels["mcp_method"], s.labels["tool"]): s.value for s in families["toolhive_mcp_requests"].samples}
    assert samples == {("tools/call", "t1"): 1, ("tools/call", "other"): 2, ("other", ""): 1}


def test_traceparent_is_parsed_as_w3c_says_and_new_traces_are_sampled_at_the_rate() -> None:
    parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert parent is not None and parent.sampled
    for bad in (
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "garbage",
        None,
    ):
        assert parse_traceparent(bad) is None
    child = Tracer(0.0).start("x", parent)
    assert child.context.trace_id == parent.trace_id and child.parent_span_id == parent.span_id
    assert child.context.sampled  # the parent's decision wins over the rate
    assert not any(Tracer(0.0).start("x", None).context.sampled for _ in range(50))
    assert all(Tracer(1.0).start("x", None).context.sampled for _ in range(50))


def test_the_principal_comes_from_the_request_context_else_the_client_address() -> None:
    request = Request("POST", "/mcp", Headers(), b"", "192.0.2.7")
    assert principal_subjects(request) == {"user": "anonymous"} and principal_label(request) == "192.0.2.7"
    request.context[PRINCIPAL] = Principal.of("user-123", {"preferred_username": "ada", "client_name": "cli"})
    assert principal_subjects(request) == {"user_id": "user-123", "user": "ada", "client_name": "cli"}
    assert principal_label(request) == "user-123"
    inner = dataclasses.replace(request, principal=Principal.of("user-456", {}))  # as authentication passes it in
    assert principal_label(inner) == "user-456"


def test_config_sections_report_every_problem_and_read_secrets_from_the_environment() -> None:
    problems: list[str] = []
    raw = {"enabled": True, "eventTypes": ["mcp_tool_calls"], "logFile": "rel", "maxDataSize": -1, "x": 1}
    parse_audit(raw, "w", {}, problems)
    parse_telemetry(
        {"endpoint": "http://h:99999", "samplingRate": "often", "headers_env": {"A": "MISSING"}}, "w", {}, problems
    )
    assert len(problems) == 7, problems
    assert not any(SECRET in p for p in problems)
    ok: list[str] = []
    telemetry = parse_telemetry(
        {"endpoint": "h:4318", "tracingEnabled": True, "headers_env": {"A": "V"}}, "w", {"V": SECRET}, ok
    )
    assert ok == [] and telemetry is not None and telemetry.secret_values == (SECRET,)
    assert telemetry.traces_url == "https://h:4318/v1/traces" and telemetry.metrics_url is None
    assert parse_telemetry({"tracingEnabled": True}, "w", {}, ok) is None  # no endpoint, no /metrics: nothing on


def test_logs_since_takes_durations_and_times() -> None:
    now = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert since_time("1h30m", now) == datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert since_time("2026-12-02T00:10:00", now) == datetime(2026, 12, 2, 0, 10, tzinfo=UTC)
    assert since_time(None) is None
    with pytest.raises(UsageError, match="--since"):
        since_time("yesterday")
    assert is_audit('{"msg": "audit_event", "type": "mcp_ping"}') and not is_audit("proxy listening")


def test_opening_an_event_stream_is_audited_as_sse_connection_and_not_counted(tmp_path: Any) -> None:
    import asyncio

    from toolhive_apply.proxy.config import load_config
    from toolhive_apply.proxy.httpserver import Response
    from toolhive_apply.proxy.observer import Observer

    log = tmp_path / "a.jsonl"
    raw = {
        "name": "w",
        "mode": "http",
        "listen_port": 1024,
        "upstream_url": "http://127.0.0.1:9/mcp",
        "audit": {"enabled": True, "logFile": str(log)},
        "telemetry": {"enablePrometheusMetricsPath": True},
    }

    async def inner(request: Request) -> Response:
        return Response(200)

    observer = Observer(load_config(json.dumps(raw), {}), inner)
    request = Request("GET", "/mcp", Headers([("Accept", "text/event-stream")]), b"", "127.0.0.1")
    asyncio.run(observer.handle(request))
    observer.close()
    event = json.loads(log.read_text())
    assert (event["type"], event["outcome"], event["target"]["type"]) == ("sse_connection", "success", "sse_endpoint")
    assert "toolhive_mcp_requests_total{" not in prometheus_text(observer.metrics.snapshot()).decode()
