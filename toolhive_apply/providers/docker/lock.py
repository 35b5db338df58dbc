"""One apply per stack and Docker host, even across machines.

The lock is a container with a fixed name on the Docker host: the engine refuses a second container
of the same name atomically (409), which a file on one runner could never promise to another runner.
A lock is broken automatically only when its holder is provably dead (lock_identity.py), and only a container
that is that stack's lock is ever removed: a workload that happens to carry the lock's name is left alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import docker.errors

from toolhive_apply.engine.lock_identity import LABEL_HOLDER, HolderIdentity, holder_is_gone, unverifiable_reason
from toolhive_apply.errors import ConflictError, LockedError, TargetUnavailableError
from toolhive_apply.providers.docker.client import CountingAPIClient, docker_errors
from toolhive_apply.providers.docker.labels import LABEL_LOCK, LABEL_MANAGED_BY, LABEL_ROLE, MANAGED_BY
from toolhive_apply.providers.docker.marker_image import MARKER_IMAGE, ensure_marker_image

LOCK_COMMAND: Final = ["/lock"]
LABEL_SINCE: Final = "toolhive-apply.lock.since"
LABEL_COMMAND: Final = "toolhive-apply.lock.command"
ROLE_LOCK: Final = "lock"


def lock_name(stack: str) -> str:
    return f"toolhive-apply-lock.{stack}"


def lock_labels(stack: str, command: str, holder: HolderIdentity) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_ROLE: ROLE_LOCK,
        LABEL_LOCK: stack,
        LABEL_SINCE: datetime.now(UTC).isoformat(timespec="seconds"),
        LABEL_COMMAND: command,
        **holder.labels(),
    }


def is_lock_of(found: Mapping[str, Any], stack: str) -> bool:
    """Whether an inspected container is `stack`'s lock: its lock label, the marker image and command.

    A lock from an older toolhive-apply has no managed-by or role label; when present they must match.
    """
    config = found.get("Config") or {}
    labels = config.get("Labels") or {}
    return (
        labels.get(LABEL_LOCK) == stack
        and labels.get(LABEL_MANAGED_BY, MANAGED_BY) == MANAGED_BY
        and labels.get(LABEL_ROLE, ROLE_LOCK) == ROLE_LOCK
        and config.get("Image") == MARKER_IMAGE
        and config.get("Cmd") == LOCK_COMMAND
    )


def _not_a_lock(stack: str, found: Mapping[str, Any]) -> str:
    image = (found.get("Config") or {}).get("Image") or "?"
    return f"container {lock_name(stack)} is not the lock of stack {stack!r} (image {image}, no lock labels for it)"


def _describe_holder(labels: Mapping[str, str]) -> str:
    return f"{labels.get(LABEL_HOLDER, '?')} ({labels.get(LABEL_COMMAND, '?')}) since {labels.get(LABEL_SINCE, '?')}"


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
        try:
            created = self.api.create_container(
                image=MARKER_IMAGE,
                command=LOCK_COMMAND,
                name=lock_name(self.stack),
                labels=lock_labels(self.stack, self.command, HolderIdentity.current()),
                network_disabled=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return False
            raise
        self.container_id = str(created["Id"])
        return True

    def _break_if_holder_died(self) -> bool:
        """A lock whose holder is provably dead (kill -9, power loss) is stale: remove it. True: try again now.

        A container with the lock's name that is not this stack's lock is never touched: that is an error now,
        not a wait, because no run will ever release it.
        """
        try:
            found = self.api.inspect_container(lock_name(self.stack))
        except docker.errors.NotFound:
            return True  # released meanwhile: try again at once
        if not is_lock_of(found, self.stack):
            raise LockedError(
                _not_a_lock(self.stack, found),
                hint="rename or remove that container yourself; toolhive-apply never removes it",
            )
        if not holder_is_gone(found["Config"].get("Labels") or {}):
            return False
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(found["Id"], force=True)  # by id: never a lock taken since
        return True

    def _locked_error(self) -> LockedError:
        try:
            labels = self.api.inspect_container(lock_name(self.stack))["Config"]["Labels"] or {}
        except docker.errors.NotFound:
            labels = {}
        why = unverifiable_reason(labels) if labels else None
        doubt = f"{why}, so toolhive-apply cannot tell whether it still runs; " if why else ""
        return LockedError(
            f"stack {self.stack!r} is locked by {_describe_holder(labels) if labels else 'nobody (just released)'}",
            hint=f"wait for that run to finish; {doubt}if it is gone, run `toolhive-apply unlock --stack {self.stack}`",
        )

    def __enter__(self) -> StackLock:
        with docker_errors(self.endpoint):
            self._ensure_image()
            deadline = time.monotonic() + self.wait_seconds
            while not self._try_create():
                if self._break_if_holder_died():
                    continue
                if time.monotonic() >= deadline:
                    raise self._locked_error()
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


def clear_stale_lock(api: CountingAPIClient, stack: str, endpoint: str) -> bool:
    """Remove the lock of a run that provably died without releasing it; True when there was one.

    Why: an apply with nothing to change never takes the lock, so a lock left by a killed apply used to outlive
    every later (converged) apply as an orphaned container; the fault suite's crash tests found it. A live holder,
    one that cannot be checked from here, or a container that is not this stack's lock is left alone.
    """
    with docker_errors(endpoint):
        try:
            found = api.inspect_container(lock_name(stack))
        except docker.errors.NotFound:
            return False
        if not is_lock_of(found, stack) or not holder_is_gone(found["Config"].get("Labels") or {}):
            return False
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(found["Id"], force=True)
        return True


def break_lock(api: CountingAPIClient, stack: str, endpoint: str) -> str | None:
    """`unlock`: remove the stack's lock whoever holds it; returns who held it, or None if there was none.

    Only a container that is this stack's lock is removed (by id, so never one created since it was checked).
    """
    with docker_errors(endpoint):
        try:
            found = api.inspect_container(lock_name(stack))
        except docker.errors.NotFound:
            return None
        if not is_lock_of(found, stack):
            raise ConflictError(
                f"{_not_a_lock(stack, found)}; refusing to remove it",
                hint="it may be a workload or someone else's container: inspect it with `docker inspect`",
            )
        try:
            api.remove_container(found["Id"], force=True)
        except docker.errors.NotFound:
            return None
        return _describe_holder(found["Config"].get("Labels") or {})
