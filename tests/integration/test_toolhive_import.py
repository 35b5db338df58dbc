"""import toolhive: a ToolHive state tree (RunConfigs, groups, config.yaml, in the facts file's shapes) and containers
labelled as ToolHive labels them -> a manifest directory that validates, whose plan names every ToolHive container
as a conflict and, once they are gone, creates exactly what ToolHive ran; the import also renders for Kubernetes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import HTTP_IMAGE, ROOT, TIME_IMAGE, run_cli
from toolhive_apply.interop.crd_validate import validate_core, validate_document

REGISTRY = ROOT / "examples" / "registry" / "registry.json"


def _runconfigs(stack: str) -> list[dict[str, Any]]:
    """Three RunConfigs as `thv run` writes them (pkg/runner/config.go field names), one of each kind."""
    return [
        {
            "schema_version": "v0.1.0", "image": TIME_IMAGE, "name": f"{stack}-time", "container_name": f"{stack}-time",
            "base_name": f"{stack}-time", "transport": "stdio", "host": "127.0.0.1", "port": 43117,
            "target_host": "127.0.0.1", "cmd_args": ["--local-timezone=UTC"],
            "permission_profile": {"network": {"outbound": {"allow_host": [".github.com"], "allow_port": [443]}}},
            "env_vars": {"MCP_TRANSPORT": "stdio", "LOCAL_TIMEZONE": "UTC"},
            "container_labels": {"toolhive": "true", "toolhive-name": f"{stack}-time", "team": "research"},
            "secrets": ["github_token,target=GITHUB_PERSONAL_ACCESS_TOKEN", "__thv_workloads_x,target=oauth_secret"],
            "isolate_network": True, "proxy_mode": "streamable-http", "group": "research",
            "tools_filter": ["issue", "get_current_time"],
            "tools_override": {"convert_time": {"name": "issue", "description": "Renamed"}},
            "oidc_config": {"issuer": "https://issuer.example.com", "audience": "x"},
            "middleware_configs": [{"type": "mcp-parser", "parameters": {}}],
        },
        {
            "schema_version": "v0.1.0", "image": HTTP_IMAGE, "name": f"{stack}-echo", "base_name": f"{stack}-echo",
            "transport": "streamable-http", "host": "127.0.0.1", "port": 43118, "target_port": 8080,
            "permission_profile_name_or_path": "none",
            "permission_profile": {"name": "none", "network": {"outbound": {}, "inbound": {}}},
            "env_vars": {"MCP_TRANSPORT": "streamable-http", "MCP_PORT": "8080", "FASTMCP_PORT": "8080",
                         "GREETING": "hi"},
            "proxy_mode": "streamable-http", "group": "default",
        },
        {
            "schema_version": "v0.1.0", "image": "", "remote_url": "https://mcp.example.com/mcp",
            "name": f"{stack}-docs", "base_name": f"{stack}-docs", "transport": "streamable-http",
            "host": "127.0.0.1", "port": 43119, "group": "default",
            "header_forward": {"add_plaintext_headers": {"X-Tenant": "research"},
                               "add_headers_from_secret": {"X-Api-Key": "docs_key"}},
        },
    ]  # fmt: skip


def _state_tree(home: Path, stack: str) -> None:
    runconfigs = home / ".local/state/toolhive/runconfigs"
    groups = home / ".local/state/toolhive/groups"
    for directory in (runconfigs, groups, home / ".config/toolhive"):
        directory.mkdir(parents=True)
    for config in _runconfigs(stack):
        (runconfigs / f"{config['base_name']}.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (groups / "default.json").write_text(json.dumps({"name": "default", "registered_clients": ["vscode"]}))
    (groups / "research.json").write_text(json.dumps({"name": "research", "registered_clients": ["cursor"]}))
    config = {
        "secrets": {"provider_type": "environment", "setup_completed": True},
        "clients": {"registered_clients": ["claude-code"]},
        "local_registry_path": str(REGISTRY),
    }
    (home / ".config/toolhive/config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.fixture
def toolhive_containers(docker_api: Any, stack: str, test_images: dict[str, str]) -> Iterator[list[str]]:
    """The containers `thv run` leaves (created, labelled as pkg/labels does), and one egress helper."""
    made = []
    specs = [
        (f"{stack}-time", TIME_IMAGE, {"toolhive-transport": "stdio", "toolhive-port": "43117",
                                        "toolhive-network-isolation": "true"}),
        (f"{stack}-echo", HTTP_IMAGE, {"toolhive-transport": "streamable-http", "toolhive-port": "43118",
                                        "toolhive-network-isolation": "false"}),
        (f"{stack}-time-egress", TIME_IMAGE, {"toolhive-transport": "stdio", "toolhive-port": "80",
                                               "toolhive-auxiliary-workload": "true"}),
    ]  # fmt: skip
    try:
        for name, image, extra in specs:
            labels = {"toolhive": "true", "toolhive-name": name, "toolhive-basename": name, **extra}
            made.append(docker_api.create_container(image, name=name, labels=labels)["Id"])
        yield [name for name, _, _ in specs]
    finally:
        for container in docker_api.containers(all=True, filters={"id": made}):
            docker_api.remove_container(container["Id"], force=True)


def test_import_validate_plan_and_render_of_a_toolhive_setup(
    tmp_path: Path, stack: str, docker_api: Any, toolhive_containers: list[str]
) -> None:
    home, out = tmp_path / "home", tmp_path / "imported"
    _state_tree(home, stack)
    before = sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))
    result = run_cli("import", "toolhive", "--home", str(home), "--out", str(out), "--stack", stack)
    assert result.code == 0, result
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == before  # it changed nothing
    text = (out / "stack.yaml").read_text(encoding="utf-8")
    manifest = yaml.safe_load(text)
    assert manifest["settings"] == {"stack": stack, "secrets": {"provider": "environment"}}
    assert manifest["groups"] == [{"name": "research"}]
    assert manifest["registries"] == [{"name": "default", "local_path": str(REGISTRY)}]
    assert manifest["secrets"] == [{"key": "docs_key", "present": True}, {"key": "github_token", "present": True}]
    assert manifest["clients"] == [
        {"name": "claude-code", "groups": ["default"]},
        {"name": "cursor", "groups": ["research"]},
        {"name": "vscode", "groups": ["default"]},
    ]
    docs, echo, time = manifest["workloads"]  # RunConfig files in name order
    assert time == {
        "name": f"{stack}-time", "image": TIME_IMAGE, "transport": "stdio", "proxy_mode": "streamable-http",
        "proxy_port": 43117, "cmd_arguments": ["--local-timezone=UTC"], "env_vars": {"LOCAL_TIMEZONE": "UTC"},
        "secrets": [{"name": "github_token", "target": "GITHUB_PERSONAL_ACCESS_TOKEN"}],
        "permission_profile": {"network": {"outbound": {"allow_host": [".github.com"], "allow_port": [443]}}},
        "group": "research", "tools": ["issue", "get_current_time"],
        "tools_override": {"convert_time": {"name": "issue", "description": "Renamed"}},
        "labels": {"team": "research"}, "network_isolation": True,
    }  # fmt: skip
    assert echo == {
        "name": f"{stack}-echo", "image": HTTP_IMAGE, "transport": "streamable-http", "proxy_port": 43118,
        "target_port": 8080, "env_vars": {"GREETING": "hi"}, "permission_profile": "none", "network_isolation": False,
    }  # fmt: skip
    assert docs == {
        "name": f"{stack}-docs", "url": "https://mcp.example.com/mcp", "transport": "streamable-http",
        "proxy_port": 43119,
        "headers": [{"name": "X-Tenant", "value": "research"}, {"name": "X-Api-Key", "secret": "docs_key"}],
    }  # fmt: skip
    for note in (f"workload/{stack}-time: oidc_config", "__thv_workloads_x"):
        assert note in result.stderr and note in text

    assert run_cli("validate", str(out)).code == 0

    env = {"HOME": str(home), "TOOLHIVE_SECRET_github_token": "gh-value", "TOOLHIVE_SECRET_docs_key": "docs-value"}
    conflicted = run_cli("plan", str(out), env=env)
    assert conflicted.code == 1, conflicted
    for name in toolhive_containers[:2]:
        assert f"workload/{name}: container '{name}' already exists and is owned by nobody we know" in conflicted.stderr
    assert f"workload/{stack}-docs" not in conflicted.stderr  # a remote workload has no container

    for name in toolhive_containers:  # what `thv rm` does: the server and its helpers (the egress name is ours too)
        docker_api.remove_container(name, force=True)
    planned = run_cli("plan", str(out), "--output", "json", env=env)
    assert planned.code == 0, planned
    changes = {c["address"]: c for c in json.loads(planned.stdout)["changes"]}
    spec = changes[f"workload/{stack}-time"]["desired"]["spec"]
    assert changes[f"workload/{stack}-time"]["action"] == "create"
    assert (spec["image"], spec["transport"], spec["proxy_port"], spec["group"]) == (
        TIME_IMAGE,
        "stdio",
        43117,
        "research",
    )
    assert spec["network_isolation"] is True and spec["tools"] == ["issue", "get_current_time"]
    assert spec["secrets"] == [{"name": "github_token", "target": "GITHUB_PERSONAL_ACCESS_TOKEN", "as": "env"}]
    echo_spec = changes[f"workload/{stack}-echo"]["desired"]["spec"]
    assert (echo_spec["target_port"], echo_spec["env_vars"]) == (8080, {"GREETING": "hi"})
    assert changes[f"workload/{stack}-docs"]["desired"]["spec"]["url"] == "https://mcp.example.com/mcp"
    assert "gh-value" not in planned.output and "docs-value" not in planned.output

    rendered = tmp_path / "k8s"
    assert run_cli("render", "kubernetes", str(out), "--out", str(rendered)).code == 0
    documents = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in rendered.glob("*.yaml")}
    documents.pop("kustomization.yaml")
    for name, document in documents.items():
        check = validate_core if document["kind"] == "ConfigMap" else validate_document
        assert check(document, name) == []
    server = documents[f"mcpserver-{stack}-time.yaml"]["spec"]
    assert server["secrets"] == [
        {"name": "github-token", "key": "value", "targetEnvName": "GITHUB_PERSONAL_ACCESS_TOKEN"}
    ]
    assert server["toolConfigRef"] == {"name": f"{stack}-time-tools"} and server["groupRef"] == {"name": "research"}
    assert documents[f"mcpremoteproxy-{stack}-docs.yaml"]["spec"]["headerForward"]["addPlaintextHeaders"] == {
        "X-Tenant": "research"
    }
