"""`verify` against the real proxy code run in-process (no Docker): every check passes on a sound endpoint and the
right one fails, by name, on a weakened one. The upstream is a tiny MCP stand-in on loopback."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.oidc_issuer import Issuer
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.workload.create_args import proxy_config
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.proxy.app import build_server
from toolhive_apply.proxy.config import load_config
from toolhive_apply.verify import foreign_token, verify_specs


class _Upstream(BaseHTTPRequestHandler):
    sessions: set[str] = set()

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if message.get("method") == "initialize":
            session = secrets.token_hex(8)
            self.sessions.add(session)
            result = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "stand-in"}}
            self._send(200, {"jsonrpc": "2.0", "id": message.get("id"), "result": result}, {"Mcp-Session-Id": session})
        elif self.headers.get("Mcp-Session-Id") not in self.sessions:
            self._send(404, {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": "no such session"}})
        else:
            self._send(200, {"jsonrpc": "2.0", "id": message.get("id"), "result": {"tools": []}})

    def do_DELETE(self) -> None:
        self.sessions.discard(self.headers.get("Mcp-Session-Id", ""))
        self._send(200)


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class _Running:
    """The proxy's own server on an asyncio loop in a thread, stopped at the end."""

    def __init__(self, config_json: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.server, _ = build_server(load_config(config_json, {}))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start("127.0.0.1", 0), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _spec(tmp_path: Path, issuer: Issuer, **workload: Any) -> dict[str, Any]:
    (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
    entry = {
        "name": "w",
        "image": "x",
        "transport": "streamable-http",
        "oidc": {"issuer": issuer.issuer, "audience": issuer.audience, "jwks_url": "jwks.json", "scopes": ["mcp"]},
        "strict_protocol_validation": True,
        **workload,
    }
    document = {"apiVersion": "toolhive-apply/v1", "settings": {"stack": "s"}, "workloads": [entry]}
    (tmp_path / "stack.yaml").write_text(json.dumps(document))
    manifest = load_manifest([tmp_path / "stack.yaml"])
    return workload_spec(manifest.workloads[0], manifest, 20000, None)


def _verify(
    spec: dict[str, Any],
    upstream: int,
    token: str | None,
    *,
    proxy_scopes: bool = True,
    other_audience_token: str | None = None,
    proxy_audience: str | None = None,
) -> dict[str, str]:
    config = proxy_config(spec)
    config.update({"upstream_url": f"http://127.0.0.1:{upstream}/mcp", "listen_host": "127.0.0.1"})
    if not proxy_scopes:  # a proxy that forgot the scopes: it neither asks for them nor announces them
        config["auth"]["oidc"]["scopes"] = []
    if proxy_audience is not None:  # a proxy configured for another resource than the spec says
        config["auth"]["oidc"]["audience"] = proxy_audience
    running = _Running(json.dumps(config))
    try:
        spec = {**spec, "proxy_port": running.server.port}
        return {c.name: f"{c.status}: {c.detail}" for c in verify_specs([spec], token, other_audience_token)}
    finally:
        running.close()


def test_verify_passes_every_check_on_a_sound_endpoint(tmp_path: Path, upstream: int) -> None:
    issuer = Issuer()
    results = _verify(_spec(tmp_path, issuer), upstream, issuer.token())
    assert list(results) == [
        "MCP initialize",
        "foreign Origin refused",
        "bad Host refused",
        "no token refused",
        "token for another audience refused",
        "protected-resource metadata lists the issuer",
        "required scopes advertised",
        "bogus MCP-Protocol-Version refused",
        "unknown session refused",
    ]
    assert all(r.startswith("pass") for r in results.values()), json.dumps(results, indent=1)


def test_without_a_token_the_checks_that_need_one_are_skipped(tmp_path: Path, upstream: int) -> None:
    results = _verify(_spec(tmp_path, Issuer()), upstream, None)
    skipped = {name for name, r in results.items() if r.startswith("skip")}
    assert skipped == {"MCP initialize", "bogus MCP-Protocol-Version refused", "unknown session refused"}
    assert not any(r.startswith("fail") for r in results.values()), results


def test_verify_names_the_check_a_weakened_endpoint_fails(tmp_path: Path, upstream: int) -> None:
    issuer = Issuer()
    spec = _spec(tmp_path, issuer, allowed_origins=["https://verify.invalid"])
    results = _verify(spec, upstream, issuer.token())
    failed = {name for name, r in results.items() if r.startswith("fail")}
    assert failed == {"foreign Origin refused"}, results


def test_the_foreign_token_is_well_formed_and_for_the_other_audience() -> None:
    _header, claims, signature = foreign_token("https://idp.test", "elsewhere").split(".")
    import base64

    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["aud"] == "elsewhere" and decoded["iss"] == "https://idp.test" and signature


def test_verify_fails_when_the_required_scopes_are_not_advertised(tmp_path: Path, upstream: int) -> None:
    issuer = Issuer()
    results = _verify(_spec(tmp_path, issuer), upstream, issuer.token(), proxy_scopes=False)
    failed = {name for name, r in results.items() if r.startswith("fail")}
    assert failed == {"required scopes advertised"}, results
    assert "lacks scope(s) ['mcp']" in results["required scopes advertised"]


def test_an_issuer_signed_token_for_another_audience_proves_the_audience_check(tmp_path: Path, upstream: int) -> None:
    issuer = Issuer()
    other = issuer.token(aud="another-resource")  # the issuer's own key: only the audience can refuse it
    results = _verify(_spec(tmp_path, issuer), upstream, issuer.token(), other_audience_token=other)
    assert results["token for another audience refused"] == (
        "pass: a token the issuer signed for another audience -> HTTP 401"
    )


def test_an_endpoint_that_accepts_the_other_audience_fails_the_check(tmp_path: Path, upstream: int) -> None:
    issuer = Issuer()
    other = issuer.token(aud="another-resource")
    # the proxy wrongly accepts both audiences' tokens: here, by being configured for the other one
    results = _verify(
        _spec(tmp_path, issuer), upstream, other, other_audience_token=other, proxy_audience="another-resource"
    )
    assert results["token for another audience refused"].startswith("fail: a token the issuer signed"), results
