"""Starting a container while the caller goes on creating the rest of its unit.

Why: `start` is the slow call of a unit (about 2 s each on a loaded 2-core host, measured for issue #20), and a
unit's proxy and docker gate need only the server's *id*, not a running server, to be created. So the server's start
runs in a thread while they are created. Then the gate and the proxy start together: the gate serves on demand, and
the proxy, if it asks before the gate listens, retries (stdio_backend.BACKOFF_MIN, 0.25 s). Both start only once the
server runs, so the proxy's first look finds it up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from toolhive_apply.providers.docker.client import CountingAPIClient


@contextmanager
def started_meanwhile(api: CountingAPIClient, container: str | None) -> Iterator[None]:
    """Start `container` (if any) in a thread during the block; on leaving it, wait for the start and raise what it
    raised (an error of the block itself wins: the start is still waited for, so nothing races the caller's
    clean-up)."""
    if container is None:
        yield
        return
    failure: list[BaseException] = []

    def start() -> None:
        try:
            api.start(container)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=start, name="start-server", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failure:
        raise failure[0]
