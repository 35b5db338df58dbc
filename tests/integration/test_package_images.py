"""uvx:// workloads against the real engine: built offline from host-downloaded wheels, answering the real MCP SDK
client through their proxy; a no-op second plan; a version change replacing exactly that workload; a failed build
failing one workload, clearly, and leaving nothing behind; unpinned, the plan names the version it resolves to.

One test, one stack: each build costs a minute on a loaded machine, so every check rides on the same two builds.
Builds run with no network at all (network_mode none, as an offline_dir build always does): the wheels come from
the offline directory only, which is the point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, TIME_IMAGE, run_cli, write_manifest
from tests.images.package_builders import PIP_BUILDER_TAG, TIME_VERSIONS, ensure_pip_builder, ensure_wheels
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE

pytestmark = pytest.mark.docker

NEW, OLD = TIME_VERSIONS
SLOW = {"ready_timeout": 300}
"""Readiness bound: the shared CI machine has been seen at load 900, where a proxy takes minutes to start."""


def _image_commands(api: Any) -> str:
    """Every local image's recorded build instruction and labels, as one text to search."""
    text = []
    for image in api.images(all=True):
        found = api.inspect_image(image["Id"])
        config = found.get("ContainerConfig") or {}
        text.append(json.dumps([config.get("Cmd"), (found.get("Config") or {}).get("Labels"), image.get("RepoTags")]))
    return "\n".join(text)


def _ids(api: Any, stack: str) -> dict[str, str]:
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    return {c["Names"][0].lstrip("/"): c["Id"] for c in found}


def test_uvx_workloads_build_offline_answer_mcp_and_converge(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    ensure_pip_builder()
    wheels = ensure_wheels()
    settings = {
        "packages": {
            "builder_images": {"uvx": PIP_BUILDER_TAG},
            "runtime_images": {"uvx": PYTHON_IMAGE},
            "offline_dir": str(wheels),
        }
    }
    time_name, plain, broken = f"{stack}-time", f"{stack}-plain", f"{stack}-broken"
    workloads: list[dict[str, Any]] = [
        {"name": time_name, "image": f"uvx://mcp-server-time@{NEW}", "env_vars": {"TZ": "UTC"}, **SLOW},
        {"name": plain, "image": TIME_IMAGE, **SLOW},
        {"name": broken, "image": "uvx://mcp-server-not-in-offline-dir@1.0.0"},
    ]
    path = write_manifest(tmp_path, stack, workloads, settings=settings)

    # 1. the failed build fails its workload only, with pip's own last lines, and leaves nothing behind
    applied = run_cli("apply", str(path), "--yes", timeout=900)
    assert applied.code == 1, applied
    assert "failed=1" in applied.stdout, applied
    assert f"workload/{broken}" in applied.output
    assert "building uvx://mcp-server-not-in-offline-dir@1.0.0 failed" in applied.output
    assert "mcp-server-not-in-offline-dir" in applied.output.split("last build output:", 1)[1]
    names = _ids(docker_api, stack)
    assert time_name in names and plain in names
    assert not [n for n in names if n.startswith(broken)]
    assert "mcp-server-not-in-offline-dir" not in _image_commands(docker_api)

    # 2. the built server answers the real SDK client through its proxy; the image is what the spec says
    exported = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)
    url = {w["name"]: w["url"] for w in exported["workloads"]}[time_name]
    assert {"get_current_time", "convert_time"} <= set(list_tools(url))
    assert '"timezone": "UTC"' in call_tool(url, "get_current_time", {"timezone": "UTC"})
    server = docker_api.inspect_container(time_name)
    image = docker_api.inspect_image(server["Image"])
    assert image["Config"]["Labels"][LABEL_PACKAGE] == f"uvx://mcp-server-time@{NEW}"
    assert server["Config"]["User"] == "65534:65534"

    # 3. without the broken one, a second plan is a no-op (the image is reused, not rebuilt)
    del workloads[2]
    write_manifest(tmp_path, stack, workloads, settings=settings)
    again = run_cli("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes." in again.stdout

    # 4. a version change is a planned replace of exactly that workload, naming the version
    before = _ids(docker_api, stack)
    workloads[0]["image"] = f"uvx://mcp-server-time@{OLD}"
    write_manifest(tmp_path, stack, workloads, settings=settings)
    plan = run_cli("plan", str(path), "--detailed-exitcode")
    assert plan.code == 2, plan
    assert f"workload/{time_name} must be replaced" in plan.stdout
    assert f'package.version: "{NEW}" -> "{OLD}"' in plan.stdout, plan.stdout
    assert "0 to create, 0 to update, 1 to replace, 0 to delete" in plan.stdout
    replaced = run_cli("apply", str(path), "--yes", timeout=900)
    assert replaced.code == 0, replaced
    after = _ids(docker_api, stack)
    assert after[plain] == before[plain] and after[f"{plain}-proxy"] == before[f"{plain}-proxy"]
    assert after[time_name] != before[time_name]
    server = docker_api.inspect_container(time_name)
    assert docker_api.inspect_image(server["Image"])["Config"]["Labels"][LABEL_PACKAGE].endswith(f"@{OLD}")
    assert {"get_current_time"} <= set(list_tools(url))
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0

    # 5. unpinned, the plan names the version the offline directory resolves to (the build would install it)
    workloads[0]["image"] = "uvx://mcp-server-time"
    write_manifest(tmp_path, stack, workloads, settings=settings)
    unpinned = run_cli("plan", str(path), "--detailed-exitcode")
    assert unpinned.code == 2, unpinned
    assert f'+ package.resolved: "{NEW}"' in unpinned.stdout, unpinned.stdout
    assert "is not pinned to a version" in unpinned.output
