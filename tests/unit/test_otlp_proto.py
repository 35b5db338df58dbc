"""The proxy's hand-written OTLP protobuf encoding: its varints, and every message it writes decoded by
opentelemetry-proto's generated classes, equal to the same payload sent as OTLP/JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from toolhive_apply.proxy import otlp_proto
from toolhive_apply.proxy.metrics import Metrics
from toolhive_apply.proxy.observe_config import JSON, PROTOBUF, TelemetryConfig
from toolhive_apply.proxy.otlp import content_type, encode_metrics, encode_spans
from toolhive_apply.proxy.tracing import Span, SpanContext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (1 << 63, "80808080808080808001")],
)
def test_varints_are_base_128_low_group_first(value: int, expected: str) -> None:
    assert otlp_proto.varint(value).hex() == expected


def test_a_negative_int64_is_its_ten_byte_twos_complement() -> None:
    assert otlp_proto.varint(-1).hex() == "ff" * 9 + "01"


def config(protocol: str) -> TelemetryConfig:
    return TelemetryConfig(
        service_name="svc",
        service_version="1.0",
        traces_url="http://127.0.0.1:1/v1/traces",
        custom_attributes={"team": "a", "région": "ü"},
        protocol=protocol,
    )


def spans() -> list[Span]:
    root = Span("tools/call echo", SpanContext(TRACE, "00f067aa0ba902b7", True), None, 1_700_000_000_000_000_001)
    root.end_ns = root.start_ns + 12_345
    root.attributes = {"gen_ai.tool.name": "echo", "count": 3, "negative": -42, "ratio": 0.25, "flag": True, "e": ""}
    child = Span("initialize", SpanContext(TRACE, "1111111111111111", True), "00f067aa0ba902b7", 5, 9)
    child.error = "application_error"
    return [root, child]


def from_json(body: bytes, message: Message) -> Any:
    def ids(node: Any) -> Any:  # OTLP/JSON ids are hex; protobuf's JSON mapping reads bytes as base64
        if isinstance(node, dict):
            return {
                k: base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId") else ids(v)
                for k, v in node.items()
            }
        return [ids(item) for item in node] if isinstance(node, list) else node

    return json_format.Parse(json.dumps(ids(json.loads(body))), message)


def test_spans_in_protobuf_decode_to_what_the_json_encoding_says() -> None:
    body = encode_spans(config(PROTOBUF), spans())
    decoded = ExportTraceServiceRequest.FromString(body)
    assert decoded == from_json(encode_spans(config(JSON), spans()), ExportTraceServiceRequest())
    resource = decoded.resource_spans[0]
    attributes = {a.key: a.value for a in resource.resource.attributes}
    assert attributes["service.name"].string_value == "svc" and attributes["région"].string_value == "ü"
    root, child = resource.scope_spans[0].spans
    assert root.trace_id.hex() == TRACE and root.span_id.hex() == "00f067aa0ba902b7" and not root.parent_span_id
    assert root.start_time_unix_nano == 1_700_000_000_000_000_001
    assert root.end_time_unix_nano == 1_700_000_000_000_012_346
    values = {a.key: a.value for a in root.attributes}
    assert values["negative"].int_value == -42 and values["count"].int_value == 3
    assert values["ratio"].double_value == 0.25 and values["flag"].bool_value is True
    assert values["e"].WhichOneof("value") == "string_value"
    assert root.kind == 2 and root.status.code == 1
    assert child.parent_span_id.hex() == "00f067aa0ba902b7"
    assert child.status.code == 2 and child.status.message == "application_error"


def test_metrics_in_protobuf_decode_to_what_the_json_encoding_says() -> None:
    metrics = Metrics("web")
    metrics.learn_tools(["echo"])
    metrics.record("tools/call", "echo", "success", 0.003)
    metrics.record("tools/call", "echo", "success", 120.0)  # past the last bound: the overflow bucket
    metrics.record("initialize", None, "success", 0.2)
    metrics.dropped("spans", 2)
    snapshot = metrics.snapshot()
    body = encode_metrics(config(PROTOBUF), snapshot, 1_800_000_000_000_000_000)
    decoded = ExportMetricsServiceRequest.FromString(body)
    assert decoded == from_json(
        encode_metrics(config(JSON), snapshot, 1_800_000_000_000_000_000), ExportMetricsServiceRequest()
    )
    found = {m.name: m for m in decoded.resource_metrics[0].scope_metrics[0].metrics}
    requests = found["toolhive_mcp_requests_total"].sum
    assert requests.is_monotonic and requests.aggregation_temporality == 2
    by_tool = {
        {a.key: a.value.string_value for a in p.attributes}["tool"]: p.as_int
        for p in requests.data_points
        if {a.key: a.value.string_value for a in p.attributes}["mcp_method"] == "tools/call"
    }
    assert by_tool == {"echo": 2}
    histogram = next(
        p
        for p in found["toolhive_mcp_request_duration_seconds"].histogram.data_points
        if {a.key: a.value.string_value for a in p.attributes}["tool"] == "echo"
    )
    assert histogram.count == 2 and histogram.sum == pytest.approx(120.003)
    assert histogram.bucket_counts[0] == 1 and histogram.bucket_counts[-1] == 1 and sum(histogram.bucket_counts) == 2
    assert len(histogram.bucket_counts) == len(histogram.explicit_bounds) + 1
    assert histogram.time_unix_nano == 1_800_000_000_000_000_000


def test_the_content_type_follows_the_protocol_and_an_unknown_field_is_refused() -> None:
    assert content_type(config(PROTOBUF)) == "application/x-protobuf"
    assert content_type(config(JSON)) == "application/json"
    with pytest.raises(ValueError, match="no field 'links'"):
        otlp_proto.encode("Span", {"name": "x", "links": []})
