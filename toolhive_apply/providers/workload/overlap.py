"""Engine calls of one unit that overlap: a container started while the caller creates the rest of its unit, and
a replaced unit's old containers stopped together.

Why: `start` is the slow call of a unit (about 2 s each on a loaded 2-core host, measured for issue #20), and a
unit's proxy and docker gate need only the server's *id*, not a running server, to be created. So the server's start
runs in a thread while they are created. Then the gate and the proxy start together: the gate serves on demand, and
the proxy, if it asks before the gate listens, retries (stdio_backend.BACKOFF_MIN, 0.25 s). Both start only once the
server runs, so the proxy's first look finds it up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def stop_together(api: CountingAPIClient, containers: Sequence[str], timeout: int) -> None:
    """Stop `containers` at once (a replaced unit's old server, proxy and gate, already renamed aside): the stops
    are independent, and in sequence they cost the sum of their times (about 0.1 to 0.2 s each, measured for issue
    #20) before the new unit can start. The first error is raised once every stop has ended."""
    if len(containers) < 2:
        for container in containers:
            api.stop(container, timeout=timeout)
        return
    with ThreadPoolExecutor(len(containers), thread_name_prefix="stop") as pool:
        futures = [pool.submit(api.stop, container, timeout=timeout) for container in containers]
    for future in futures:
        future.result()
