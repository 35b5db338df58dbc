"""One list of the stack's containers per observation, shared by every Docker-backed provider.

Workloads and registry records both live as labelled containers; listing them once and splitting by role
keeps a plan's Docker round trips constant as kinds are added.
"""

from __future__ import annotations

import threading
from typing import Any

from toolhive_apply.docker_client import CountingAPIClient, docker_errors
from toolhive_apply.providers.workload_spec import LABEL_MANAGED_BY, LABEL_STACK, MANAGED_BY


class StackContainers:
    def __init__(self, api: CountingAPIClient, stack: str, endpoint: str) -> None:
        self.api = api
        self.stack = stack
        self.endpoint = endpoint
        self._owned: list[dict[str, Any]] | None = None
        self._networks: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            self._owned = None
            self._networks = None

    def _filters(self) -> dict[str, list[str]]:
        return {"label": [f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{LABEL_STACK}={self.stack}"]}

    def networks(self) -> list[dict[str, Any]]:
        """Every network labelled with this stack (the shared one and isolated workloads' own), listed once."""
        with self._lock:
            if self._networks is None:
                with docker_errors(self.endpoint):
                    self._networks = list(self.api.networks(filters=self._filters()))
            return list(self._networks)

    def owned(self) -> list[dict[str, Any]]:
        """Every container labelled with this stack (workloads, proxies, records), listed once until refresh."""
        with self._lock:
            if self._owned is None:
                with docker_errors(self.endpoint):
                    self._owned = list(self.api.containers(all=True, filters=self._filters()))
            return list(self._owned)
