"""Advisory file locks with a deadline and atomic file replacement, shared by the file-backed stores.

ToolHive locks `secrets_encrypted.lock` with flock(2) and replaces the file atomically; doing exactly the same
here is what lets `thv` and toolhive-apply write the same store without losing each other's updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from toolhive_apply.fileio import replace_atomically as replace_atomically  # the stores' writer

POLL_INTERVAL: Final = 0.05


class LockTimeoutError(Exception):
    """The lock stayed held by someone else until the deadline."""


@contextlib.contextmanager
def locked(lock_path: Path, *, exclusive: bool, timeout: float) -> Iterator[None]:
    """Hold flock(2) on `lock_path` (created 0600 if missing) for the block; LockTimeoutError after `timeout` s.

    O_NOFOLLOW: a link planted at the lock's name must not make us create or lock a file somewhere else.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, timeout)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, operation: int, timeout: float) -> None:
    # Polling with LOCK_NB (as gofrs/flock's TryLockContext does for ToolHive) keeps a hard deadline that a
    # blocking flock() call cannot offer.
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeoutError from None
            time.sleep(POLL_INTERVAL)
        else:
            return
