"""Learning that a container died from the engine's event stream instead of inspecting it every poll.

Why: readiness used to inspect every container of a unit every 0.25 s until MCP answered; with parallelism 8 and
three containers per unit that was most of a cold apply's Docker calls (about 850 of 980 at N = 20, found by the
benchmark of issue #20), competing with the creates and starts on a dockerd that is already the bottleneck. One
event stream per wait, filtered on the unit's container ids, says when one dies; the wait then inspects only that
one, to report how it died exactly as before. If the stream cannot be opened or breaks, the caller falls back to
inspecting on every poll (the old behaviour), so a wait never trusts a silent stream.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import docker.errors
import requests

from toolhive_apply.providers.docker.client import CountingAPIClient

# die: the process ended (a crash, an OOM kill, a restart by the policy); destroy: someone removed it
WATCHED_EVENTS = ("die", "destroy")


class DeathWatch:
    """The ids among `containers` that died since the watch began; `broken` once the stream cannot be trusted.

    The stream is opened (dockerd subscribed) before the constructor returns, so a death after that is seen; one
    before it is the caller's to find with a single inspect of each container.
    """

    def __init__(self, api: CountingAPIClient, containers: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._dead: list[str] = []
        self._closed = False
        self.broken = False
        self._stream: Any = None
        try:
            # no since/until: with either, dockerd first replays its buffer of past events (an earlier stop by hand
            # would read as a crash now); the wait's finally closes the stream
            self._stream = api.events(
                filters={"type": "container", "container": list(containers), "event": list(WATCHED_EVENTS)},
                decode=True,
            )
        except (docker.errors.APIError, requests.RequestException):
            self.broken = True
            return
        threading.Thread(target=self._read, name="death-watch", daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                container = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
                with self._lock:
                    if container and container not in self._dead:
                        self._dead.append(container)
        except Exception:  # noqa: BLE001 - a broken stream (or close()) only means: stop trusting it
            pass
        with self._lock:
            if not self._closed:
                self.broken = True  # it ended before the wait did: from now on the caller inspects

    def dead(self) -> list[str]:
        with self._lock:
            return list(self._dead)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if self._stream is not None:
            with contextlib.suppress(Exception):  # closing a stream the engine already ended
                self._stream.close()
