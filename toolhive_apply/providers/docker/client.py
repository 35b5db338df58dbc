"""The one place that builds and owns the docker-py client: connection, API version, call counting.

Counting every HTTP request to the engine here lets tests assert that observing N workloads costs a
constant number of round trips, instead of asserting on wall-clock time.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlparse

import docker
import docker.errors
import docker.utils
import requests

from toolhive_apply.errors import TargetUnavailableError

DOCKER_HINT = "is dockerd running? Set DOCKER_HOST (or settings.docker.host) to reach another engine"

FAULT_KILL_ENV: Final = "TOOLHIVE_APPLY_FAULT_KILL_AFTER_CALLS"
FAULT_SIGNAL_ENV: Final = "TOOLHIVE_APPLY_FAULT_SIGNAL"
"""Test hooks of the fault suite (tests/integration/test_faults_*.py), never set in normal use.

With FAULT_KILL_ENV=`N` the process sends itself SIGKILL right after the engine answered its Nth request;
`N:POST,DELETE` counts only requests with those methods (the ones that change something: read polls vary with
timing, writes do not). FAULT_SIGNAL_ENV=`SIGSTOP` sends that signal instead, so a test can change the world
(cut the engine's socket, seal Vault, take the lock) at that exact point and then let the run continue.
"""


@dataclass(frozen=True, slots=True)
class FaultPoint:
    """Where the fault hook strikes: after the `count`th request (of `methods`, or of any), with `signal`."""

    count: int
    methods: frozenset[str] | None
    signal: signal.Signals


def fault_point(environ: Mapping[str, str] | None = None) -> FaultPoint | None:
    """The hook's setting from FAULT_KILL_ENV / FAULT_SIGNAL_ENV; None when unset or not a positive count."""
    env = os.environ if environ is None else environ
    count, _, methods = env.get(FAULT_KILL_ENV, "").strip().partition(":")
    if not count.isdigit() or int(count) < 1:
        return None
    wanted = frozenset(m.strip().upper() for m in methods.split(",") if m.strip()) or None
    name = env.get(FAULT_SIGNAL_ENV, "").strip().upper() or "SIGKILL"
    try:
        chosen = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        chosen = signal.SIGKILL
    return FaultPoint(int(count), wanted, chosen)


class CountingAPIClient(docker.APIClient):
    """docker-py's low-level client, counting requests by method and path (thread-safe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._fault = fault_point()
        self._fault_calls = 0
        super().__init__(*args, **kwargs)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        path = urlparse(str(url)).path
        # "/v1.41/containers/json" -> "GET /containers/json"; ids collapse so counts stay readable
        parts = [p for p in path.split("/") if p][1:] if path.startswith("/v1.") else path.split("/")[1:]
        if len(parts) >= 3 and parts[0] in ("containers", "images", "networks", "volumes"):
            parts[1] = "{id}"
        with self._calls_lock:
            self.calls[f"{method.upper()} /{'/'.join(parts)}"] += 1
        response = super().request(method, url, *args, **kwargs)
        if self._fault is not None:
            self._strike(self._fault, method.upper())
        return response

    def _strike(self, fault: FaultPoint, method: str) -> None:
        """The fault hook (FAULT_KILL_ENV): signal ourselves once the engine answered the chosen request."""
        if fault.methods is not None and method not in fault.methods:
            return
        with self._calls_lock:
            self._fault_calls += 1
            now = self._fault_calls == fault.count
        if now:
            os.kill(os.getpid(), fault.signal)

    def image_id(self, ref: str) -> str | None:
        """The local image id for `ref`, or None when the image is not on the host."""
        try:
            found: dict[str, Any] = self.inspect_image(ref)  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        return str(found["Id"])

    @property
    def total_calls(self) -> int:
        with self._calls_lock:
            return sum(self.calls.values())

    def reset_calls(self) -> None:
        with self._calls_lock:
            self.calls.clear()


def endpoint_of(host: str | None) -> str:
    return host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(host: str | None = None, timeout: float = 60.0, pool_size: int = 10) -> CountingAPIClient:
    """A connected client, or TargetUnavailableError naming the endpoint and the next step."""
    params: dict[str, Any] = dict(docker.utils.kwargs_from_env())
    if host:
        params["base_url"] = host
        params.pop("tls", None)
    endpoint = endpoint_of(host)
    try:
        return CountingAPIClient(version="auto", timeout=int(timeout), max_pool_size=max(pool_size, 10), **params)
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise TargetUnavailableError("Docker", endpoint, _short(exc), hint=DOCKER_HINT) from None


def _short(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection aborted.", "Max retries exceeded", "No such file or directory", "Connection refused"):
        if marker in text:
            if "No such file" in text or "FileNotFoundError" in text:
                return "the socket does not exist"
            if "refused" in text.lower():
                return "connection refused"
            return "connection failed"
    return text.splitlines()[0][:200] if text else type(exc).__name__


@contextmanager
def docker_errors(endpoint: str) -> Iterator[None]:
    """Turns a lost connection in the middle of a run into one readable error."""
    try:
        yield
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TargetUnavailableError("Docker", endpoint, _short(exc), hint=DOCKER_HINT) from None
