"""The proxy container (python:3.11-slim-like test image, standard library only) with OIDC, Cedar and strict
protocol validation in front of the FastMCP test server: the JWKS is fetched from a container on the test's own
network, RS256 and ES256 tokens made by the test are verified inside the image, the SDK client sees and calls only
what its role allows, and the 401 / metadata / 400 answers are what clients and ``verify`` rely on. One stack."""

from __future__ import annotations

import json

import pytest

from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import ProxyStack
from tests.support.mcp_bearer import run_session
from tests.support.oidc_issuer import AUDIENCE, ISSUER, Issuer

proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

JWKS_SERVER = """
import http.server
DOC = {doc!r}.encode()
class Keys(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(DOC)))
        self.end_headers()
        self.wfile.write(DOC)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Keys).serve_forever()
"""
POLICIES = [
    # Lists are filtered as ToolHive does, by call_tool without arguments: argument limits are written as forbids.
    'permit(principal, action == Action::"call_tool", resource == Tool::"add") when {\n'
    '  principal.claim_roles.contains("math") };',
    'forbid(principal, action, resource == Tool::"add") when { resource has arg_a && resource.arg_a >= 100 };',
    'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"get_env");',
]


def test_authenticated_and_authorized_endpoint_in_the_container(proxy_stack: ProxyStack) -> None:
    issuer = Issuer()
    web = proxy_stack.start_http_server("streamable-http")
    keys = proxy_stack.start_python(JWKS_SERVER.format(doc=json.dumps(issuer.jwks())), "jwks")
    resource = "http://127.0.0.1:8080/mcp"
    config = {
        "name": web,
        "mode": "http",
        "upstream_url": f"http://{web}:8080/mcp",
        "strict_protocol_validation": True,
        "auth": {
            "mode": "oidc",
            "oidc": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks": None,
                "jwks_url": f"http://{keys}:8080/jwks",
                "scopes": ["mcp"],
                "resource_url": resource,
            },
            "authz": {"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES, "entities_json": "[]"}},
        },
    }
    proxy = proxy_stack.start_proxy(config, socket_access=False)
    try:
        proxy.wait_health("running", timeout=180)  # the FastMCP server is slow to start on a busy host
    except TimeoutError as error:
        raise AssertionError(f"{error}\nproxy log:\n{proxy_stack.logs(proxy.name)}") from error

    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    status, answer, _ = proxy.request("POST", "/mcp", ping, headers)
    assert status == 401
    metadata = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata}"' in answer["www-authenticate"]
    status, _, document = proxy.request("GET", "/.well-known/oauth-protected-resource/mcp")
    assert status == 200 and json.loads(document)["authorization_servers"] == [ISSUER]
    for token in (issuer.token(aud="another-mcp"), issuer.token(exp=1), issuer.token(iss="https://evil")):
        status, answer, _ = proxy.request("POST", "/mcp", ping, {**headers, "Authorization": f"Bearer {token}"})
        assert status == 401 and "invalid_token" in answer["www-authenticate"], proxy_stack.logs(proxy.name)

    rsa, ec = issuer.keys
    math_user = issuer.token(rsa, sub="alice", roles=["math"])
    names, outcomes = run_session(proxy.url(), math_user, [("add", {"a": 2, "b": 40}), ("add", {"a": 200, "b": 1})])
    assert names == ["add"], proxy_stack.logs(proxy.name)
    assert outcomes[0] == "ok 42" and outcomes[1].startswith("denied")
    admin = issuer.token(ec, sub="bob", roles=["admin"])  # ES256, verified in pure Python inside the image
    names, outcomes = run_session(proxy.url(), admin, [("echo", {"text": "hi"}), ("get_env", {"name": "PATH"})])
    assert sorted(names) == ["add", "echo"]
    assert outcomes[0] == "ok hi" and outcomes[1].startswith("denied")

    bearer = {**headers, "Authorization": f"Bearer {admin}"}
    status, _, _ = proxy.request("POST", "/mcp", ping, {**bearer, "MCP-Protocol-Version": "1999-01-01"})
    assert status == 400
    status, _, _ = proxy.request("POST", "/mcp", b"[" + ping + b"]", bearer)
    assert status == 400
