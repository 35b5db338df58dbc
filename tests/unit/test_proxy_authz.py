"""The authorizer on data: the Cedar request ToolHive builds for each MCP method, and list answers filtered in JSON
bodies and SSE streams alike (legacy SSE and GET streams carry answers too)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

from toolhive_apply.proxy.auth_config import CedarConfig
from toolhive_apply.proxy.authz import Authorizer, Operation, operation_of
from toolhive_apply.proxy.cedar import Uid
from toolhive_apply.proxy.httpserver import Response, StreamResponse
from toolhive_apply.proxy.principal import Principal

AUTHZ = Authorizer.from_config(
    CedarConfig(
        (
            'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
            'permit(principal, action == Action::"get_prompt", resource) when { context.claim_team == "a" };',
            'permit(principal == Client::"anonymous", action == Action::"read_resource", resource);',
        )
    )
)
TEAM_A = Principal.of("alice", {"sub": "alice", "team": "a"})
LIST = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "weather"}, {"name": "calc"}, {"nameless": 1}]}}


def test_methods_map_to_toolhive_actions_and_resources() -> None:
    def request(method: str, **params: object) -> dict[str, object]:
        return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}

    assert operation_of(request("tools/call", name="w", arguments={"a": 1})) == Operation(
        "call_tool", Uid("Tool", "w"), {"a": 1}
    )
    assert operation_of(request("prompts/get", name="p")) == Operation("get_prompt", Uid("Prompt", "p"), {})
    assert operation_of(request("resources/read", uri="file:///x")) == Operation(
        "read_resource", Uid("Resource", "file:///x")
    )
    assert operation_of(request("tools/list")) == Operation("list_tools", Uid("FeatureType", "tool"))
    assert operation_of(request("initialize")) is None and operation_of(request("ping")) is None
    assert operation_of(request("sampling/whatever")) == "sampling/whatever"  # unmapped: denied


def test_claims_reach_principal_and_context_and_anonymous_is_a_client() -> None:
    assert AUTHZ.allows(TEAM_A, Operation("get_prompt", Uid("Prompt", "p")))
    assert not AUTHZ.allows(Principal.of("bob", {"team": "b"}), Operation("get_prompt", Uid("Prompt", "p")))
    assert AUTHZ.allows(None, Operation("read_resource", Uid("Resource", "r")))
    assert not AUTHZ.allows(TEAM_A, Operation("read_resource", Uid("Resource", "r")))
    assert AUTHZ.allows(TEAM_A, Operation("list_tools", Uid("FeatureType", "tool")))  # no policy names list_tools


def test_list_answers_are_filtered_in_json_and_in_sse() -> None:
    filtered = AUTHZ.filter_response(TEAM_A, Response(200, [], json.dumps(LIST).encode()))
    assert isinstance(filtered, Response)
    assert json.loads(filtered.body)["result"]["tools"] == [{"name": "weather"}]

    async def events() -> AsyncGenerator[bytes, None]:
        yield b"event: endpoint\ndata: /messages?session_id=x\n\n"
        text = json.dumps(LIST)
        yield f"event: message\ndata: {text[:20]}".encode()
        yield f"{text[20:]}\n\n".encode()

    async def collect() -> bytes:
        stream = AUTHZ.filter_response(TEAM_A, StreamResponse(200, [("Content-Type", "text/event-stream")], events()))
        assert isinstance(stream, StreamResponse)
        return b"".join([chunk async for chunk in stream.chunks])

    body = asyncio.run(collect()).decode()
    assert "event: endpoint" in body and '"calc"' not in body and '"weather"' in body


def test_a_case_variant_list_key_is_not_relayed() -> None:
    sneaky = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [], "Tools": [{"name": "calc"}]}}
    filtered = AUTHZ.filter_response(TEAM_A, Response(200, [], json.dumps(sneaky).encode()))
    assert isinstance(filtered, Response) and "calc" not in filtered.body.decode()
