"""The one place that builds and owns the docker-py client: connection, API version, call counting.

Counting every HTTP request to the engine here lets tests assert that observing N workloads costs a
constant number of round trips, instead of asserting on wall-clock time.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors
import docker.utils
import requests

from toolhive_apply.errors import TargetUnavailableError

DOCKER_HINT = "is dockerd running? Set DOCKER_HOST (or settings.docker.host) to reach another engine"


class CountingAPIClient(docker.APIClient):
    """docker-py's low-level client, counting requests by method and path (thread-safe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        path = urlparse(str(url)).path
        # "/v1.41/containers/json" -> "GET /containers/json"; ids collapse so counts stay readable
        parts = [p for p in path.split("/") if p][1:] if path.startswith("/v1.") else path.split("/")[1:]
        if len(parts) >= 3 and parts[0] in ("containers", "images", "networks", "volumes"):
            parts[1] = "{id}"
        with self._calls_lock:
            self.calls[f"{method.upper()} /{'/'.join(parts)}"] += 1
        return super().request(method, url, *args, **kwargs)

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
