"""OTLP's protobuf encoding (``application/x-protobuf``) written by hand: the proxy image has no protobuf library.

The exporter builds one payload, in OTLP/JSON's shape (camelCase keys, hex ids, 64-bit numbers as strings); this
module writes that same payload as protobuf, driven by a table of the few OTLP messages it uses (field numbers from
opentelemetry-proto's trace, metrics, common and resource .proto files). So the two encodings cannot drift apart:
the tests decode both with opentelemetry-proto's generated classes and compare them. A key the table does not know
is a programming error and raises ValueError (the exporter counts the batch as dropped).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

# wire types
_VARINT: Final = 0
_FIXED64: Final = 1
_LENGTH: Final = 2

_Field = tuple[int, str, str | None]
"""(field number, kind, message type for kind "message")."""


def _fields(*entries: tuple[str, int, str, str | None]) -> dict[str, _Field]:
    return {name: (number, kind, message) for name, number, kind, message in entries}


def _attributes(number: int) -> tuple[str, int, str, str | None]:
    return ("attributes", number, "message", "KeyValue")


SCHEMA: Final[Mapping[str, Mapping[str, _Field]]] = {
    "ExportTraceServiceRequest": _fields(("resourceSpans", 1, "message", "ResourceSpans")),
    "ExportMetricsServiceRequest": _fields(("resourceMetrics", 1, "message", "ResourceMetrics")),
    "ResourceSpans": _fields(
        ("resource", 1, "message", "Resource"),
        ("scopeSpans", 2, "message", "ScopeSpans"),
        ("schemaUrl", 3, "string", None),
    ),
    "ResourceMetrics": _fields(
        ("resource", 1, "message", "Resource"),
        ("scopeMetrics", 2, "message", "ScopeMetrics"),
        ("schemaUrl", 3, "string", None),
    ),
    "Resource": _fields(_attributes(1)),
    "ScopeSpans": _fields(("scope", 1, "message", "InstrumentationScope"), ("spans", 2, "message", "Span")),
    "ScopeMetrics": _fields(("scope", 1, "message", "InstrumentationScope"), ("metrics", 2, "message", "Metric")),
    "InstrumentationScope": _fields(("name", 1, "string", None), ("version", 2, "string", None), _attributes(3)),
    "Span": _fields(
        ("traceId", 1, "bytes", None),
        ("spanId", 2, "bytes", None),
        ("traceState", 3, "string", None),
        ("parentSpanId", 4, "bytes", None),
        ("name", 5, "string", None),
        ("kind", 6, "varint", None),
        ("startTimeUnixNano", 7, "fixed64", None),
        ("endTimeUnixNano", 8, "fixed64", None),
        _attributes(9),
        ("status", 15, "message", "Status"),
    ),
    "Status": _fields(("message", 2, "string", None), ("code", 3, "varint", None)),
    "KeyValue": _fields(("key", 1, "string", None), ("value", 2, "message", "AnyValue")),
    "AnyValue": _fields(
        ("stringValue", 1, "string", None),
        ("boolValue", 2, "varint", None),
        ("intValue", 3, "varint", None),
        ("doubleValue", 4, "double", None),
    ),
    "Metric": _fields(
        ("name", 1, "string", None),
        ("description", 2, "string", None),
        ("unit", 3, "string", None),
        ("gauge", 5, "message", "Gauge"),
        ("sum", 7, "message", "Sum"),
        ("histogram", 9, "message", "Histogram"),
    ),
    "Gauge": _fields(("dataPoints", 1, "message", "NumberDataPoint")),
    "Sum": _fields(
        ("dataPoints", 1, "message", "NumberDataPoint"),
        ("aggregationTemporality", 2, "varint", None),
        ("isMonotonic", 3, "varint", None),
    ),
    "Histogram": _fields(
        ("dataPoints", 1, "message", "HistogramDataPoint"), ("aggregationTemporality", 2, "varint", None)
    ),
    "NumberDataPoint": _fields(
        ("startTimeUnixNano", 2, "fixed64", None),
        ("timeUnixNano", 3, "fixed64", None),
        ("asDouble", 4, "double", None),
        ("asInt", 6, "sfixed64", None),
        _attributes(7),
    ),
    "HistogramDataPoint": _fields(
        ("startTimeUnixNano", 2, "fixed64", None),
        ("timeUnixNano", 3, "fixed64", None),
        ("count", 4, "fixed64", None),
        ("sum", 5, "double", None),
        ("bucketCounts", 6, "fixed64", None),
        ("explicitBounds", 7, "double", None),
        _attributes(9),
    ),
}


def varint(value: int) -> bytes:
    """Base-128, low group first; a negative number is its 64-bit two's complement (ten bytes), as int64 is."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _length_delimited(number: int, data: bytes) -> bytes:
    return _key(number, _LENGTH) + varint(len(data)) + data


def _scalar(kind: str, value: Any) -> bytes:
    """The bytes of one scalar, without its key (JSON's string-written 64-bit numbers are accepted)."""
    if kind == "varint":
        return varint(int(value))
    if kind == "fixed64":
        return struct.pack("<Q", int(value))
    if kind == "sfixed64":
        return struct.pack("<q", int(value))
    if kind == "double":
        return struct.pack("<d", float(value))
    raise ValueError(f"no scalar kind {kind!r}")


_WIRE: Final = {"varint": _VARINT, "fixed64": _FIXED64, "sfixed64": _FIXED64, "double": _FIXED64}


def _field(number: int, kind: str, message: str | None, value: Any) -> bytes:
    if kind == "message":
        assert message is not None
        items = value if isinstance(value, list) else [value]
        return b"".join(_length_delimited(number, encode(message, item)) for item in items)
    if kind == "string":
        return _length_delimited(number, str(value).encode())
    if kind == "bytes":  # OTLP/JSON writes trace and span ids in hex
        return _length_delimited(number, bytes.fromhex(value))
    if isinstance(value, list):  # repeated scalars are packed, as proto3 writes them
        return _length_delimited(number, b"".join(_scalar(kind, item) for item in value))
    return _key(number, _WIRE[kind]) + _scalar(kind, value)


def encode(message: str, payload: Mapping[str, Any]) -> bytes:
    """``payload`` (OTLP/JSON's shape) as the protobuf message named ``message``."""
    fields = SCHEMA[message]
    out = bytearray()
    for name, value in payload.items():
        if name not in fields:
            raise ValueError(f"OTLP {message} has no field {name!r} here")
        number, kind, sub = fields[name]
        out += _field(number, kind, sub, value)
    return bytes(out)
