"""The stack lock is broken only when its holder is provably dead, and only a real lock is ever removed.

Issue #22.9: a second apply removed a live lock when the holder ran in another PID namespace or on another
machine with the same host name. Here a real holder runs in a second PID namespace (`unshare --pid`) with a PID
that is dead in ours, and locks are written as if from another machine called like this one; neither is
broken. A holder of this machine and namespace that died (or whose PID was reused) is. Issue #13.8: a container
that only has the lock's name is never removed, by `unlock` or by waiting.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, ROOT, run_cli, write_manifest
from toolhive_apply.engine.lock_identity import (
    LABEL_PID,
    LABEL_PID_NAMESPACE,
    HolderIdentity,
    process_start_time,
)
from toolhive_apply.errors import LockedError
from toolhive_apply.providers.docker.client import endpoint_of
from toolhive_apply.providers.docker.lock import LOCK_COMMAND, StackLock, clear_stale_lock, lock_labels, lock_name
from toolhive_apply.providers.docker.marker_image import MARKER_IMAGE, ensure_marker_image

pytestmark = pytest.mark.docker

HOLDER = """
import os, pathlib, sys
from toolhive_apply.providers.docker.client import connect, endpoint_of
from toolhive_apply.providers.docker.lock import StackLock
lock = StackLock(connect(), sys.argv[1], endpoint_of(None), "apply (holder in another PID namespace)")
lock.__enter__()
pathlib.Path(sys.argv[2]).write_text(str(os.getpid()))
sys.stdin.read()  # hold the lock until the test closes stdin
lock.__exit__(None, None, None)
"""
# sh is PID 1 of the new namespace; ns_last_pid makes the holder's PID the one the test picked. The trailing
# `exit` keeps sh from exec'ing the holder (which would make it PID 1).
NAMESPACED = 'echo "$LAST_PID" > /proc/sys/kernel/ns_last_pid && "$PYTHON" -c "$HOLDER" "$STACK" "$READY"; exit $?'


def dead_pid() -> int:
    """A PID that existed a moment ago in our namespace and is gone now."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    assert process_start_time(probe.pid) is None
    return probe.pid


def write_lock(api: Any, stack: str, holder: HolderIdentity, command: str = "apply (test)") -> str:
    ensure_marker_image(api)
    created = api.create_container(
        image=MARKER_IMAGE,
        command=LOCK_COMMAND,
        name=lock_name(stack),
        labels=lock_labels(stack, command, holder),
        network_disabled=True,
    )
    return str(created["Id"])


def lock_id(api: Any, stack: str) -> str | None:
    found = api.containers(all=True, filters={"name": [f"^/{lock_name(stack)}$"]})
    return str(found[0]["Id"]) if found else None


def acquire(api: Any, stack: str) -> StackLock:
    lock = StackLock(api, stack, endpoint_of(None), "apply (second)", wait_seconds=1)
    return lock.__enter__()


@pytest.fixture
def namespaced_holder(docker_api: Any, stack: str, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs util-linux unshare and root for a second PID namespace")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here: {probe.stderr.decode(errors='replace').strip()}")
    ensure_marker_image(docker_api)
    pid, ready = dead_pid(), tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON": sys.executable, "HOLDER": HOLDER}
    env.update(STACK=stack, READY=str(ready), LAST_PID=str(pid - 1))
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", NAMESPACED],
        stdin=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None, f"the namespaced holder exited with {holder.returncode}"
            assert time.monotonic() < deadline, "the namespaced holder did not take the lock within 30 s"
            time.sleep(0.1)
        yield pid, holder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(10)


def test_a_live_holder_in_another_pid_namespace_is_never_broken(
    docker_api: Any, stack: str, tmp_path: Path, namespaced_holder: tuple[int, Any]
) -> None:
    pid, _ = namespaced_holder
    labels = docker_api.inspect_container(lock_name(stack))["Config"]["Labels"]
    assert labels[LABEL_PID] == str(pid)  # the holder's PID in its namespace...
    assert process_start_time(pid) is None  # ...is dead in ours: host name and PID alone said "stale"
    assert labels[LABEL_PID_NAMESPACE] != HolderIdentity.current().pid_namespace
    held = lock_id(docker_api, stack)

    with pytest.raises(LockedError) as caught:
        acquire(docker_api, stack)
    assert "apply (holder in another PID namespace)" in caught.value.message
    assert caught.value.hint is not None and "another PID namespace" in caught.value.hint
    assert not clear_stale_lock(docker_api, stack, endpoint_of(None))
    path = write_manifest(tmp_path, stack, [])
    second = run_cli("apply", str(path), "--yes", "--lock-timeout", "1")
    assert lock_id(docker_api, stack) == held, second


@pytest.mark.parametrize(
    "change",
    [{"boot_id": "other-boot"}, {"machine_id": "other-machine", "boot_id": "other-boot"}, {"pid_namespace": "1"}],
    ids=["other-boot", "other-machine", "other-pid-namespace"],
)
def test_a_lock_from_another_machine_with_the_same_host_name_is_never_broken(
    docker_api: Any, stack: str, change: dict[str, str]
) -> None:
    here = HolderIdentity.current()
    elsewhere = dataclasses.replace(here, pid=dead_pid(), start_time="4242", **change)  # type: ignore[arg-type]
    assert elsewhere.host == here.host
    held = write_lock(docker_api, stack, elsewhere, "apply (on the other machine)")
    with pytest.raises(LockedError) as caught:
        acquire(docker_api, stack)
    assert "apply (on the other machine)" in caught.value.message
    assert caught.value.hint is not None and "cannot tell whether it still runs" in caught.value.hint
    assert not clear_stale_lock(docker_api, stack, endpoint_of(None))
    assert lock_id(docker_api, stack) == held


def test_a_lock_naming_only_host_and_pid_is_never_broken(docker_api: Any, stack: str) -> None:
    """As an older toolhive-apply wrote it: in doubt, wait and name the holder."""
    labels = {k: v for k, v in lock_labels(stack, "apply (old)", HolderIdentity.current()).items()}
    for name in ("boot-id", "machine-id", "pid-namespace", "start-time"):
        labels.pop(f"toolhive-apply.lock.{name}")
    labels[LABEL_PID] = str(dead_pid())
    ensure_marker_image(docker_api)
    held = docker_api.create_container(image=MARKER_IMAGE, command=LOCK_COMMAND, name=lock_name(stack), labels=labels)
    with pytest.raises(LockedError) as caught:
        acquire(docker_api, stack)
    assert caught.value.hint is not None and "does not say which machine" in caught.value.hint
    assert lock_id(docker_api, stack) == held["Id"]


@pytest.mark.parametrize("how", ["dead", "pid-reused"])
def test_a_dead_holder_of_this_machine_and_namespace_is_broken(docker_api: Any, stack: str, how: str) -> None:
    here = HolderIdentity.current()
    gone = dataclasses.replace(here, pid=dead_pid()) if how == "dead" else dataclasses.replace(here, start_time="1")
    stale = write_lock(docker_api, stack, gone)
    lock = acquire(docker_api, stack)
    try:
        assert lock.container_id is not None and lock.container_id != stale
        assert docker_api.inspect_container(lock_name(stack))["Config"]["Labels"][LABEL_PID] == str(os.getpid())
    finally:
        lock.__exit__(None, None, None)
    stale = write_lock(docker_api, stack, gone)
    assert clear_stale_lock(docker_api, stack, endpoint_of(None))
    assert lock_id(docker_api, stack) is None


def test_a_live_holder_of_this_machine_is_waited_for(docker_api: Any, stack: str) -> None:
    held = write_lock(docker_api, stack, HolderIdentity.current(), "apply (alive)")
    with pytest.raises(LockedError, match=r"is locked by .* \(apply \(alive\)\)"):
        acquire(docker_api, stack)
    assert not clear_stale_lock(docker_api, stack, endpoint_of(None))
    assert lock_id(docker_api, stack) == held


@pytest.mark.usefixtures("test_images")
def test_unlock_and_waiting_never_remove_a_container_that_only_has_the_locks_name(docker_api: Any, stack: str) -> None:
    labels = {"toolhive-apply.managed-by": "toolhive-apply", "toolhive-apply.stack": f"{stack}-other"}
    impostor = docker_api.create_container(
        image=PYTHON_IMAGE, command=["sleep", "1"], name=lock_name(stack), labels=labels
    )["Id"]
    unlocked = run_cli("unlock", "--stack", stack)
    assert unlocked.code == 1, unlocked
    assert f"container {lock_name(stack)} is not the lock of stack {stack!r}" in unlocked.stderr
    assert "refusing to remove it" in unlocked.stderr
    with pytest.raises(LockedError, match="is not the lock of stack"):
        acquire(docker_api, stack)
    assert not clear_stale_lock(docker_api, stack, endpoint_of(None))
    assert lock_id(docker_api, stack) == impostor
    marker_without_labels = {"toolhive-apply.lock": f"{stack}-other"}
    docker_api.remove_container(impostor, force=True)
    ensure_marker_image(docker_api)
    other = docker_api.create_container(
        image=MARKER_IMAGE, command=LOCK_COMMAND, name=lock_name(stack), labels=marker_without_labels
    )["Id"]
    assert run_cli("unlock", "--stack", stack).code == 1
    assert lock_id(docker_api, stack) == other


def test_unlock_removes_the_stacks_real_lock_and_names_its_holder(docker_api: Any, stack: str) -> None:
    write_lock(docker_api, stack, dataclasses.replace(HolderIdentity.current(), boot_id=str(uuid.uuid4())), "apply (x)")
    unlocked = run_cli("unlock", "--stack", stack)
    assert unlocked.code == 0 and "Removed the lock held by" in unlocked.stdout and "(apply (x))" in unlocked.stdout
    assert lock_id(docker_api, stack) is None
