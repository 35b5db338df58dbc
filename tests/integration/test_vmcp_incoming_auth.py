"""``incoming_auth`` on a group gateway: OIDC and Cedar enforced by the gateway as a workload proxy enforces them.

The issuer is the test's own (a JWKS file the manifest delivers); the test talks only to the gateway's port. Cedar's
``Tool::`` resources name the aggregated (prefixed) tool names: admin sees and calls only ``<alpha>_echo``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.integration.test_endpoint_auth_stack import _authz, _call, _denied, _sdk, _status, _tools
from tests.integration.test_vmcp_gateway import _free_port
from tests.support.oidc_issuer import Issuer, ec_key, rsa_key

pytestmark = pytest.mark.docker

AUDIENCE = "lab-gateway"


def test_the_gateway_enforces_oidc_and_cedar_on_aggregated_tool_names(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    alpha, gateway = f"{stack}-alpha", f"{stack}-gw"
    issuer = Issuer(keys=[rsa_key("rsa-1"), ec_key("ec-1")], audience=AUDIENCE)
    (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
    echo = f'action == Action::"call_tool", resource == Tool::"{alpha}_echo"'
    policy = f'permit(principal, {echo}) when {{ principal.claim_role == "admin" }};'
    (tmp_path / "authz.json").write_text(_authz([policy]))
    port = _free_port()
    incoming = {
        "oidc": {"issuer": issuer.issuer, "audience": AUDIENCE, "jwks_url": "./jwks.json"},
        "authz_config": "authz.json",
    }
    path = write_manifest(
        tmp_path,
        stack,
        [{"name": alpha, "image": HTTP_IMAGE, "transport": "streamable-http", "group": "lab"}],
        settings={"defaults": {"ready_timeout": 240}},
        groups=[{"name": "lab", "vmcp": {"port": port, "name": gateway, "incoming_auth": incoming}}],
    )
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied.output
    url = f"http://127.0.0.1:{port}/mcp"

    admin = issuer.token(role="admin", sub="alice")
    assert _status(port, None) == 401
    assert _status(port, issuer.token(aud="another-resource")) == 401
    assert _status(port, admin) == 200
    assert _sdk(url, admin, _tools) == [f"{alpha}_echo"]  # tools/list filtered by the policy, by aggregated name
    assert _sdk(url, admin, _call(f"{alpha}_echo", {"text": "hello"})) == (False, "hello")
    assert _denied(url, admin, f"{alpha}_add", {"a": 1, "b": 2})
    assert _denied(url, issuer.token(role="reader", sub="bob"), f"{alpha}_echo", {"text": "hello"})

    exported = json.loads(run_cli("export", "group", "lab", "--vmcp-config", "--stack", stack).stdout)
    assert exported["incomingAuth"]["type"] == "oidc" and exported["incomingAuth"]["oidc"]["audience"] == AUDIENCE
    assert admin not in applied.output
    verified = run_cli(
        "verify", str(path), "--token-env", "VERIFY_TOKEN", "--output", "json", env={"VERIFY_TOKEN": admin}
    )
    assert verified.code == 0, verified
    checks = json.loads(verified.stdout)["checks"]
    ours = {c["check"]: c["status"] for c in checks if c["workload"] == gateway}
    assert ours and set(ours.values()) == {"pass"}, checks  # the gateway is probed as an endpoint of its own
    assert admin not in verified.output
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0
