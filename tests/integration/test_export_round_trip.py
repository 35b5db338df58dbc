"""export --as-manifest against the real engine: the exported manifest validates and plans no changes on the stack
it came from; plans count only what the user declared; a taken host port is found by plan, named, in one line.

`examples/full` is applied from a copy adapted to what can run here, and only that:
* the Vault is a real OpenBao dev server on loopback (AppRole login, as the example says), holding the two
  `present: true` secrets out of band; GITHUB_TOKEN is set and `api-key.txt` written;
* images are the locally built test images (nothing can be pulled): the registry copy's github server and `time`
  are the stdio time server, `files` a tiny stdio server on the Python image, its secret file in /tmp (the image has
  no /run/secrets);
* the remote `docs` server is an HTTP MCP server in a container on the stack's network (never mcp.example.com);
* the stack name is the test's own, and the proxy is built from the local Python image;
* only Cursor is installed in the test's HOME, so vscode and claude-code stay "not installed" warnings.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import HTTP_IMAGE, PYTHON_IMAGE, ROOT, TIME_IMAGE, TINY_MCP, run_cli, write_manifest
from tests.support.openbao import OpenBao, openbao_server
from toolhive_apply.providers.stack_record import record_name

pytestmark = pytest.mark.docker

GITHUB = "io.github.github/github-mcp-server"


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        yield server


def upstream(api: Any, stack: str) -> str:
    """An HTTP MCP server on the stack's network, standing in for a remote server; returns its /mcp URL."""
    network = f"toolhive-apply.{stack}"
    api.create_network(network, driver="bridge", labels={"toolhive-apply.stack": stack})
    created = api.create_container(
        HTTP_IMAGE,
        name=f"{stack}-upstream",
        environment={"MCP_TRANSPORT": "streamable-http", "MCP_PORT": "8080"},
        labels={"toolhive-apply.stack": stack},
        host_config=api.create_host_config(network_mode=network),
    )
    api.start(created["Id"])
    return f"http://{stack}-upstream:8080/mcp"


def adapted_full(tmp_path: Path, stack: str, remote_url: str) -> Path:
    """A copy of examples/full with only what cannot run here replaced (see the module docstring)."""
    copy = tmp_path / "full"
    shutil.copytree(ROOT / "examples" / "full", copy)
    registry = json.loads((copy / "registry.json").read_text())
    package = registry["data"]["servers"][0]["packages"][0]
    extensions = registry["data"]["servers"][0]["_meta"]["io.modelcontextprotocol.registry/publisher-provided"]
    extensions["io.github.stacklok"] = {TIME_IMAGE: extensions["io.github.stacklok"].pop(package["identifier"])}
    package["identifier"] = TIME_IMAGE
    (copy / "registry.json").write_text(json.dumps(registry))
    (copy / "api-key.txt").write_text("api-key-value-0123456789\n")
    data = yaml.safe_load((copy / "stack.yaml").read_text())
    data["settings"]["stack"] = stack
    data["settings"]["proxy"] = {"base_image": PYTHON_IMAGE}
    workloads = {w["name"]: w for w in data["workloads"]}
    workloads["time"]["image"] = TIME_IMAGE
    workloads["files"].update(image=PYTHON_IMAGE, cmd_arguments=TINY_MCP)
    workloads["files"]["secrets"] = [{"name": "api-key", "target": "/tmp/api-key", "as": "file"}]
    workloads["docs"]["url"] = remote_url
    (copy / "stack.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return copy / "stack.yaml"


def exported_copy(tmp_path: Path, stack: str, env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    exported = run_cli("export", "--as-manifest", "--stack", stack, env=env)
    assert exported.code == 0, exported
    copy = tmp_path / "exported" / "stack.yaml"
    copy.parent.mkdir(exist_ok=True)
    copy.write_text(exported.stdout)  # JSON is YAML
    return copy, json.loads(exported.stdout)


def assert_round_trip(tmp_path: Path, stack: str, env: dict[str, str], values: list[str]) -> dict[str, Any]:
    copy, manifest = exported_copy(tmp_path, stack, env)
    for value in values:
        assert value not in copy.read_text()
    validated = run_cli("validate", str(copy), env=env)
    assert validated.code == 0, validated
    planned = run_cli("plan", str(copy), "--detailed-exitcode", env=env)
    assert planned.code == 0, planned
    assert "No changes." in planned.stdout and "Kept" not in planned.output
    return manifest


def test_examples_full_round_trips_through_export(
    docker_api: Any, bao: OpenBao, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    role_id, secret_id = bao.enable_approle(f"ci-{stack}", policies=[bao.writer_policy()])
    client = bao.client()
    for key, value in (("managed-elsewhere", "managed-elsewhere-value-1"), ("docs-token", "docs-token-value-12")):
        client.secrets.kv.v2.create_or_update_secret(f"toolhive/{key}", {"value": value}, mount_point="secret")
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    env = {
        "VAULT_ADDR": bao.address,
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": secret_id,
        "GITHUB_TOKEN": "github-token-value-0123456789",
        "HOME": str(home),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    path = adapted_full(tmp_path, stack, upstream(docker_api, stack))
    assert run_cli("validate", str(path), env=env).code == 0
    applied = run_cli("apply", str(path), "--yes", env=env)
    assert applied.code == 0, applied
    assert run_cli("plan", str(path), "--detailed-exitcode", env=env).code == 0
    values = ["github-token-value", "api-key-value", "managed-elsewhere-value", "docs-token-value", secret_id]
    manifest = assert_round_trip(tmp_path, stack, env, values)
    assert manifest["settings"]["secrets"] == {
        "provider": "vault",
        "vault": {
            "address": bao.address,
            "mount": "secret",
            "path_prefix": "toolhive",
            "auth": {"method": "approle"},
        },
    }
    assert manifest["groups"] == [{"name": "research", "description": "Servers the research team uses"}]
    assert [(s["key"], s.get("description")) for s in manifest["secrets"]] == [
        ("api-key", None),
        ("docs-token", None),
        ("github-token", "GitHub PAT for the github server"),
        ("managed-elsewhere", "An API key someone else keeps in the store"),
    ]
    assert all(s["present"] is True and set(s) <= {"key", "description", "present"} for s in manifest["secrets"])
    assert manifest["clients"] == [{"name": "cursor", "groups": ["default", "research"]}]
    assert sorted(r["name"] for r in manifest["registries"]) == ["company", "default"]
    github = next(w for w in manifest["workloads"] if w["name"] == "github")
    assert (github["registry"], github["server"]) == ("default", GITHUB)


def test_a_stack_of_every_section_round_trips_and_counts_only_what_it_declares(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    remote = upstream(docker_api, stack)
    shutil.copy(ROOT / "examples" / "registry" / "registry.json", tmp_path / "registry.json")
    (tmp_path / "data").mkdir()
    (tmp_path / "token.txt").write_text("file-token-value-0123456789\n")
    cursor = tmp_path / "home" / "cursor" / "mcp.json"
    store = {"provider": "encrypted", "encrypted": {"path": str(tmp_path / "store" / "secrets_encrypted")}}
    env = {
        "TOOLHIVE_SECRETS_PASSWORD": "a-long-enough-test-password",
        "ENV_TOKEN": "env-token-value-0123456789",
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    workloads = [
        {"name": f"{stack}-echo", "registry": "local", "server": "echo", "env_vars": {"GREETING": "hi"}},
        {
            "name": f"{stack}-time",
            "image": TIME_IMAGE,
            "group": "research",
            "description": "Tells the time",
            "secrets": [{"name": "env-token", "target": "ENV_TOKEN"}, {"name": "file-token", "target": "FILE_TOKEN"}],
            "volumes": [f"{tmp_path / 'data'}:/data:ro"],
            "session_ttl": "1h30m",
            "labels": {"team": "research"},
            "prune": False,
        },
        {"name": f"{stack}-docs", "url": remote, "headers": [{"name": "X-Api-Key", "secret": "env-token"}]},
    ]
    path = write_manifest(
        tmp_path,
        stack,
        workloads,
        settings={"stack": stack, "secrets": store},
        groups=[{"name": "research", "description": "The research team"}],
        registries=[{"name": "local", "local_path": "./registry.json"}],
        secrets=[
            {"key": "env-token", "description": "from the environment", "from": {"env": "ENV_TOKEN"}},
            {"key": "file-token", "from": {"file": "./token.txt"}},
        ],
        clients=[{"name": "cursor", "groups": ["default", "research"], "config_path": str(cursor), "create": True}],
    )
    planned = json.loads(run_cli("plan", str(path), "--output", "json", env=env).stdout)
    # two secrets, one registry, three workloads, one client: the digest key and the stack record are not counted
    assert planned["summary"]["create"] == 7
    internal = {c["address"] for c in planned["changes"] if c.get("internal")}
    assert internal == {f"stack/{stack}", f"secret/toolhive-apply.hmac.{stack}"}
    text = run_cli("plan", str(path), env=env).stdout
    assert "Plan: 7 to create," in text and "toolhive-apply.hmac" not in text
    applied = run_cli("apply", str(path), "--yes", env=env)
    assert applied.code == 0, applied
    assert "changed=7 failed=0" in applied.stdout and "toolhive-apply.hmac" not in applied.stdout
    record = docker_api.containers(all=True, filters={"name": [f"^/{record_name(stack)}$"]})
    assert record and "env-token-value" not in json.dumps(record[0]["Labels"])
    assert_round_trip(tmp_path, stack, env, ["env-token-value", "file-token-value", env["TOOLHIVE_SECRETS_PASSWORD"]])

    # a secret leaves the manifest: kept (pruning is opt-in), and the digest key is never listed as kept
    path = write_manifest(
        tmp_path / "fewer",
        stack,
        [workloads[0]],
        settings={"stack": stack, "secrets": store},
        registries=[{"name": "local", "local_path": "../registry.json"}],
        secrets=[{"key": "env-token", "from": {"env": "ENV_TOKEN"}}],
    )
    fewer = run_cli("plan", str(path), env=env)
    assert fewer.code == 0, fewer
    kept = next(line for line in fewer.stdout.splitlines() if line.startswith("Kept although"))
    assert "secret/file-token" in kept and "toolhive-apply.hmac" not in kept


def test_destroy_of_a_stack_that_owns_nothing_says_there_is_nothing_to_destroy(tmp_path: Path, stack: str) -> None:
    path = write_manifest(tmp_path, stack, [{"name": f"{stack}-never", "image": TIME_IMAGE}])
    result = run_cli("destroy", str(path), "--yes")
    assert result.code == 0, result
    assert result.stdout == f"Nothing to destroy: stack '{stack}' owns no resources.\n"


@pytest.fixture
def held_port(docker_api: Any, stack: str, test_images: dict[str, str]) -> Iterator[int]:
    """A loopback port published by a container that is not ours."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    created = docker_api.create_container(
        PYTHON_IMAGE,
        command=["python3.11", "-c", "import time; time.sleep(600)"],
        name=f"{stack}-squatter",
        ports=[9000],
        host_config=docker_api.create_host_config(port_bindings={9000: ("127.0.0.1", port)}),
    )
    docker_api.start(created["Id"])
    try:
        yield port
    finally:
        docker_api.remove_container(created["Id"], force=True)


def test_plan_names_a_container_holding_the_port_at_no_extra_docker_call(
    tmp_path: Path, stack: str, held_port: int
) -> None:
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.operations import Connection, make_plan, open_targets
    from toolhive_apply.providers.workload.host_ports import PortTakenError

    path = write_manifest(tmp_path, stack, [{"name": f"{stack}-web", "image": TIME_IMAGE, "proxy_port": held_port}])
    line, text = next((n, t) for n, t in enumerate(path.read_text().splitlines(), 1) if "proxy_port" in t)
    where = f"{path}:{line}:{text.index('proxy_port') + 1}"  # at the field itself
    result = run_cli("plan", str(path))
    assert result.code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        f"Error: {where}: workloads[0].proxy_port: host port 127.0.0.1:{held_port} is already taken by "
        f"container '{stack}-squatter'\n"
    ), result.stderr
    assert "hint: stop what holds the port, or give the workload another proxy_port" in result.stderr
    targets = open_targets(Connection(stack))
    try:
        targets.docker.reset_calls()
        with pytest.raises(PortTakenError):
            make_plan(load_manifest([path]), targets)
        assert sum(targets.docker.calls.values()) <= 3, targets.docker.calls  # the container list plan already made
    finally:
        targets.docker.close()


def test_plan_names_a_host_process_holding_the_port(tmp_path: Path, stack: str, test_images: dict[str, str]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = int(held.getsockname()[1])
        path = write_manifest(tmp_path, stack, [{"name": f"{stack}-web", "image": TIME_IMAGE, "proxy_port": port}])
        result = run_cli("plan", str(path))
    assert result.code == 1
    assert f"workloads[0].proxy_port: host port 127.0.0.1:{port} is already taken by a process on this host" in (
        result.stderr
    )


def test_a_port_taken_after_the_plan_fails_apply_in_one_line_with_a_hint(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    path = write_manifest(tmp_path, stack, [{"name": f"{stack}-web", "image": TIME_IMAGE, "proxy_port": port}])
    saved = tmp_path / "plan.json"
    assert run_cli("plan", str(path), "--out", str(saved)).code == 0
    with socket.socket() as held:  # the race: something takes the port between plan and apply
        held.bind(("127.0.0.1", port))
        held.listen()
        result = run_cli("apply", str(saved), "--yes")
    assert result.code == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed")]
    assert failed == [
        f"failed   workload/{stack}-web: create failed: host port 127.0.0.1:{port} is already taken by a process on "
        "the Docker host (hint: stop what holds the port, or give the workload another proxy_port; `plan` names "
        "what holds it)"
    ], result.stdout
    assert "driver failed programming" not in result.output


def test_a_stale_saved_plan_is_refused_with_the_error_alone(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    path = write_manifest(tmp_path, stack, [{"name": f"{stack}-web", "image": TIME_IMAGE}])
    saved = tmp_path / "plan.json"
    assert run_cli("plan", str(path), "--out", str(saved)).code == 0
    assert run_cli("apply", str(path), "--yes").code == 0  # the live state moves on
    refused = run_cli("apply", str(saved), "--yes")
    assert refused.code == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"Error: the saved plan for stack '{stack}' is stale"), refused.stderr
