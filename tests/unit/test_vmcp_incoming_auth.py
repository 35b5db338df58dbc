"""``groups[].vmcp.incoming_auth``: the gateway's endpoint judged, configured and exported by the workloads' code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.oidc_issuer import Issuer
from tests.unit.test_vmcp_export import HTTP, specs_of
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.workload.create_args import proxy_config
from toolhive_apply.views.vmcp import group_vmcp_entry, vmcp_config

POLICY = 'permit(principal, action == Action::"call_tool", resource == Tool::"alpha_echo");'


def _write(directory: Path, vmcp: dict[str, Any]) -> Path:
    issuer = Issuer()
    (directory / "jwks.json").write_text(json.dumps(issuer.jwks()), encoding="utf-8")
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "gw"},
        "groups": [{"name": "research", "vmcp": {"port": 4483, "name": "lab", **vmcp}}],
        "workloads": [{"name": "alpha", "image": HTTP, "transport": "streamable-http", "group": "research"}],
    }
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _problems(path: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        load_manifest([path])
    return "\n".join(caught.value.lines())


OIDC = {"issuer": "https://issuer.example", "audience": "lab", "jwks_url": "./jwks.json"}


def test_incoming_oidc_and_cedar_configure_the_gateway_as_a_workload_proxy_and_are_exported(tmp_path: Path) -> None:
    incoming = {"oidc": OIDC, "authz_config": {"version": "1.0", "type": "cedarv1", "cedar": {"policies": [POLICY]}}}
    spec = specs_of(load_manifest([_write(tmp_path, {"incoming_auth": incoming})]))["lab"]
    assert spec["endpoint"]["auth"] == "oidc" and spec["endpoint"]["oidc"]["audience"] == "lab"
    auth = proxy_config(spec)["auth"]
    assert auth["mode"] == "oidc" and auth["oidc"]["jwks"]["keys"]  # the local JWKS file is delivered
    assert auth["oidc"]["resource_url"] == "http://127.0.0.1:4483/mcp"
    assert auth["authz"]["cedar"]["policies"] == [POLICY]
    exported = vmcp_config(spec)["incomingAuth"]
    assert exported["type"] == "oidc" and exported["oidc"]["audience"] == "lab"
    assert exported["authz"] == {"type": "cedar", "policies": [POLICY]}
    back = group_vmcp_entry(spec)["incoming_auth"]
    assert back["oidc"]["issuer"] == OIDC["issuer"] and back["authz_config"]["cedar"]["policies"] == [POLICY]


def test_a_gateway_without_incoming_auth_is_anonymous_and_unchanged(tmp_path: Path) -> None:
    spec = specs_of(load_manifest([_write(tmp_path, {})]))["lab"]
    assert "endpoint" not in spec and "auth" not in proxy_config(spec)
    assert vmcp_config(spec)["incomingAuth"] == {"type": "anonymous"}
    assert "incoming_auth" not in group_vmcp_entry(spec)


def test_incoming_auth_problems_are_named_at_the_gateways_fields(tmp_path: Path) -> None:
    bad = {"issuer": "not a url", "jwks_url": "./jwks.json"}
    found = _problems(_write(tmp_path, {"host": "0.0.0.0", "incoming_auth": {"oidc": bad}}))
    assert "groups[0].vmcp.incoming_auth.oidc.issuer" in found
    assert "groups[0].vmcp.incoming_auth.oidc: needs audience" in found
    assert "workloads[-1]" not in found
    both = _problems(_write(tmp_path, {"incoming_auth": {"oidc": OIDC, "auth": "anonymous"}}))
    assert "groups[0].vmcp.incoming_auth.auth: auth: anonymous and oidc contradict" in both
    open_gateway = _problems(_write(tmp_path, {"host": "0.0.0.0"}))
    assert "groups[0].vmcp.host: '0.0.0.0' is not a loopback address" in open_gateway
    load_manifest([_write(tmp_path, {"host": "0.0.0.0", "incoming_auth": {"auth": "anonymous"}})])  # acknowledged
