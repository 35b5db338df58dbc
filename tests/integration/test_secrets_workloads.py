"""Secrets end to end against Docker with the embedded encrypted store: injection, rotation, and a canary.

The canary is a unique value pushed through every command and failure path; afterwards stdout, stderr, every
file the tool wrote, every saved plan and every container label are searched for it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.support.mcp_client import call_tool
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.encrypted import EncryptedStore
from toolhive_apply.stores.toolhive_format import default_path

pytestmark = pytest.mark.docker


@pytest.fixture
def secret_env(tmp_path: Path) -> dict[str, str]:
    """A private encrypted store (ToolHive's format) and state/cache directories the canary search covers."""
    return {
        "TOOLHIVE_SECRETS_PASSWORD": "correct horse battery staple",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HOME": str(tmp_path / "home"),
    }


def http_with_secret(name: str, secret: str, target: str = "API_TOKEN", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": secret, "target": target}],
        **extra,
    }


def url_of(stack: str, name: str, env: dict[str, str]) -> str:
    listing = json.loads(run_cli("export", "workloads", "--stack", stack, env=env).stdout)["workloads"]
    return next(w["url"] for w in listing if w["name"] == name)


def test_a_workload_gets_its_secret_and_rotation_replaces_only_its_users(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    env = {**secret_env, "TOKEN_UNDER_TEST": "first-value-1234"}
    workloads = [
        http_with_secret(f"{stack}-user", "token"),
        {"name": f"{stack}-other", "image": HTTP_IMAGE, "transport": "streamable-http"},
    ]
    path = write_manifest(tmp_path, stack, workloads, secrets=[{"key": "token", "from": {"env": "TOKEN_UNDER_TEST"}}])
    applied = run_cli("apply", str(path), "--yes", env=env)
    assert applied.code == 0, applied
    assert call_tool(url_of(stack, f"{stack}-user", env), "get_env", {"name": "API_TOKEN"}) == "first-value-1234"
    ids = {c["Names"][0]: c["Id"] for c in docker_api.containers(filters={"label": [f"toolhive-apply.stack={stack}"]})}

    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0
    rotated = {**env, "TOKEN_UNDER_TEST": "second-value-5678"}
    plan = run_cli("plan", str(path), "--detailed-exitcode", env=rotated)
    assert plan.code == 2, plan
    assert "secret/token must be replaced" in plan.stdout or "secret/token will be updated" in plan.stdout
    assert f"workload/{stack}-user must be replaced (secret rotated: token)" in plan.stdout
    assert "(sensitive value will change)" in plan.stdout
    assert f"workload/{stack}-other" not in plan.stdout
    assert "second-value-5678" not in plan.output and "first-value-1234" not in plan.output

    assert run_cli("apply", str(path), "--yes", env=rotated).code == 0
    assert call_tool(url_of(stack, f"{stack}-user", rotated), "get_env", {"name": "API_TOKEN"}) == "second-value-5678"
    after = {
        c["Names"][0]: c["Id"] for c in docker_api.containers(filters={"label": [f"toolhive-apply.stack={stack}"]})
    }
    assert after[f"/{stack}-other"] == ids[f"/{stack}-other"]
    assert after[f"/{stack}-user"] != ids[f"/{stack}-user"]
    assert run_cli("plan", str(path), "--detailed-exitcode", env=rotated).code == 0


def test_a_secret_delivered_as_a_file_is_not_in_the_container_config(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    value = f"file-secret-{uuid.uuid4().hex}"
    (tmp_path / "token.txt").write_text(value + "\n")
    workload = {
        "name": f"{stack}-files",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": "filetoken", "target": "/tmp/token", "as": "file"}],
    }
    path = write_manifest(tmp_path, stack, [workload], secrets=[{"key": "filetoken", "from": {"file": "./token.txt"}}])
    assert run_cli("apply", str(path), "--yes", env=secret_env).code == 0
    inspected = docker_api.inspect_container(f"{stack}-files")
    assert value not in json.dumps(inspected)
    check = docker_api.exec_create(
        f"{stack}-files",
        [
            "python3.11",
            "-c",
            "import os; print(oct(os.stat('/tmp/token').st_mode & 0o777)); print(open('/tmp/token').read())",
        ],
    )
    output = docker_api.exec_start(check["Id"]).decode()
    assert output.split() == ["0o400", value]


def test_a_secret_missing_from_the_store_fails_the_plan_naming_it(
    tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    path = write_manifest(
        tmp_path, stack, [http_with_secret(f"{stack}-w", "elsewhere")], secrets=[{"key": "elsewhere", "present": True}]
    )
    result = run_cli("plan", str(path), env=secret_env)
    assert result.code == 1
    assert "present: true, but 'elsewhere' is not in the encrypted store" in result.stderr


def test_a_missing_password_is_a_clear_error_not_a_prompt(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    env = {k: v for k, v in secret_env.items() if k != "TOOLHIVE_SECRETS_PASSWORD"}
    env["TOKEN_UNDER_TEST"] = "x"
    # An existing store (a new one would get a random password of its own, kept in a key file: #22.11)
    existing = EncryptedStore(default_path(secret_env), secret_env)
    existing.write("other", SecretValue("y"), expected_version=None, stack="someone", digest="d")
    path = write_manifest(
        tmp_path,
        stack,
        [http_with_secret(f"{stack}-w", "t")],
        secrets=[{"key": "t", "from": {"env": "TOKEN_UNDER_TEST"}}],
    )
    result = run_cli("apply", str(path), "--yes", env=env)
    assert result.code == 1
    assert "TOOLHIVE_SECRETS_PASSWORD" in result.output
    assert "no password for" in result.output  # the existing store is read at plan time already
    assert docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}) == []


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_the_canary_never_leaks(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], secret_env: dict[str, str]
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    env = {**secret_env, "CANARY_VALUE": canary}
    secrets = [{"key": "canary", "from": {"env": "CANARY_VALUE"}}]
    good = http_with_secret(f"{stack}-ok", "canary")
    leaky = {  # prints the secret to its log and dies: the log tail shown in the error must be scrubbed
        "name": f"{stack}-leaky",
        "image": HTTP_IMAGE,
        "secrets": [{"name": "canary", "target": "CANARY"}],
        "cmd_arguments": ["python3.11", "-c", "import os, sys; print('token is', os.environ['CANARY']); sys.exit(2)"],
    }
    path = write_manifest(tmp_path / "m", stack, [good, leaky], secrets=secrets)
    saved = tmp_path / "plan.json"
    outputs = [
        run_cli("validate", str(path), env=env),
        run_cli("plan", str(path), env=env),
        run_cli("plan", str(path), "-v", "--explain", env=env),
        run_cli("plan", str(path), "--output", "json", env=env),
        run_cli("plan", str(path), "--out", str(saved), env=env),
        run_cli("apply", str(saved), "--yes", env=env),
        run_cli("apply", str(path), "--yes", env=env),
        run_cli("apply", str(path), "--yes", "--output", "json", env=env),
        run_cli("export", "workloads", "--all", "--stack", stack, env=env),
        run_cli("export", "workload", f"{stack}-ok", env=env),
        run_cli("export", "workload", f"{stack}-ok", "--runconfig", env=env),
        run_cli("export", "--as-manifest", "--stack", stack, env=env),
        run_cli("plan", str(path), env={**env, "DOCKER_HOST": "unix:///nonexistent.sock"}),
    ]
    assert any("token is" in o.output for o in outputs)  # the failure path really showed the log tail
    for result in outputs:
        assert canary not in result.output, result
    for file in [saved, *_files_under(tmp_path / "state", tmp_path / "cache", tmp_path / "data", tmp_path / "home")]:
        assert canary.encode() not in file.read_bytes(), file
    for container in docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}):
        assert canary not in json.dumps(container["Labels"])
