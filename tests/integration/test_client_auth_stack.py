"""`client_auth` through the CLI and a real engine (#16): the token the client file carries gets through the OIDC
endpoint, and it appears nowhere but in that file.

The issuer is the test's own (tests/support/oidc_issuer.py); the token is a JWT it signed, stored as a secret in a
private encrypted store. The MCP SDK client is given exactly the URL and headers Cursor would read from its file.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, private_env, run_cli, write_manifest
from tests.integration.test_endpoint_auth_stack import _call, _sdk, _status
from tests.support.oidc_issuer import Issuer, rsa_key

pytestmark = pytest.mark.docker

AUDIENCE = "mcp-client-auth"
SECRET = "echo-token"


def test_the_token_in_the_client_file_gets_through_and_rotates_without_showing(
    tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    issuer = Issuer(keys=[rsa_key("rsa-1")], audience=AUDIENCE)
    (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
    first, second = issuer.token(sub="alice"), issuer.token(sub="bob")
    env = private_env(tmp_path, ECHO_TOKEN=first)
    (tmp_path / "home").mkdir()
    cursor_file = tmp_path / "cursor" / "mcp.json"
    workload: dict[str, Any] = {
        "name": f"{stack}-echo",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "oidc": {"issuer": issuer.issuer, "audience": AUDIENCE, "jwks_url": "./jwks.json"},
        "client_auth": {"bearer_secret": SECRET},
        "ready_timeout": 240,
    }
    path = write_manifest(
        tmp_path,
        stack,
        [workload],
        secrets=[{"key": SECRET, "from": {"env": "ECHO_TOKEN"}}],
        clients=[
            {"name": "cursor", "config_path": str(cursor_file), "create": True},
            {"name": "zed", "config_path": str(tmp_path / "zed" / "settings.json"), "create": True},
        ],
    )
    planned = run_cli("plan", str(path), "--output", "json", env=env)
    assert planned.code == 0, planned
    applied = run_cli("apply", str(path), "--yes", env=env)
    assert applied.code == 0, applied
    assert "client zed cannot be given a bearer token" in applied.output

    entry = json.loads(cursor_file.read_text(encoding="utf-8"))["mcpServers"][workload["name"]]
    assert entry["headers"] == {"Authorization": f"Bearer {first}"}
    assert stat.S_IMODE(cursor_file.stat().st_mode) == 0o600
    port = int(entry["url"].split(":")[2].split("/")[0])
    token = entry["headers"]["Authorization"].removeprefix("Bearer ")
    assert _status(port, None) == 401 and _status(port, token) == 200
    assert _sdk(entry["url"], token, _call("echo", {"text": "hello"})) == (False, "hello")

    env["ECHO_TOKEN"] = second  # rotation: the store's secret and the one client file holding it
    rotated = run_cli("plan", str(path), "--detailed-exitcode", env=env)
    assert rotated.code == 2, rotated
    assert "client/cursor will be updated in place (secret rotated: echo-token)" in rotated.stdout
    assert f"workload/{workload['name']}" not in rotated.stdout and "client/zed" not in rotated.stdout
    applied_again = run_cli("apply", str(path), "--yes", env=env)
    assert applied_again.code == 0, applied_again
    entry = json.loads(cursor_file.read_text(encoding="utf-8"))["mcpServers"][workload["name"]]
    assert entry["headers"] == {"Authorization": f"Bearer {second}"}
    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0

    exported = run_cli("export", "--as-manifest", "--stack", stack, env=env)
    assert exported.code == 0, exported
    state = (tmp_path / "state" / "toolhive-apply" / "clients" / f"{stack}.json").read_text(encoding="utf-8")
    for text in (planned.output, applied.output, rotated.output, applied_again.output, exported.output, state):
        assert first not in text and second not in text
    assert "client_auth" in exported.stdout and SECRET in exported.stdout
