"""Upstream-format registry entries whose `packages` are npm and pypi, each run through `server:` against the real
engine: built offline into npx:// and uvx:// images, each answering the real MCP SDK client through its proxy (#19).

One offline_dir serves both schemes (the wheels at its top, the npm cache in npm-cache/), as settings.packages has
one; it is a copy of the two sources the other package tests fill on the host. Skipped without a host node.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, run_cli, write_manifest
from tests.images.node_image import NODE_TAG, NPM_SERVER, NPM_SERVER_VERSIONS, host_node
from tests.images.package_builders import PIP_BUILDER_TAG, TIME_VERSIONS, ensure_pip_builder, ensure_wheels
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(host_node() is None, reason="the host has no node to make the Node image from"),
]


def _entry(name: str, registry_type: str, identifier: str, version: str) -> dict[str, Any]:
    package = {"registryType": registry_type, "identifier": identifier, "version": version}
    return {
        "name": name,
        "description": name,
        "version": "1.0.0",
        "packages": [{**package, "transport": {"type": "stdio"}}],
    }


def test_npm_and_pypi_registry_entries_run_through_server(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    from tests.images.node_image import ensure_node_image, ensure_npm_offline

    ensure_node_image()
    ensure_pip_builder()
    offline = tmp_path / "offline"
    shutil.copytree(ensure_wheels(), offline)
    shutil.copytree(ensure_npm_offline() / "npm-cache", offline / "npm-cache")
    servers = [
        _entry("io.github.test/think", "npm", NPM_SERVER, NPM_SERVER_VERSIONS[0]),
        _entry("io.github.test/time", "pypi", "mcp-server-time", TIME_VERSIONS[0]),
    ]
    document = {"version": "1.0.0", "meta": {"last_updated": "2026-01-01T00:00:00Z"}, "data": {"servers": servers}}
    (tmp_path / "registry.json").write_text(json.dumps(document), encoding="utf-8")
    settings = {
        "packages": {
            "builder_images": {"npx": NODE_TAG, "uvx": PIP_BUILDER_TAG},
            "runtime_images": {"npx": NODE_TAG, "uvx": PYTHON_IMAGE},
            "offline_dir": str(offline),
        }
    }
    think, time_name = f"{stack}-think", f"{stack}-time"
    workloads = [
        {"name": think, "registry": "up", "server": "think", "ready_timeout": 300},
        {"name": time_name, "registry": "up", "server": "time", "ready_timeout": 300},
    ]
    registries = [{"name": "up", "local_path": str(tmp_path / "registry.json")}]
    path = write_manifest(tmp_path, stack, workloads, settings=settings, registries=registries)

    applied = run_cli("apply", str(path), "--yes", timeout=900)
    assert applied.code == 0, applied
    exported = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)
    urls = {w["name"]: w["url"] for w in exported["workloads"]}
    assert "sequentialthinking" in list_tools(urls[think])
    assert '"timezone": "UTC"' in call_tool(urls[time_name], "get_current_time", {"timezone": "UTC"})
    for name, ref in (
        (think, f"npx://{NPM_SERVER}@{NPM_SERVER_VERSIONS[0]}"),
        (time_name, f"uvx://mcp-server-time@{TIME_VERSIONS[0]}"),
    ):
        image = docker_api.inspect_image(docker_api.inspect_container(name)["Image"])
        assert image["Config"]["Labels"][LABEL_PACKAGE] == ref
    again = run_cli("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again
