"""Vault (a real OpenBao dev server) as the secret store of a stack, end to end against Docker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.support.mcp_client import call_tool
from tests.support.openbao import OpenBao, openbao_server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        yield server


def vault_settings(bao: OpenBao, prefix: str) -> dict[str, Any]:
    return {"provider": "vault", "vault": {"address": bao.address, "mount": "secret", "path_prefix": prefix}}


def url_of(stack: str, name: str) -> str:
    listing = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)["workloads"]
    return next(w["url"] for w in listing if w["name"] == name)


def test_a_vault_backed_stack_injects_writes_and_follows_out_of_band_rotation(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    env = {"VAULT_TOKEN": bao.root_token, "HOME": str(tmp_path / "home"), "MANAGED_VALUE": "managed-1"}
    bao.client().secrets.kv.v2.create_or_update_secret(f"{stack}/outside", {"value": "outside-1"}, mount_point="secret")
    workloads = [
        {
            "name": f"{stack}-a",
            "image": HTTP_IMAGE,
            "transport": "streamable-http",
            "secrets": [{"name": "managed", "target": "MANAGED"}, {"name": "outside", "target": "OUTSIDE"}],
        },
        {
            "name": f"{stack}-b",
            "image": HTTP_IMAGE,
            "transport": "streamable-http",
            "secrets": [{"name": "managed", "target": "MANAGED"}],
        },
    ]
    path = write_manifest(
        tmp_path,
        stack,
        workloads,
        settings={"stack": stack, "secrets": vault_settings(bao, stack)},
        secrets=[
            {"key": "managed", "from": {"env": "MANAGED_VALUE"}, "description": "written by the test"},
            {"key": "outside", "present": True},
        ],
    )
    applied = run_cli("apply", str(path), "--yes", env=env)
    assert applied.code == 0, applied
    assert call_tool(url_of(stack, f"{stack}-a"), "get_env", {"name": "OUTSIDE"}) == "outside-1"
    assert call_tool(url_of(stack, f"{stack}-b"), "get_env", {"name": "MANAGED"}) == "managed-1"
    stored = bao.client().secrets.kv.v2.read_secret_metadata(f"{stack}/managed", mount_point="secret")
    assert stored["data"]["custom_metadata"]["managed-by"] == "toolhive-apply"
    assert stored["data"]["custom_metadata"]["stack"] == stack
    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0

    keys = json.loads(run_cli("export", "secrets", str(path), env=env).stdout)["keys"]
    assert {"key": "managed", "description": "written by the test"} in keys
    assert all("value" not in k for k in keys)
    provider = json.loads(run_cli("export", "secrets", str(path), "--provider", env=env).stdout)
    assert provider["provider_type"] == "vault" and provider["capabilities"]["can_write"] is True

    bao.client().secrets.kv.v2.create_or_update_secret(f"{stack}/outside", {"value": "outside-2"}, mount_point="secret")
    plan = run_cli("plan", str(path), "--detailed-exitcode", env=env)
    assert plan.code == 2, plan
    assert f"workload/{stack}-a must be replaced (secret rotated: outside)" in plan.stdout
    assert f"workload/{stack}-b" not in plan.stdout
    assert "outside-2" not in plan.output
    assert run_cli("apply", str(path), "--yes", env=env).code == 0
    assert call_tool(url_of(stack, f"{stack}-a"), "get_env", {"name": "OUTSIDE"}) == "outside-2"


def test_vault_unreachable_or_denied_is_one_clear_error_and_nothing_is_applied(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    workload = {
        "name": f"{stack}-w",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": "t", "target": "T"}],
    }
    settings = {
        "stack": stack,
        "secrets": {"provider": "vault", "vault": {"address": "http://127.0.0.1:9", "path_prefix": stack}},
    }
    path = write_manifest(tmp_path, stack, [workload], settings=settings, secrets=[{"key": "t", "present": True}])
    down = run_cli("apply", str(path), "--yes", env={"VAULT_TOKEN": "whatever", "HOME": str(tmp_path)})
    assert down.code == 1
    assert "http://127.0.0.1:9" in down.stderr and "Traceback" not in down.stderr

    denied_token = bao.create_token([bao.deny_policy()])
    path = write_manifest(
        tmp_path,
        stack,
        [workload],
        settings={"stack": stack, "secrets": vault_settings(bao, stack)},
        secrets=[{"key": "t", "present": True}],
    )
    denied = run_cli("apply", str(path), "--yes", env={"VAULT_TOKEN": denied_token, "HOME": str(tmp_path)})
    assert denied.code == 1
    assert "denied" in denied.stderr.lower() or "forbidden" in denied.stderr.lower() or "403" in denied.stderr
    assert docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}) == []
