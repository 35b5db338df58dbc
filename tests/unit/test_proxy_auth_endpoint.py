"""The proxy in process (http mode, in front of a recording MCP server on loopback) with OIDC and Cedar on: the
real MCP SDK client carrying a bearer token sees and calls only what the policy allows, callers without a valid
token get the RFC 9728 challenge, and no client credential reaches the server."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_mcp_http import FakeMcpServer
from tests.support.mcp_bearer import Calls
from tests.support.mcp_bearer import run_session as bearer_session
from tests.support.oidc_issuer import AUDIENCE, ISSUER, Issuer
from toolhive_apply.proxy.app import build_server
from toolhive_apply.proxy.config import load_config
from toolhive_apply.proxy.observer import close_observers

POLICIES = [
    # weather for the weather role, only for two cities; everything for admins; secret_env for nobody
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather") when {\n'
    '  principal.claim_roles.contains("weather") && ["London", "Oslo"].contains(resource.arg_city) };',
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather") when {\n'
    '  principal.claim_roles.contains("weather") && !(resource has arg_city) };',
    'permit(principal in Group::"admins", action, resource);',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"secret_env");',
]
ENTITIES = [{"uid": {"type": "Client", "id": "bob"}, "attrs": {}, "parents": [{"type": "Group", "id": "admins"}]}]


@dataclass
class Stack:
    proxy: int
    upstream: FakeMcpServer
    issuer: Issuer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy}/mcp"


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(scope="module")
def stack(audit_log: Path) -> Iterator[Stack]:
    issuer = Issuer()
    upstream = FakeMcpServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        await upstream.start()
        config = {
            "name": "weather",
            "mode": "http",
            "listen_port": 8080,
            "upstream_url": f"http://127.0.0.1:{upstream.port}/mcp",
            "strict_protocol_validation": True,
            "audit": {"enabled": True, "logFile": str(audit_log)},
            "auth": {
                "mode": "oidc",
                "oidc": {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks": issuer.jwks(),
                    "jwks_url": None,
                    "scopes": ["mcp", "openid"],
                    "resource_url": "http://127.0.0.1:8080/mcp",
                },
                "authz": {
                    "version": "1.0",
                    "type": "cedarv1",
                    "cedar": {"policies": POLICIES, "entities_json": json.dumps(ENTITIES)},
                },
            },
        }
        server, _ = build_server(load_config(json.dumps(config), {}))
        await server.start("127.0.0.1", 0)
        holder["server"] = server
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(main()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(20)
    yield Stack(holder["server"].port, upstream, issuer)

    async def stop() -> None:
        await holder["server"].close()
        await upstream.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(20)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(20)
    loop.close()
    close_observers()  # the audit file the proxy opened


def http(
    stack: Stack, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{stack.proxy}{path}", data=data, method=method)
    for key, value in {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}.items():
        request.add_header(key, value)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    return status, {k.lower(): v for k, v in answer_headers.items()}, json.loads(raw) if raw else None


PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def test_without_a_valid_token_401_points_to_the_metadata(stack: Stack) -> None:
    status, headers, body = http(stack, "POST", "/mcp", PING)
    assert status == 401 and "error" in body
    challenge = headers["www-authenticate"]
    metadata_url = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge
    assert 'scope="mcp openid"' in challenge
    for token in (stack.issuer.token(aud="another-resource"), stack.issuer.token(iss="https://evil"), "opaque"):
        status, headers, _ = http(stack, "POST", "/mcp", PING, {"Authorization": f"Bearer {token}"})
        assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        status, _, document = http(stack, "GET", path)
        assert status == 200
        assert document == {
            "resource": "http://127.0.0.1:8080/mcp",
            "authorization_servers": [ISSUER],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["mcp", "openid"],
        }
    assert not [m for _, m in stack.upstream.received if m == PING]  # nothing unauthenticated got through


def test_a_token_without_the_required_scopes_gets_403_and_the_step_up_challenge(stack: Stack) -> None:
    """MCP authorization 2025-11-25 step-up: 403, ``error="insufficient_scope"``, the scopes to ask for, and the
    metadata URL; nothing reaches the server. ``scope`` (space-separated) and ``scp`` (a list) both count."""
    before = len(stack.upstream.received)
    for claims in ({"scope": "mcp"}, {"scope": None}, {"scope": "mcpx openid"}, {"scope": ["mcp", "openid"]}):
        token = stack.issuer.token(sub="bob", **claims)
        status, headers, body = http(stack, "POST", "/mcp", PING, {"Authorization": f"Bearer {token}"})
        assert status == 403, claims
        challenge = headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
        assert 'scope="mcp openid"' in challenge
        assert 'resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"' in challenge
        assert body["error"]["code"] == -32003 and "scope" in body["error"]["message"]
    assert len(stack.upstream.received) == before
    for claims in ({"scope": "openid mcp extra"}, {"scope": None, "scp": ["mcp", "openid"]}):
        token = stack.issuer.token(sub="bob", **claims)
        status, _, _ = http(stack, "POST", "/mcp", PING, {"Authorization": f"Bearer {token}"})
        assert status == 200, claims


def run_session(stack: Stack, token: str, calls: Calls) -> tuple[list[str], list[str]]:
    return bearer_session(stack.url, token, calls)


def test_the_sdk_client_sees_and_calls_only_what_its_role_allows(stack: Stack) -> None:
    token = stack.issuer.token(sub="alice", roles=["weather"])
    before = len(stack.upstream.calls)
    names, outcomes = run_session(
        stack,
        token,
        [("weather", {"city": "London"}), ("weather", {"city": "Paris"}), ("calc", {}), ("secret_env", {})],
    )
    assert names == ["weather"]
    assert outcomes[0] == 'ok weather {"city": "London"}'
    assert all(o.startswith("denied") and "Forbidden" in o for o in outcomes[1:]), outcomes
    assert stack.upstream.calls[before:] == ["weather"]  # the denied calls never reached the server


def test_forbid_wins_over_an_entity_group_permit(stack: Stack) -> None:
    names, outcomes = run_session(stack, stack.issuer.token(sub="bob"), [("calc", {"x": 1}), ("secret_env", {})])
    assert names == ["weather", "calc"]
    assert outcomes[0].startswith("ok calc") and outcomes[1].startswith("denied")


def test_another_role_is_denied_everything(stack: Stack) -> None:
    names, outcomes = run_session(stack, stack.issuer.token(sub="carol", roles=["reader"]), [("weather", {})])
    assert names == [] and outcomes[0].startswith("denied")


def test_no_client_credential_reaches_the_server(stack: Stack) -> None:
    run_session(stack, stack.issuer.token(sub="bob"), [])
    assert stack.upstream.received
    for headers, _ in stack.upstream.received:
        assert "authorization" not in headers and "cookie" not in headers


def test_strict_protocol_validation(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.issuer.token(sub='bob')}"}
    status, _, body = http(stack, "POST", "/mcp", PING, {**auth, "MCP-Protocol-Version": "1999-01-01"})
    assert status == 400 and "MCP-Protocol-Version" in body["error"]["message"]
    status, _, body = http(stack, "POST", "/mcp", [PING, PING], auth)
    assert status == 400 and "batches" in body["error"]["message"]
    status, _, _ = http(stack, "POST", "/mcp", PING, {**auth, "MCP-Protocol-Version": "2025-11-25"})
    assert status == 200


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def test_a_session_belongs_to_the_subject_that_opened_it(stack: Stack) -> None:
    bob = {"Authorization": f"Bearer {stack.issuer.token(sub='bob')}"}
    status, headers, _ = http(stack, "POST", "/mcp", INIT, bob)
    assert status == 200
    session = headers["mcp-session-id"]
    status, _, _ = http(stack, "POST", "/mcp", PING, {**bob, "Mcp-Session-Id": session})
    assert status == 200
    mallory = {"Authorization": f"Bearer {stack.issuer.token(sub='mallory', roles=['weather'])}"}
    status, _, body = http(stack, "POST", "/mcp", PING, {**mallory, "Mcp-Session-Id": session})
    assert status == 404 and "Session not found" in body["error"]["message"]


def test_arguments_a_case_insensitive_server_reads_differently_are_refused(stack: Stack) -> None:
    alice = {"Authorization": f"Bearer {stack.issuer.token(sub='alice', roles=['weather'])}"}
    call = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "weather", "arguments": {"city": "Oslo", "City": "Paris"}},
    }
    before = len(stack.upstream.calls)
    status, _, body = http(stack, "POST", "/mcp", call, alice)
    assert status == 400 and "case" in body["error"]["message"]
    assert len(stack.upstream.calls) == before


def test_denied_and_unauthenticated_calls_are_audited_as_denied_with_who_asked(stack: Stack, audit_log: Path) -> None:
    """#17 with #16: the audit names the verified subject, and a refusal by policy or for want of a token is
    audited as denied (ToolHive's outcome word), never as a success."""
    run_session(stack, stack.issuer.token(sub="dave", roles=["weather"]), [("weather", {"city": "Rome"})])
    http(stack, "POST", "/mcp", {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "calc"}})
    events = [json.loads(line) for line in audit_log.read_text().splitlines() if line.strip()]
    daves = [e for e in events if e["subjects"].get("user_id") == "dave" and e["type"] == "mcp_tool_call"]
    assert [(e["target"]["name"], e["outcome"]) for e in daves] == [("weather", "denied")], daves
    anonymous = [e for e in events if e["subjects"] == {"user": "anonymous"} and e["outcome"] == "denied"]
    assert anonymous, events
    assert "eyJ" not in audit_log.read_text()  # no bearer token (a JWT's base64 header) in any audit line


def _raw_post(stack: Stack, header_lines: list[str], path: str = "/mcp") -> int:
    """A POST written by hand, for what urllib cannot send (the same header twice)."""
    import socket

    body = json.dumps(PING).encode()
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{stack.proxy}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *header_lines,
    ]
    with socket.create_connection(("127.0.0.1", stack.proxy), timeout=10) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_the_token_counts_only_as_one_bearer_authorization_header(stack: Stack) -> None:
    """RFC 6750 §2.1 only, as MCP requires: no query parameter, no cookie, no second header, no other scheme."""
    good = stack.issuer.token(sub="bob")
    before = len(stack.upstream.received)
    assert _raw_post(stack, [f"Authorization: bearer {good}"]) == 200  # the scheme is case-insensitive
    # the same header twice is refused as a malformed request (400) before authentication
    assert _raw_post(stack, [f"Authorization: Bearer {good}", f"Authorization: Bearer {good}"]) == 400
    refused = [
        [f"Authorization: Bearer {good}, Bearer {good}"],
        [f"Authorization: Basic {good}"],
        ["Authorization: Bearer"],
        [f"Cookie: access_token={good}"],
        [f"X-Forwarded-Authorization: Bearer {good}"],
    ]
    for lines in refused:
        assert _raw_post(stack, lines) == 401, lines
    assert _raw_post(stack, [], f"/mcp?access_token={good}") == 401
    assert len(stack.upstream.received) == before + 1  # only the one good request got through
