"""Restart survival: the workload answers again after its server, its proxy and dockerd itself restart.

ToolHive's proxies are host processes that do not come back after a reboot (its issues #431 and #835); here the
pair is kept alive by Docker's restart policy, with no toolhive-apply process involved. Restarting dockerd is only
done where the test suite started dockerd itself (`.ci/run` sets TOOLHIVE_APPLY_TEST_RESTART_DOCKERD=1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, TIME_IMAGE, run_cli, write_manifest
from tests.support.dockerd import owns_dockerd, start_dockerd, stop_dockerd
from tests.support.mcp_client import call_tool, wait_until_ready

pytestmark = pytest.mark.docker


def _urls(stack: str) -> dict[str, str]:
    listing = json.loads(run_cli("export", "workloads", "--all", "--stack", stack).stdout)["workloads"]
    return {w["name"]: w["url"] for w in listing}


def _answers(stack: str, names: list[str]) -> None:
    urls = _urls(stack)
    for name in names:
        wait_until_ready(urls[name], timeout=60)
    assert '"timezone": "UTC"' in call_tool(urls[names[0]], "get_current_time", {"timezone": "UTC"})
    assert call_tool(urls[names[1]], "add", {"a": 20, "b": 22}) == "42"


def _apply_pair(tmp_path: Path, stack: str) -> tuple[Path, list[str]]:
    names = [f"{stack}-time", f"{stack}-web"]
    workloads = [
        {"name": names[0], "image": TIME_IMAGE},
        {"name": names[1], "image": HTTP_IMAGE, "transport": "streamable-http"},
    ]
    path = write_manifest(tmp_path, stack, workloads)
    assert run_cli("apply", str(path), "--yes").code == 0
    _answers(stack, names)
    return path, names


def test_the_workload_comes_back_after_its_server_and_then_its_proxy_restart(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    path, names = _apply_pair(tmp_path, stack)
    for name in names:  # the MCP servers restart: each proxy re-attaches / reconnects by itself
        docker_api.restart(name, timeout=5)
    _answers(stack, names)
    for name in names:  # the proxies restart
        docker_api.restart(f"{name}-proxy", timeout=5)
    _answers(stack, names)
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0


@owns_dockerd
def test_the_workload_comes_back_after_dockerd_restarts_with_no_apply(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    path, names = _apply_pair(tmp_path, stack)
    stop_dockerd()
    start_dockerd()
    _answers(stack, names)
    plan = run_cli("plan", str(path), "--detailed-exitcode")
    assert plan.code == 0, plan
