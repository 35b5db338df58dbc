"""npx:// against the real engine: a real npm MCP server built offline (from an npm cache filled on the host) on a
Node image made from the host's node, answering the real MCP SDK client through its proxy; a failed build (a package
the cache lacks) fails its workload only and leaves nothing behind; a second apply is a no-op; a version change
replaces exactly that workload.

The builds run with no network (network_mode none, as every offline_dir build): npm reads the cache only.
Skipped, with the reason, when the host has no node to make the image from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIME_IMAGE, run_cli, write_manifest
from tests.images.node_image import NODE_TAG, NPM_SERVER, NPM_SERVER_VERSIONS, host_node
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(host_node() is None, reason="the host has no node to make the Node image from"),
]
NEW, OLD = NPM_SERVER_VERSIONS
ABSENT = "npx://@modelcontextprotocol/server-not-in-the-cache@1.0.0"


def _ids(api: Any, stack: str) -> dict[str, str]:
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    return {c["Names"][0].lstrip("/"): c["Id"] for c in found}


def _package_of(api: Any, container: str) -> str:
    return str(api.inspect_image(api.inspect_container(container)["Image"])["Config"]["Labels"][LABEL_PACKAGE])


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
    name, plain, broken = f"{stack}-think", f"{stack}-plain", f"{stack}-broken"
    workloads: list[dict[str, Any]] = [
        {"name": name, "image": f"npx://{NPM_SERVER}@{NEW}", "ready_timeout": 300},
        {"name": plain, "image": TIME_IMAGE, "ready_timeout": 300},
        {"name": broken, "image": ABSENT},
    ]
    path = write_manifest(tmp_path, stack, workloads, settings=settings)

    # 1. the package the cache lacks fails its workload only, with npm's own words, and leaves nothing behind
    applied = run_cli("apply", str(path), "--yes", timeout=900)
    assert applied.code == 1, applied
    assert "failed=1" in applied.stdout, applied
    assert f"building {ABSENT} failed" in applied.output
    assert "ENOTCACHED" in applied.output.split("last build output:", 1)[1], applied.output
    names = _ids(docker_api, stack)
    assert name in names and plain in names and not [n for n in names if n.startswith(broken)]
    assert not [i for i in docker_api.images(all=True) if "server-not-in-the-cache" in json.dumps(i)]

    # 2. the built server answers the real SDK client through its proxy
    exported = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)
    url = {w["name"]: w["url"] for w in exported["workloads"]}[name]
    assert "sequentialthinking" in list_tools(url)
    answer = call_tool(
        url,
        "sequentialthinking",
        {"thought": "first", "nextThoughtNeeded": False, "thoughtNumber": 1, "totalThoughts": 1},
    )
    assert '"thoughtNumber": 1' in answer, answer
    assert _package_of(docker_api, name) == f"npx://{NPM_SERVER}@{NEW}"
    assert docker_api.inspect_container(name)["Config"]["User"] == "65534:65534"

    # 3. without the broken one, a second plan and apply are no-ops
    del workloads[2]
    write_manifest(tmp_path, stack, workloads, settings=settings)
    again = run_cli("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes." in again.stdout
    before = _ids(docker_api, stack)
    assert run_cli("apply", str(path), "--yes", timeout=900).code == 0
    assert _ids(docker_api, stack) == before

    # 4. a version change replaces exactly that workload, naming the version
    workloads[0]["image"] = f"npx://{NPM_SERVER}@{OLD}"
    write_manifest(tmp_path, stack, workloads, settings=settings)
    plan = run_cli("plan", str(path), "--detailed-exitcode")
    assert plan.code == 2, plan
    assert f'package.version: "{NEW}" -> "{OLD}"' in plan.stdout, plan.stdout
    assert "0 to create, 0 to update, 1 to replace, 0 to delete" in plan.stdout
    assert run_cli("apply", str(path), "--yes", timeout=900).code == 0
    after = _ids(docker_api, stack)
    assert after[plain] == before[plain] and after[f"{plain}-proxy"] == before[f"{plain}-proxy"]
    assert after[name] != before[name]
    assert _package_of(docker_api, name).endswith(f"@{OLD}")
    assert "sequentialthinking" in list_tools(url)
