"""A real stack with OIDC and Cedar at its endpoint, driven through the CLI and the real MCP SDK client.

The issuer is the test's own (keys made here, a JWKS file the manifest delivers to the proxy); the test talks only
to the proxy's port on 127.0.0.1. One apply serves every check: right and wrong tokens, a role that may call one
tool and one that may not, tools/list filtered, forbid over permit on an argument, `verify` passing; then one
weakening apply (a policy file and an Origin allow-list changed: only the proxy is replaced) makes `verify` fail,
naming the check.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.support.oidc_issuer import Issuer, ec_key, hs256_with_public_key, rsa_key, unsigned_token

pytestmark = pytest.mark.docker

AUDIENCE = "mcp-echo"
ECHO = 'action == Action::"call_tool", resource == Tool::"echo"'
POLICIES = [
    f'permit(principal, {ECHO}) when {{ principal.claim_role == "admin" }};',
    f'forbid(principal, {ECHO}) when {{ resource.arg_text == "forbidden" }};',
]


def _authz(policies: list[str]) -> str:
    return json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": policies, "entities_json": "[]"}})


async def _session(url: str, token: str, work: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=120) as client,
    ):
        return await work(client)


def _sdk(url: str, token: str, work: Any) -> Any:
    async def bounded() -> Any:
        with anyio.fail_after(180):
            return await _session(url, token, work)

    return anyio.run(bounded)


async def _tools(client: Client) -> list[str]:
    return sorted(tool.name for tool in (await client.list_tools()).tools)


def _call(name: str, arguments: dict[str, Any]) -> Any:
    async def work(client: Client) -> tuple[bool, str]:
        result = await client.call_tool(name, arguments)
        text = " ".join(getattr(item, "text", "") for item in result.content)
        return bool(result.is_error), text

    return work


def _status(port: int, token: str | None) -> int:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
    )
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/mcp", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _denied(url: str, token: str, name: str, arguments: dict[str, Any]) -> bool:
    """A denied call: a JSON-RPC error (the SDK raises) or an error result; never the tool's own answer."""
    try:
        is_error, _text = _sdk(url, token, _call(name, arguments))
    except Exception:  # noqa: BLE001 - the SDK raises for a JSON-RPC error or an HTTP 403
        return True
    return is_error


def test_oidc_and_cedar_at_the_endpoint_and_verify(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    issuer = Issuer(keys=[rsa_key("rsa-1"), ec_key("ec-1")], audience=AUDIENCE)
    (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
    (tmp_path / "authz.json").write_text(_authz(POLICIES))
    workload: dict[str, Any] = {
        "name": f"{stack}-echo",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "oidc": {"issuer": issuer.issuer, "audience": AUDIENCE, "jwks_url": "./jwks.json", "scopes": ["mcp"]},
        "authz_config": "authz.json",
        "strict_protocol_validation": True,
        "ready_timeout": 240,  # a bounded wait: on a loaded machine a proxy's start alone can take a minute
    }
    path = write_manifest(tmp_path, stack, [workload])
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    (entry,) = json.loads(run_cli("export", "workloads", "--all", "--stack", stack).stdout)["workloads"]
    url, port = entry["url"], entry["port"]

    admin = issuer.token(role="admin", sub="alice")
    reader = issuer.token(role="reader", sub="bob")
    # tokens: only the right one passes
    assert _status(port, admin) == 200
    refused = {
        "none": None,
        "other audience": issuer.token(aud="another-resource"),
        "expired": issuer.token(exp=1, iat=0),
        "wrong issuer": issuer.token(iss="https://evil.test"),
        "unknown kid": issuer.token(key=rsa_key("rsa-unknown")),
        "alg none": unsigned_token(issuer.claims(), {"alg": "none", "typ": "JWT", "kid": "rsa-1"}),
        "HS256 with the public key": hs256_with_public_key(issuer, issuer.keys[0]),
    }
    assert {what: _status(port, token) for what, token in refused.items()} == dict.fromkeys(refused, 401)
    assert _status(port, issuer.token(key=issuer.keys[1], role="admin")) == 200  # ES256 too

    # Cedar through the real SDK client: admin sees and calls only echo; forbid wins on an argument; reader nothing
    assert _sdk(url, admin, _tools) == ["echo"]
    assert _sdk(url, admin, _call("echo", {"text": "hello"})) == (False, "hello")
    assert _denied(url, admin, "echo", {"text": "forbidden"})
    assert _denied(url, admin, "get_env", {"name": "PATH"})
    assert _sdk(url, reader, _tools) == []
    assert _denied(url, reader, "echo", {"text": "hello"})

    # export carries ToolHive's RunConfig fields
    config = json.loads(run_cli("export", "workload", workload["name"], "--runconfig", "--stack", stack).stdout)
    assert config["oidc_config"]["issuer"] == issuer.issuer and config["oidc_config"]["audience"] == AUDIENCE
    assert config["authz_config"]["cedar"]["policies"] == POLICIES
    assert config["strict_protocol_validation"] is True

    verified = run_cli(
        "verify", str(path), "--token-env", "VERIFY_TOKEN", "--output", "json", env={"VERIFY_TOKEN": admin}
    )
    assert verified.code == 0, verified
    report = json.loads(verified.stdout)
    assert report["summary"]["fail"] == 0 and report["summary"]["skip"] == 0, report
    assert admin not in verified.output
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0

    # weakened: a foreign origin allowed, and a policy file that lets everyone call everything
    (tmp_path / "authz.json").write_text(_authz(["permit(principal, action, resource);"]))
    workload["allowed_origins"] = ["https://verify.invalid"]
    write_manifest(tmp_path, stack, [workload])
    planned = run_cli("plan", str(path), "--detailed-exitcode")
    assert planned.code == 2, planned
    assert "endpoint.authz.policies" in planned.stdout and "endpoint.allowed_origins" in planned.stdout
    assert "(from authz.json)" in planned.stdout
    server_before = docker_api.inspect_container(workload["name"])["Id"]
    proxy_before = docker_api.inspect_container(f"{workload['name']}-proxy")["Id"]
    assert run_cli("apply", str(path), "--yes").code == 0
    assert docker_api.inspect_container(workload["name"])["Id"] == server_before  # the server kept running
    assert docker_api.inspect_container(f"{workload['name']}-proxy")["Id"] != proxy_before  # the proxy alone replaced
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0
    weakened = run_cli("verify", str(path), "--token-env", "VERIFY_TOKEN", env={"VERIFY_TOKEN": admin})
    assert weakened.code == 1, weakened
    assert f"FAIL workload/{workload['name']}: foreign Origin refused" in weakened.stdout
    assert _sdk(url, reader, _tools) == ["add", "echo", "get_env"]
