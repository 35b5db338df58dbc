"""Concurrency: two applies of one stack never interleave; applies of two stacks run side by side.

The Docker fault hook (docker_client.py) stops an apply with SIGSTOP right after its first engine write, which is
taking the stack's lock, so the overlap is certain rather than a matter of timing: while one apply holds the lock,
the other fails at once naming the holder and changes nothing; two stacks hold their own locks at the same time and
both finish, writing their entries into one shared client file without losing either's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, write_manifest
from tests.support.faults import FaultStack, assert_no_canary, inventory, mcp_servers, purge_stack
from toolhive_apply.providers.docker.marker_image import ensure_marker_image
from toolhive_apply.providers.stack_record import record_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

AFTER_LOCK_TAKEN = 1  # the lock is the first thing an apply writes to the engine (its image exists already)


@pytest.fixture
def stack(stack: str, docker_api: Any) -> Iterator[str]:
    """The conftest's stack, purged with retries before its own teardown runs (see purge_stack)."""
    yield stack
    purge_stack(docker_api, stack)


def workloads(stack: str, secret: str = "canary") -> list[dict[str, Any]]:
    return [
        {
            "name": f"{stack}-{i}",
            "image": HTTP_IMAGE,
            "transport": "streamable-http",
            "secrets": [{"name": secret, "target": "API_TOKEN"}],
        }
        for i in range(2)
    ]


def names(stack: str) -> list[str]:
    return [w["name"] for w in workloads(stack)]


def containers(stack: str) -> list[str]:
    """The servers, their proxies and the stack record (the stack declares a secret)."""
    return sorted([*names(stack), *(f"{n}-proxy" for n in names(stack)), record_name(stack)])


@pytest.fixture
def other_stack(docker_api: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    purge_stack(docker_api, name)


def test_an_apply_of_a_locked_stack_fails_naming_the_holder_and_changes_nothing(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    ensure_marker_image(docker_api)  # so the holder's first engine write is the lock itself
    fs = FaultStack(tmp_path, stack)
    path = fs.write(workloads(stack))
    cursor_before = fs.cursor.read_bytes()
    holder = fs.start(["apply", str(path), "--yes"], fault_after=AFTER_LOCK_TAKEN, fault_signal="SIGSTOP")
    try:
        holder.wait_stopped()
        assert inventory(docker_api, stack).locked
        second = fs.run("apply", str(path), "--yes", "--lock-timeout", "1")
        assert second.code == 1, second
        assert f"stack '{stack}' is locked by" in second.stderr, second
        assert f"pid {holder.process.pid} (apply)" in second.stderr, second
        assert f"toolhive-apply unlock --stack {stack}" in second.stderr
        assert "Traceback" not in second.output
        # nothing interleaved: the loser changed nothing, and the holder has done nothing but lock
        found = inventory(docker_api, stack)
        assert found.names == [] and found.networks == [] and found.locked, found
        assert fs.cursor.read_bytes() == cursor_before
    finally:
        holder.resume()
        code = fs.finished(holder)
    assert code == 0, holder.output
    found = inventory(docker_api, stack)
    assert found.names == containers(stack) and not found.locked, found
    assert sorted(mcp_servers(fs.cursor)) == sorted([*names(stack), "hand-written"])
    again = fs.run("apply", str(path), "--yes")
    assert again.code == 0 and "No changes" in again.stdout, again
    fs.assert_no_canary(docker_api)


def test_applies_of_two_stacks_at_once_both_succeed_and_share_a_client_file(
    docker_api: Any, tmp_path: Path, stack: str, other_stack: str, test_images: dict[str, str]
) -> None:
    ensure_marker_image(docker_api)
    fs = FaultStack(tmp_path, stack)  # one user: one HOME, one state directory, one Cursor file, two stacks
    client = [{"name": "cursor", "config_path": str(fs.cursor), "create": True}]
    secrets = [{"key": "other-canary", "from": {"env": "CANARY_VALUE"}}]  # secret keys are per store, not per stack
    paths = {
        stack: fs.write(workloads(stack)),
        other_stack: write_manifest(
            tmp_path / "other", other_stack, workloads(other_stack, "other-canary"), secrets=secrets, clients=client
        ),
    }
    runs = {
        s: fs.start(["apply", str(p), "--yes"], fault_after=AFTER_LOCK_TAKEN, fault_signal="SIGSTOP")
        for s, p in paths.items()
    }
    try:
        for run in runs.values():
            run.wait_stopped()
        # both stacks are locked at the same moment: the locks are per stack
        assert inventory(docker_api, stack).locked and inventory(docker_api, other_stack).locked
    finally:
        for run in runs.values():
            run.resume()
        codes = {s: fs.finished(run) for s, run in runs.items()}
    assert codes == {stack: 0, other_stack: 0}, [r.output for r in runs.values()]
    for name in (stack, other_stack):
        found = inventory(docker_api, name)
        assert found.names == containers(name), found
        assert found.networks == [f"toolhive-apply.{name}"] and not found.locked, found
        state = json.loads((tmp_path / "state" / "toolhive-apply" / "clients" / f"{name}.json").read_text())
        assert state["clients"]["cursor"]["entries"] == names(name)
        plan = fs.run("plan", str(paths[name]), "--detailed-exitcode")
        assert plan.code == 0, plan
    # the shared file holds both stacks' entries and the hand-written one: no update was lost
    assert sorted(mcp_servers(fs.cursor)) == sorted([*names(stack), *names(other_stack), "hand-written"])
    roots = [tmp_path / d for d in ("data", "state", "cache", "home", "manifest", "logs", "other")]
    assert_no_canary(fs.canary, fs.outputs, roots, docker_api, [stack, other_stack])
