"""Stable host ports for workloads that do not name one.

ToolHive picks a random free port, which a declarative tool cannot: the next plan would differ.
We derive the port from stack and workload name, so it is the same on every machine and every run,
and probe linearly past ports another workload of the manifest already claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolhive_apply.manifest.model import Manifest

import hashlib
from collections.abc import Iterable

DERIVED_PORT_BASE = 20000
DERIVED_PORT_SPAN = 12000  # 20000-31999: below Linux's ephemeral range (32768+), where client sockets live


def derived_port(stack: str, name: str, taken: set[int]) -> int:
    digest = hashlib.sha256(f"{stack}/{name}".encode()).digest()
    offset = int.from_bytes(digest[:4], "big") % DERIVED_PORT_SPAN
    for step in range(DERIVED_PORT_SPAN):
        port = DERIVED_PORT_BASE + (offset + step) % DERIVED_PORT_SPAN
        if port not in taken:
            return port
    msg = "no free port left in the derived range"
    raise RuntimeError(msg)


def assign_ports(stack: str, requested: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """Workload name -> host port; explicit ports first, then derived ones avoiding them."""
    pairs = list(requested)
    taken = {port for _, port in pairs if port is not None}
    result: dict[str, int] = {}
    for name, port in pairs:
        if port is None:
            port = derived_port(stack, name, taken)
            taken.add(port)
        result[name] = port
    return result


def manifest_ports(manifest: Manifest) -> dict[str, int]:
    """The one assignment of a manifest's host ports (checks, workload specs and client entries all read it)."""
    return assign_ports(manifest.settings.stack, ((w.name, w.proxy_port) for w in manifest.workloads))
