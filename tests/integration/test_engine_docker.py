"""Engine properties against the real engine: constant observation cost, parallel apply, the stack lock."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, TINY_MCP, run_cli, write_manifest
from toolhive_apply.engine.executor import OutcomeStatus
from toolhive_apply.engine.provider import Event
from toolhive_apply.manifest import load_manifest
from toolhive_apply.operations import Connection, apply_plan, make_plan, open_targets
from toolhive_apply.providers.docker.lock import StackLock

pytestmark = pytest.mark.docker

IDLE = TINY_MCP  # a real (if tiny) stdio MCP server: apply waits until it answers through its proxy


def idle_workloads(stack: str, count: int) -> list[dict[str, Any]]:
    return [{"name": f"{stack}-{i:03d}", "image": PYTHON_IMAGE, "cmd_arguments": IDLE} for i in range(count)]


def quiet(_: Event) -> None:
    return None


def test_observing_a_stack_costs_the_same_few_calls_for_10_and_100_workloads(
    tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    counts = {}
    for count in (10, 100):
        path = write_manifest(tmp_path / str(count), stack, idle_workloads(stack, count))
        manifest = load_manifest([path])
        targets = open_targets(Connection(stack, parallelism=8))
        first = make_plan(manifest, targets)
        result = apply_plan(first, targets, quiet, parallelism=8, manifest=manifest)
        failed = [(str(o.id), o.note) for o in result.recap.outcomes if o.status is not OutcomeStatus.CHANGED]
        assert result.ok, (failed, result.unconverged)
        targets.docker.reset_calls()
        again = make_plan(manifest, targets)
        assert again.changes == ()
        assert len(again.in_sync) == count
        counts[count] = dict(targets.docker.calls)
    # one list of the engine's containers (the stack's own and conflicts by name), one of the stack's networks
    # (isolated workloads' own), one list of images: nothing per workload
    assert counts[10] == counts[100]
    assert sum(counts[100].values()) <= 3, counts[100]
    assert set(counts[100]) <= {"GET /containers/json", "GET /images/json", "GET /networks"}


def test_a_second_apply_on_a_locked_stack_fails_naming_the_holder(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    path = write_manifest(tmp_path, stack, idle_workloads(stack, 1))
    targets = open_targets(Connection(stack))
    with StackLock(targets.docker, stack, targets.endpoint, "apply (test holder)"):
        result = run_cli("apply", str(path), "--yes", "--lock-timeout", "1")
        assert result.code == 1
        assert f"stack '{stack}' is locked by" in result.stderr and "apply (test holder)" in result.stderr
        assert f"toolhive-apply unlock --stack {stack}" in result.stderr
    assert run_cli("apply", str(path), "--yes").code == 0


def test_a_stale_lock_can_be_broken(docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]) -> None:
    targets = open_targets(Connection(stack))
    lock = StackLock(targets.docker, stack, targets.endpoint, "apply")
    lock.__enter__()  # a run that died without releasing
    unlocked = run_cli("unlock", "--stack", stack)
    assert unlocked.code == 0 and "Removed the lock held by" in unlocked.stdout
    path = write_manifest(tmp_path, stack, idle_workloads(stack, 1))
    assert run_cli("apply", str(path), "--yes", "--lock-timeout", "1").code == 0


def test_two_applies_of_one_stack_do_not_interleave(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    path = write_manifest(tmp_path, stack, idle_workloads(stack, 3))
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(run_cli("apply", str(path), "--yes", "--lock-timeout", "0")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.code for r in results)
    # one wins; the other either lost the race for the lock or found its plan stale once it got it
    assert codes[0] == 0
    if codes[1] != 0:
        loser = next(r for r in results if r.code != 0)
        assert "is locked by" in loser.stderr or "stale" in loser.stderr
    names = [
        c["Names"][0] for c in docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    ]
    assert len(names) == 9  # three stdio servers, their proxies and gates: no duplicates, no leftovers
