"""npx:// against the real engine: a real npm MCP server built offline (from an npm cache filled on the host) on a
Node image made from the host's node, answering the real MCP SDK client through its proxy; a second apply is a no-op.

The build runs with no network (network_mode none, as every offline_dir build): npm reads the cache only.
Skipped, with the reason, when the host has no node to make the image from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_manifest
from tests.images.node_image import NODE_TAG, NPM_SERVER, NPM_SERVER_VERSION, host_node
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(host_node() is None, reason="the host has no node to make the Node image from"),
]


def test_npx_workload_builds_offline_answers_mcp_and_converges(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    from tests.images.node_image import ensure_node_image, ensure_npm_offline

    ensure_node_image()
    settings = {
        "packages": {
            "builder_images": {"npx": NODE_TAG},
            "runtime_images": {"npx": NODE_TAG},
            "offline_dir": str(ensure_npm_offline()),
        }
    }
    name = f"{stack}-think"
    ref = f"npx://{NPM_SERVER}@{NPM_SERVER_VERSION}"
    path = write_manifest(tmp_path, stack, [{"name": name, "image": ref, "ready_timeout": 300}], settings=settings)

    applied = run_cli("apply", str(path), "--yes", timeout=900)
    assert applied.code == 0, applied

    exported = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)
    url = {w["name"]: w["url"] for w in exported["workloads"]}[name]
    assert "sequentialthinking" in list_tools(url)
    answer = call_tool(
        url,
        "sequentialthinking",
        {"thought": "first", "nextThoughtNeeded": False, "thoughtNumber": 1, "totalThoughts": 1},
    )
    assert '"thoughtNumber": 1' in answer, answer
    server = docker_api.inspect_container(name)
    assert docker_api.inspect_image(server["Image"])["Config"]["Labels"][LABEL_PACKAGE] == ref
    assert server["Config"]["User"] == "65534:65534"

    again = run_cli("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes." in again.stdout
    before = server["Id"]
    assert run_cli("apply", str(path), "--yes", timeout=900).code == 0
    assert docker_api.inspect_container(name)["Id"] == before
