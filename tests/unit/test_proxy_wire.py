"""SSE codec, relay rewriting, origin policy and version negotiation, on data; the HTTP server on a real socket."""

from __future__ import annotations

import asyncio
import json

import pytest

from toolhive_apply.proxy.config import ToolOverride
from toolhive_apply.proxy.httpserver import HttpServer, Request, Response, StreamResponse
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.jsonrpc import MessageKind, classify, negotiate_version
from toolhive_apply.proxy.origin import OriginPolicy
from toolhive_apply.proxy.rewrite import encode_header_value, plan_request, rewrite_event, rewrite_json_body
from toolhive_apply.proxy.sse_codec import ServerSentEvent, SseDecoder, encode_event
from toolhive_apply.proxy.tools import ToolPolicy

POLICY = ToolPolicy(allow=frozenset({"sum", "echo"}), overrides={"add": ToolOverride(name="sum")})
LIST_RESULT = {"tools": [{"name": "add"}, {"name": "echo"}, {"name": "get_env"}]}


# ------------------------------------------------------------------ SSE


def test_sse_events_survive_arbitrary_chunking_and_line_endings() -> None:
    wire = b': hello\r\nevent: endpoint\r\ndata: /messages?session_id=1\r\n\r\nid: 7\ndata: {"a":\ndata: 1}\n\n'
    for size in (1, 2, 5, len(wire)):
        decoder = SseDecoder()
        events = [e for i in range(0, len(wire), size) for e in decoder.feed(wire[i : i + size])]
        assert events == [
            ServerSentEvent("/messages?session_id=1", "endpoint"),
            ServerSentEvent('{"a":\n1}', "message", "7"),
        ]
        assert decoder.take_comments() >= 1


def test_encoded_events_decode_to_themselves() -> None:
    event = ServerSentEvent("line one\nline two", "message", "42", 1000)
    assert SseDecoder().feed(encode_event(event)) == [event]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert SseDecoder().feed(b"event: ping\n\n") == []


# ------------------------------------------------------------------ relay rewriting


def test_a_plan_translates_renamed_calls_and_refuses_hidden_ones() -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sum"}}).encode()
    plan = plan_request(POLICY, body)
    assert plan.forward and plan.call_name == "add"
    assert json.loads(plan.body)["params"]["name"] == "add"
    hidden = plan_request(
        POLICY, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_env"}}).encode()
    )
    assert not hidden.forward
    assert hidden.refusals[0]["error"]["message"] == "tool not found: get_env"


def test_a_batch_keeps_allowed_messages_and_answers_refused_ones_locally() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    plan = plan_request(POLICY, json.dumps(batch).encode())
    assert plan.batch and plan.forward
    assert [m.get("id") for m in json.loads(plan.body)] == [1, None]
    upstream = json.dumps([{"jsonrpc": "2.0", "id": 1, "result": LIST_RESULT}]).encode()
    merged = json.loads(rewrite_json_body(POLICY, plan, upstream))
    assert [t["name"] for t in merged[0]["result"]["tools"]] == ["sum", "echo"]
    assert merged[1]["id"] == 2 and "error" in merged[1]


def test_an_sse_answer_carrying_tools_is_filtered_whatever_its_id_and_others_pass_untouched() -> None:
    for request_id in ("x", 7, "7"):
        answer = ServerSentEvent(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": LIST_RESULT}), id="ev1")
        rewritten = rewrite_event(POLICY, answer)
        assert rewritten is not None and rewritten.id == "ev1"
        assert [t["name"] for t in json.loads(rewritten.data)["result"]["tools"]] == ["sum", "echo"]
    other = ServerSentEvent(json.dumps({"jsonrpc": "2.0", "id": "y", "result": {"content": []}}))
    assert rewrite_event(POLICY, other) is other
    unreadable = ServerSentEvent('{"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "get_env"}]}, "id": 2}')
    assert rewrite_event(POLICY, unreadable) is None  # a duplicate key: dropped, never relayed unfiltered
    for shadow in ({"Result": LIST_RESULT}, {"RESULT": LIST_RESULT, "result": {}}):
        shadowed = ServerSentEvent(json.dumps({"jsonrpc": "2.0", "id": 1, **shadow}))
        replaced = rewrite_event(POLICY, shadowed)
        assert replaced is not None and "get_env" not in replaced.data and "error" in json.loads(replaced.data)


def test_without_a_policy_bodies_are_relayed_byte_for_byte() -> None:
    body = b'{"jsonrpc": "2.0",   "id": 1, "method": "tools/call", "params": {"name": "x"}}'
    assert plan_request(ToolPolicy(), body).body is body


def test_header_values_are_encoded_like_the_sdk() -> None:
    assert encode_header_value("add") == "add"
    assert encode_header_value("héllo") == "=?base64?aMOpbGxv?="


# ------------------------------------------------------------------ origin, versions, classification


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:6274", True),
        ("http://127.0.0.1:1", True),
        ("http://[::1]:8080", True),
        ("http://localhost", True),
        ("https://evil.example", False),
        ("http://localhost.evil.example:80", False),
        ("null", False),
    ],
)
def test_the_default_origins_are_loopback_on_any_port(origin: str, allowed: bool) -> None:
    from toolhive_apply.proxy.config import DEFAULT_ALLOWED_ORIGINS

    assert OriginPolicy(DEFAULT_ALLOWED_ORIGINS).allows(origin) is allowed


def test_the_guard_refuses_foreign_origins_and_lets_non_browsers_through() -> None:
    policy = OriginPolicy(["https://app.example"])
    assert policy.guard("POST", "/mcp", Headers()) is None
    assert policy.guard("POST", "/mcp", Headers([("Origin", "https://app.example")])) is None
    refused = policy.guard("POST", "/mcp", Headers([("Origin", "http://localhost:3000")]))
    assert refused is not None and refused.status == 403


@pytest.mark.parametrize(
    ("requested", "server", "answer"),
    [
        ("2025-06-18", "2025-11-25", "2025-06-18"),
        ("2025-11-25", "2025-06-18", "2025-06-18"),
        ("2099-01-01", "2025-06-18", "2025-06-18"),
        (None, "2024-11-05", "2024-11-05"),
    ],
)
def test_the_client_gets_a_version_both_it_and_the_server_speak(requested: object, server: str, answer: str) -> None:
    assert negotiate_version(requested, server) == answer


def test_messages_are_classified_strictly() -> None:
    assert classify({"jsonrpc": "2.0", "id": 1, "method": "x"}) is MessageKind.REQUEST
    assert classify({"jsonrpc": "2.0", "method": "x"}) is MessageKind.NOTIFICATION
    assert classify({"jsonrpc": "2.0", "id": 1, "result": {}}) is MessageKind.RESPONSE
    assert classify({"jsonrpc": "2.0", "id": True, "method": "x"}) is MessageKind.INVALID
    assert classify({"id": 1, "method": "x"}) is MessageKind.INVALID


# ------------------------------------------------------------------ HTTP server on a socket


async def _exchange(port: int, raw: bytes, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read() if read_until_close else reader.read(65536), 5)
    writer.close()
    return data


def test_the_server_keeps_connections_alive_limits_bodies_and_cancels_abandoned_work() -> None:
    cancelled = asyncio.Event()

    async def handler(request: Request) -> Response | StreamResponse:
        if request.path == "/slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return Response(200, [("Content-Type", "text/plain")], request.method.encode() + b":" + request.body)

    async def scenario() -> None:
        server = HttpServer(handler, guard=OriginPolicy(["http://ok"]).guard, max_body_bytes=16)
        await server.start("127.0.0.1", 0)
        try:
            two = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            two += b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answer = await _exchange(server.port, two)
            assert answer.count(b"HTTP/1.1 200 OK") == 2 and b"POST:hi" in answer and answer.endswith(b"GET:")
            chunked = (
                b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n"
                + b"x" * 16
                + b"\r\n5\r\nxxxxx\r\n0\r\n\r\n"
            )
            assert (await _exchange(server.port, chunked)).startswith(b"HTTP/1.1 413")
            declared = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n"
            assert (await _exchange(server.port, declared)).startswith(b"HTTP/1.1 413")
            foreign = b"POST /a HTTP/1.1\r\nHost: x\r\nOrigin: http://evil\r\nContent-Length: 1\r\n\r\nx"
            assert (await _exchange(server.port, foreign)).startswith(b"HTTP/1.1 403")
            assert (await _exchange(server.port, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()
            await asyncio.wait_for(cancelled.wait(), 5)
            del reader
        finally:
            await server.close()

    asyncio.run(scenario())
