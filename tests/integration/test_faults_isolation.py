"""Crash consistency of an isolated workload: its internal network and egress proxy are never orphaned or doubled.

An isolated unit has more parts than a plain one (server, proxy, egress proxy, internal network), made in a fixed
order and set aside together on replace. The apply is killed after each engine write of a replace that also turns
isolation off and on again (so the network is removed and made anew); after each kill the next apply converges to
exactly the declared parts, and a plan after it is empty. Kills land between requests (see test_faults_crash.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, TINY_MCP
from tests.support.faults import FaultStack, inventory, pending_changes, purge_stack
from toolhive_apply.providers.stack_record import record_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MAX_KILL_POINTS = 30


@pytest.fixture
def stack(stack: str, docker_api: Any) -> Iterator[str]:
    yield stack
    purge_stack(docker_api, stack)


def _manifest(fault: FaultStack, generation: int) -> Path:
    isolated = generation % 3 != 2  # every third round without isolation: the network goes, then comes back
    workload: dict[str, Any] = {
        "name": f"{fault.stack}-iso",
        "image": PYTHON_IMAGE,
        "cmd_arguments": TINY_MCP,
        "env_vars": {"GEN": str(generation)},
        "secrets": [{"name": "canary", "target": "CANARY"}],
        "network_isolation": isolated,
        "permission_profile": {"network": {"outbound": {"allow_host": ["allowed.example"], "allow_port": [443]}}},
    }
    return fault.write([workload], clients=[])


def _expected(stack: str, generation: int) -> tuple[list[str], list[str]]:
    name = f"{stack}-iso"
    record = record_name(stack)  # the stack declares a secret
    if generation % 3 == 2:
        return sorted([name, f"{name}-gate", f"{name}-proxy", record]), [f"toolhive-apply.{stack}"]
    networks = sorted([f"toolhive-apply.{stack}", f"toolhive-apply.{stack}.{name}.internal"])
    return sorted([name, f"{name}-egress", f"{name}-gate", f"{name}-proxy", record]), networks  # stdio: + its gate


def test_an_isolated_apply_killed_after_each_docker_write_converges_without_orphans(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    fault = FaultStack(tmp_path, stack)
    assert fault.run("apply", str(_manifest(fault, 0)), "--yes").code == 0
    killed = 0
    for point in range(1, MAX_KILL_POINTS + 1):
        path = _manifest(fault, point)
        victim = fault.start(["apply", str(path), "--yes", "--parallelism", "1"], fault_after=point)
        code = fault.finished(victim)
        if code != 0:
            assert code == -signal.SIGKILL, victim.output
            killed += 1
        healed = fault.run("apply", str(path), "--yes", "--lock-timeout", "5")
        assert healed.code == 0, (point, healed)
        containers, networks = _expected(stack, point)
        found = inventory(docker_api, stack)
        assert found.names == containers, (point, found.containers)
        assert all(state == "running" for state in found.units.values()), (point, found.containers)
        assert found.networks == networks, (point, found.networks)
        assert pending_changes(path, fault.env) == [], point
        if code == 0:
            break  # fewer writes than the kill point: every point of the run was covered
    assert killed >= 10, killed
    fault.assert_no_canary(docker_api)
