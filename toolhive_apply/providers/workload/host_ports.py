"""Host ports a plan would publish, checked against what already holds them, so `plan` says so and not `apply`.

A port is held by a container (seen in the one container list the plan already made: no extra Docker call) or, on
a local engine, by a process of this host (found by trying to bind it for a moment). A port held by the workload's
own containers is not a conflict: it is the workload itself, or what its replace sets aside first. One held by
another workload of the same stack is freed by this apply only after the creates (deletes run last), so it is a
warning. Apply turns Docker's own text for the same failure into the same sentence (`port_error`).
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from toolhive_apply.engine.resource import DesiredResource, Kind
from toolhive_apply.errors import ManifestError, ManifestIssue
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.positions import positioned
from toolhive_apply.providers.docker.labels import LABEL_MANAGED_BY, LABEL_NAME, LABEL_STACK, MANAGED_BY
from toolhive_apply.providers.workload.observe import container_name

WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})
PORT_HINT: Final = "stop what holds the port, or give the workload another proxy_port"
# Docker 20.10+: "Bind for 127.0.0.1:18080 failed: port is already allocated" (another container) and
# "Error starting userland proxy: listen tcp4 127.0.0.1:18080: bind: address already in use" (a host process)
_DOCKER_PORT_ERRORS: Final = (
    re.compile(r"Bind for (?P<host>\S+?):(?P<port>\d+) failed: port is already allocated"),
    re.compile(r"listen tcp[46]? (?P<host>\S+?):(?P<port>\d+): bind: address already in use"),
)


class PortTakenError(ManifestError):
    """A host port the plan would publish is held by something else."""

    code = "port_taken"


@dataclass(frozen=True, slots=True)
class Wanted:
    """A host address and port one workload publishes; `field` is where the manifest sets it."""

    workload: str
    host: str
    port: int
    field: str


def wanted_ports(desired: Iterable[DesiredResource], index_of: Mapping[str, int]) -> list[Wanted]:
    return [
        Wanted(
            d.id.name, str(d.spec["host"]), int(d.spec["proxy_port"]), f"workloads[{index_of[d.id.name]}].proxy_port"
        )
        for d in desired
        if d.id.kind is Kind.WORKLOAD and d.spec.get("proxy_port") and d.id.name in index_of and not d.spec.get("serve")
    ]


def _published(summary: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The host addresses and ports a (running) container publishes, as the container list reports them."""
    return [
        (str(p.get("IP") or ""), int(p["PublicPort"]))
        for p in summary.get("Ports") or ()
        if p.get("PublicPort") and p.get("Type", "tcp") == "tcp"
    ]


def overlaps(a: str, b: str) -> bool:
    """Two bind addresses collide on one port when they are the same or either is a wildcard."""
    return a == b or a in WILDCARDS or b in WILDCARDS


def _holder(summary: Mapping[str, Any]) -> str:
    labels = summary.get("Labels") or {}
    name = container_name(dict(summary))
    if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_NAME):
        return f"container {name!r} (workload {labels[LABEL_NAME]!r} of stack {labels.get(LABEL_STACK)!r})"
    return f"container {name!r}"


def bind_taken(host: str, port: int) -> bool:
    """Whether a process of this host holds `host:port` (the bind Docker's port proxy will try). Only "in use"
    counts: an address this host does not have is for Docker to report."""
    address = "0.0.0.0" if host == "" else host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Docker's proxy binds: TIME_WAIT is free
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


@dataclass(frozen=True, slots=True)
class PortCheck:
    stack: str
    containers: Sequence[Mapping[str, Any]]
    local: bool


def port_conflicts(wanted: Iterable[Wanted], check: PortCheck) -> tuple[list[ManifestIssue], list[str]]:
    """(conflicts, warnings) for the ports the plan would publish."""
    issues: list[ManifestIssue] = []
    warnings: list[str] = []
    by_port = _publishers(check.containers)
    for want in wanted:
        held = _holders(by_port.get(want.port, ()), want.host)
        ours = [c for c in held if (c.get("Labels") or {}).get(LABEL_STACK) == check.stack and _managed(c)]
        if any((c.get("Labels") or {}).get(LABEL_NAME) == want.workload for c in ours):
            continue  # the workload itself holds it
        where = f"host port {want.host or '0.0.0.0'}:{want.port}"
        foreign = [c for c in held if c not in ours]
        if foreign:
            issues.append(ManifestIssue(None, want.field, f"{where} is already taken by {_holder(foreign[0])}"))
        elif ours:
            warnings.append(
                f"workload {want.workload!r}: {where} is still held by {_holder(ours[0])}, which this apply removes "
                f"or moves only after it creates {want.workload!r}: that create may fail once, and the next apply "
                "finishes it"
            )
        elif check.local and bind_taken(want.host, want.port):
            issues.append(ManifestIssue(None, want.field, f"{where} is already taken by a process on this host"))
    return issues, warnings


def _publishers(containers: Iterable[Mapping[str, Any]]) -> dict[int, list[tuple[str, Mapping[str, Any]]]]:
    """Each published host port with its (address, container) pairs, in list order: one pass over the list, so
    the check is linear in the stack (it was wanted ports times containers, most of a 2,000-workload plan)."""
    by_port: dict[int, list[tuple[str, Mapping[str, Any]]]] = {}
    for summary in containers:
        for ip, port in _published(summary):
            by_port.setdefault(port, []).append((ip, summary))
    return by_port


def _holders(publishers: Iterable[tuple[str, Mapping[str, Any]]], host: str) -> list[Mapping[str, Any]]:
    """The containers publishing on an address that collides with `host`, each once, in list order."""
    held: list[Mapping[str, Any]] = []
    for ip, summary in publishers:
        if overlaps(ip, host) and not any(c is summary for c in held):
            held.append(summary)
    return held


def check_host_ports(desired: Iterable[DesiredResource], manifest: Manifest, check: PortCheck) -> list[str]:
    """PortTakenError naming each taken port at its field; otherwise the warnings to show with the plan."""
    issues, warnings = port_conflicts(wanted_ports(desired, {w.name: w.index for w in manifest.workloads}), check)
    if issues:
        raise PortTakenError(positioned(issues, manifest.positions), hint=PORT_HINT)
    return warnings


def _managed(summary: Mapping[str, Any]) -> bool:
    return (summary.get("Labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY


def port_error(text: str) -> str | None:
    """Docker's error for a port that is taken, as one sentence (None for any other error)."""
    for pattern in _DOCKER_PORT_ERRORS:
        found = pattern.search(text)
        if found:
            holder = "another container" if "allocated" in found.group(0) else "a process on the Docker host"
            where = f"{found.group('host')}:{found.group('port')}"
            return f"host port {where} is already taken by {holder} (hint: {PORT_HINT}; `plan` names what holds it)"
    return None
