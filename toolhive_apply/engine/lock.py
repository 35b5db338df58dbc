"""One apply per stack and Docker host, even across machines.

The lock is a container with a fixed name on the Docker host: the engine refuses a second container
of the same name atomically (409), which a file on one runner could never promise to another runner.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import os
import socket
import tarfile
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

import docker.errors

from toolhive_apply.docker_client import CountingAPIClient, docker_errors
from toolhive_apply.errors import LockedError, TargetUnavailableError

LOCK_IMAGE_REPO: Final = "toolhive-apply/lock"
LOCK_IMAGE_TAG: Final = "1"
LABEL_LOCK: Final = "toolhive-apply.lock"
LABEL_HOLDER: Final = "toolhive-apply.lock.holder"
LABEL_SINCE: Final = "toolhive-apply.lock.since"
LABEL_COMMAND: Final = "toolhive-apply.lock.command"
LABEL_HOST: Final = "toolhive-apply.lock.host"
LABEL_PID: Final = "toolhive-apply.lock.pid"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def lock_name(stack: str) -> str:
    return f"toolhive-apply-lock.{stack}"


def _empty_image_tar() -> bytes:
    """A one-file root filesystem: the lock container is created, never started."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("lock")
        info.size = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


MARKER_IMAGE: Final = f"{LOCK_IMAGE_REPO}:{LOCK_IMAGE_TAG}"


def ensure_marker_image(api: CountingAPIClient) -> str:
    """The tiny image behind state-carrying containers (locks, registry records); imported, never pulled."""
    if api.image_id(MARKER_IMAGE) is None:
        api.import_image_from_data(_empty_image_tar(), repository=LOCK_IMAGE_REPO, tag=LOCK_IMAGE_TAG)
    return MARKER_IMAGE


class StackLock:
    """Context manager: acquire on enter (waiting up to `wait_seconds`), release on exit."""

    def __init__(
        self, api: CountingAPIClient, stack: str, endpoint: str, command: str, wait_seconds: float = 10.0
    ) -> None:
        self.api = api
        self.stack = stack
        self.endpoint = endpoint
        self.command = command
        self.wait_seconds = wait_seconds
        self.container_id: str | None = None

    def _ensure_image(self) -> None:
        ensure_marker_image(self.api)

    def _try_create(self) -> bool:
        holder = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        try:
            created = self.api.create_container(
                image=f"{LOCK_IMAGE_REPO}:{LOCK_IMAGE_TAG}",
                command=["/lock"],
                name=lock_name(self.stack),
                labels={
                    LABEL_LOCK: self.stack,
                    LABEL_HOLDER: holder,
                    LABEL_SINCE: datetime.now(UTC).isoformat(timespec="seconds"),
                    LABEL_COMMAND: self.command,
                    LABEL_HOST: socket.gethostname(),
                    LABEL_PID: str(os.getpid()),
                },
                network_disabled=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return False
            raise
        self.container_id = str(created["Id"])
        return True

    def holder(self) -> str:
        try:
            labels = self.api.inspect_container(lock_name(self.stack))["Config"]["Labels"] or {}
        except docker.errors.NotFound:
            return "nobody (just released)"
        return (
            f"{labels.get(LABEL_HOLDER, '?')} ({labels.get(LABEL_COMMAND, '?')}) since {labels.get(LABEL_SINCE, '?')}"
        )

    def _break_if_holder_died(self) -> bool:
        """A lock left by a run on this machine whose process is gone (kill -9, power loss) is stale: remove it.

        Only same-host holders can be checked; a holder on another machine is never second-guessed.
        """
        try:
            found = self.api.inspect_container(lock_name(self.stack))
        except docker.errors.NotFound:
            return True  # released meanwhile: try again at once
        if not _holder_died(found["Config"].get("Labels") or {}):
            return False
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(found["Id"], force=True)  # by id: never a lock taken since
        return True

    def __enter__(self) -> StackLock:
        with docker_errors(self.endpoint):
            self._ensure_image()
            deadline = time.monotonic() + self.wait_seconds
            while not self._try_create():
                if self._break_if_holder_died():
                    continue
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"stack {self.stack!r} is locked by {self.holder()}",
                        hint=(
                            "wait for that run to finish; if it is gone, run "
                            f"`toolhive-apply unlock --stack {self.stack}`"
                        ),
                    )
                time.sleep(0.5)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.container_id is None:
            return
        container, self.container_id = self.container_id, None
        try:
            with docker_errors(self.endpoint), contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(container, force=True)
        except TargetUnavailableError:
            # Why: with the engine gone mid-run, the release raised a bare requests.ConnectionError that the CLI could
            # only call an internal error (found by the fault suite). Now it is the usual "Docker ... is not
            # available"; the lock stays behind and the next run on this machine breaks it, as after a crash. An
            # error already on its way out is the one reported.
            if exc is None:
                raise


def _holder_died(labels: dict[str, str]) -> bool:
    """The lock's holder ran on this machine and its process is gone."""
    pid = labels.get(LABEL_PID, "")
    return labels.get(LABEL_HOST) == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def clear_stale_lock(api: CountingAPIClient, stack: str, endpoint: str) -> bool:
    """Remove the lock of a run on this machine that died without releasing it; True when there was one.

    Why: an apply with nothing to change never takes the lock, so a lock left by a killed apply used to outlive
    every later (converged) apply as an orphaned container; the fault suite's crash tests found it. A live holder,
    or one on another machine, is left alone exactly as when waiting for the lock.
    """
    with docker_errors(endpoint):
        try:
            found = api.inspect_container(lock_name(stack))
        except docker.errors.NotFound:
            return False
        if not _holder_died(found["Config"].get("Labels") or {}):
            return False
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(found["Id"], force=True)
        return True


def break_lock(api: CountingAPIClient, stack: str, endpoint: str) -> str | None:
    """Remove a stale lock; returns who held it, or None if there was none."""
    with docker_errors(endpoint):
        lock = StackLock(api, stack, endpoint, "unlock")
        try:
            holder = lock.holder()
            api.remove_container(lock_name(stack), force=True)
        except docker.errors.NotFound:
            return None
        return holder
