"""Crash consistency: an apply killed with SIGKILL at any point leaves nothing a fresh apply cannot finish.

The fault hook in docker_client.py (TOOLHIVE_APPLY_FAULT_KILL_AFTER_CALLS) kills the apply right after the engine
answered its Nth write: once after each write in turn (a replace, a create and a delete of workloads, and a client
file update), then at seeded random writes while three workloads are replaced. After every kill the next apply must
converge (the dead run's lock is recognised as stale, a pair set aside by an interrupted replace is cleaned up),
leave no orphaned or duplicated container, network or client entry, and a plan after it must be empty. The stack
carries a secret canary, a registry record and a client file with a hand-written entry; at the end every crash
log, state file, backup and label is searched for the canary.

Kills land between engine requests, never in the middle of one (the runs use --parallelism 1): killed mid-request,
dockerd 20.10 sometimes keeps a phantom endpoint on the stack's network, which then cannot be removed until dockerd
restarts ("has active endpoints" with no container attached), so a test doing that leaks a network per failure.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, ROOT, TINY_MCP
from tests.support.faults import FaultStack, inventory, mcp_servers, pending_changes, purge_stack
from toolhive_apply.providers.stack_record import record_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RANDOM_ROUNDS = 6  # with the 14 or so kills of the first test: over 20 killed runs
WRITES_TO_REPLACE_THREE = 32  # the lock, ten writes per replaced workload, the lock's release
MIN_KILL_POINTS = 12  # a replace, a create and a delete of workloads: well over a dozen engine writes
MAX_KILL_POINTS = 40


@pytest.fixture
def stack(stack: str, docker_api: Any) -> Iterator[str]:
    """The conftest's stack, purged with retries before its own teardown runs (see purge_stack)."""
    yield stack
    purge_stack(docker_api, stack)


@dataclass
class CrashStack(FaultStack):
    """A stack with the secret canary, a registry record, workloads and a Cursor file with a hand-written entry."""

    def __post_init__(self) -> None:
        super().__post_init__()
        shutil.copy(ROOT / "examples" / "registry" / "registry.json", self.manifest_dir / "registry.json")

    def names(self, generation: int, parallel: bool) -> list[str]:
        if parallel:
            return [f"{self.stack}-{i}" for i in range(3)]
        # one workload replaced every round, another created and deleted in turn (so the client file changes too)
        return [f"{self.stack}-a"] + ([f"{self.stack}-b"] if generation % 2 == 0 else [])

    def manifest(self, generation: int, parallel: bool = False) -> Path:
        workloads = [
            {
                "name": name,
                "image": PYTHON_IMAGE,
                "cmd_arguments": TINY_MCP,
                "env_vars": {"GEN": str(generation)},
                "secrets": [{"name": "canary", "target": "CANARY"}],
            }
            for name in self.names(generation, parallel)
        ]
        return self.write(workloads, registries=[{"name": "cat", "local_path": "./registry.json"}])

    def heal_and_check(self, api: Any, generation: int, parallel: bool, context: str) -> None:
        """The fresh apply converges, the stack owns exactly what it declares, and the next plan is empty."""
        path = self.manifest(generation, parallel)
        healed = self.run("apply", str(path), "--yes", "--lock-timeout", "5")
        assert healed.code == 0, (context, healed)
        names = self.names(generation, parallel)
        found = inventory(api, self.stack)
        helpers = [f"{n}-{helper}" for n in names for helper in ("proxy", "gate")]  # stdio units have a docker gate
        records = [f"toolhive-apply-registry.{self.stack}.cat", record_name(self.stack)]
        expected = sorted([*names, *helpers, *records])
        assert found.names == expected, context  # nothing orphaned (no "-replaced-" pair), nothing twice
        assert all(found.containers[n] == "running" for n in names), (context, found.containers)
        assert found.networks == [f"toolhive-apply.{self.stack}"], (context, found.networks)
        assert not found.locked, context
        assert sorted(mcp_servers(self.cursor)) == sorted([*names, "hand-written"]), context
        state = json.loads((self.root / "state" / "toolhive-apply" / "clients" / f"{self.stack}.json").read_text())
        assert state["clients"]["cursor"]["entries"] == sorted(names), context
        assert pending_changes(path, self.env) == [], context


def test_an_apply_killed_right_after_each_docker_call_converges_on_the_next_apply(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    crash = CrashStack(tmp_path, stack)
    assert crash.run("apply", str(crash.manifest(0)), "--yes").code == 0
    killed = 0
    for point in range(1, MAX_KILL_POINTS + 1):
        generation = point  # every round replaces `a`; odd rounds delete `b`, even ones create it again
        victim = crash.start(
            ["apply", str(crash.manifest(generation)), "--yes", "--parallelism", "1"], fault_after=point
        )
        code = crash.finished(victim)
        if code != 0:
            assert code == -signal.SIGKILL, victim.output
            killed += 1
        crash.heal_and_check(docker_api, generation, False, f"killed after engine write #{point}")
        if code == 0:
            break  # the run made fewer engine writes than the kill point: every point of the run was covered
    assert killed >= MIN_KILL_POINTS, killed
    assert crash.run("plan", str(crash.manifest(point)), "--detailed-exitcode").code == 0
    crash.assert_no_canary(docker_api)


def test_applies_killed_at_random_engine_calls_while_replacing_several_workloads_converge(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    rng = random.Random(20261129)
    crash = CrashStack(tmp_path, stack)
    assert crash.run("apply", str(crash.manifest(0, parallel=True)), "--yes").code == 0
    for generation in range(1, RANDOM_ROUNDS + 1):
        point = rng.randint(1, WRITES_TO_REPLACE_THREE)
        path = crash.manifest(generation, parallel=True)
        victim = crash.start(["apply", str(path), "--yes", "--parallelism", "1"], fault_after=point)
        assert crash.finished(victim) == -signal.SIGKILL, victim.output  # every point is within the run
        crash.heal_and_check(docker_api, generation, True, f"round {generation}, killed after engine write #{point}")
    assert crash.run("plan", str(crash.manifest(RANDOM_ROUNDS, parallel=True)), "--detailed-exitcode").code == 0
    crash.assert_no_canary(docker_api)


def test_a_set_aside_proxy_still_running_does_not_block_the_next_apply(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    """The exact state an apply killed right after renaming the proxy aside leaves (kill point #4 above)."""
    crash = CrashStack(tmp_path, stack)
    assert crash.run("apply", str(crash.manifest(1)), "--yes").code == 0
    name = f"{stack}-a"
    docker_api.rename(name, f"{name}-replaced-0badc0")
    docker_api.stop(f"{name}-replaced-0badc0", timeout=10)
    docker_api.rename(f"{name}-proxy", f"{name}-proxy-replaced-0badc0")  # and the run dies before stopping it
    healed = crash.run("apply", str(crash.manifest(3)), "--yes")
    assert healed.code == 0, healed
