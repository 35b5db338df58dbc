"""One list of the engine's containers per observation, shared by every Docker-backed provider.

Workloads and registry records both live as labelled containers; listing them once and splitting by label and
role keeps a plan's Docker round trips constant as kinds are added. The list is of the whole engine, not only the
stack, because the conflict check needs the names of containers we do not own from the same list.
"""

from __future__ import annotations

import threading
from typing import Any

from toolhive_apply.providers.docker.client import CountingAPIClient, docker_errors
from toolhive_apply.providers.docker.labels import LABEL_MANAGED_BY, LABEL_STACK, MANAGED_BY


class StackContainers:
    def __init__(self, api: CountingAPIClient, stack: str, endpoint: str) -> None:
        self.api = api
        self.stack = stack
        self.endpoint = endpoint
        self._engine: list[dict[str, Any]] | None = None
        self._networks: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            self._engine = None
            self._networks = None

    def engine_networks(self) -> list[dict[str, Any]]:
        """Every network on the engine, listed once until refresh: the stack's own are filtered from it, and the
        egress proxies are told every gateway in it (addresses of the Docker host)."""
        with self._lock:
            if self._networks is None:
                with docker_errors(self.endpoint):
                    self._networks = list(self.api.networks())
            return list(self._networks)

    def networks(self) -> list[dict[str, Any]]:
        """Every network labelled with this stack (the shared one and isolated workloads' own)."""
        return [
            n
            for n in self.engine_networks()
            if (n.get("Labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY
            and (n.get("Labels") or {}).get(LABEL_STACK) == self.stack
        ]

    def engine(self) -> list[dict[str, Any]]:
        """Every container on the engine, listed once until refresh (a name filter instead costs dockerd one
        pattern match per container and name: seconds at a few hundred workloads, found by the benchmark)."""
        with self._lock:
            if self._engine is None:
                with docker_errors(self.endpoint):
                    self._engine = list(self.api.containers(all=True))
            return list(self._engine)

    def owned(self) -> list[dict[str, Any]]:
        """Every container labelled with this stack (workloads, proxies, records)."""
        return [
            c
            for c in self.engine()
            if (c.get("Labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY
            and (c.get("Labels") or {}).get(LABEL_STACK) == self.stack
        ]
