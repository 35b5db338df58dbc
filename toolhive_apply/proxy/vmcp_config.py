"""The ``vmcp`` section of ``THV_PROXY_CONFIG``: a group gateway's backends and its aggregation rules.

The aggregation vocabulary is ToolHive's vMCP one (conflict_resolution prefix | priority | manual, prefix_format,
priority_order, per-workload filter and overrides), so the manifest, this document and ``export --vmcp-config`` say
the same thing. Problems are appended to the caller's list, as the rest of the proxy configuration reports them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

DEFAULT_PREFIX_FORMAT: Final = "{workload}_"
DEFAULT_CALL_TIMEOUT: Final = 60.0
"""Seconds a tool call may take at a backend before the client gets a JSON-RPC error."""
DEFAULT_LIST_TIMEOUT: Final = 10.0
"""Seconds a backend may take to initialize or list; past it the backend counts as down (its tools omitted)."""
DEFAULT_REFRESH_INTERVAL: Final = 15.0
"""Seconds between re-lists of a backend that is up (a backend that is down is retried on a shorter backoff)."""
TOOL_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
"""The MCP specification's tool-name rule (2025-11-25): 1 to 128 of ASCII letters, digits, ``_``, ``-`` and ``.``."""
_BACKEND_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class Strategy(StrEnum):
    """How colliding tool names of several backends are resolved (ToolHive vMCP's ``conflictResolution``)."""

    PREFIX = "prefix"
    PRIORITY = "priority"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Rename:
    """A per-backend override of one tool: a new name and/or description."""

    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class WorkloadTools:
    """One backend's filter (the tool names it exposes, by the backend's own names; None = all) and overrides."""

    workload: str
    filter: frozenset[str] | None = None
    overrides: Mapping[str, Rename] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Aggregation:
    strategy: Strategy = Strategy.PREFIX
    prefix_format: str = DEFAULT_PREFIX_FORMAT
    priority_order: tuple[str, ...] = ()
    tools: Mapping[str, WorkloadTools] = field(default_factory=dict)

    def for_backend(self, name: str) -> WorkloadTools:
        return self.tools.get(name) or WorkloadTools(name)

    def prefix(self, backend: str) -> str:
        return self.prefix_format.replace("{workload}", backend)


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A backend: the workload's name (used by prefixes and priority) and how to reach it: its streamable-HTTP MCP
    URL, or (a stdio server with no proxy of its own) its container through the docker gate listening on
    ``docker_socket``. Invariant: exactly one of ``url`` and ``docker_socket`` is set."""

    name: str
    url: str = ""
    docker_socket: str = ""

    @property
    def stdio(self) -> bool:
        return bool(self.docker_socket)


@dataclass(frozen=True, slots=True)
class VmcpConfig:
    backends: tuple[BackendSpec, ...]
    aggregation: Aggregation = field(default_factory=Aggregation)
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    list_timeout: float = DEFAULT_LIST_TIMEOUT
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL


def parse_vmcp(raw: object, problems: list[str]) -> VmcpConfig | None:
    """The gateway's section, or None with the reasons appended to ``problems``."""
    if not isinstance(raw, dict):
        problems.append("vmcp: required in vmcp mode, an object with 'backends' and 'aggregation'")
        return None
    unknown = sorted(set(raw) - {"backends", "aggregation", "call_timeout", "list_timeout", "refresh_interval"})
    if unknown:
        problems.append(f"vmcp: unknown keys {unknown}")
    before = len(problems)
    backends = _backends(raw.get("backends"), problems)
    aggregation = parse_aggregation(raw.get("aggregation") or {}, problems, "vmcp.aggregation")
    timeouts = {key: _seconds(raw, key, problems) for key in ("call_timeout", "list_timeout", "refresh_interval")}
    if len(problems) > before or aggregation is None:
        return None
    return VmcpConfig(backends, aggregation, **{k: v for k, v in timeouts.items() if v is not None})


def _seconds(raw: Mapping[str, Any], key: str, problems: list[str]) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.1 <= value <= 3600:
        problems.append(f"vmcp.{key}: must be a number of seconds from 0.1 to 3600")
        return None
    return float(value)


def _backends(raw: object, problems: list[str]) -> tuple[BackendSpec, ...]:
    if not isinstance(raw, list):
        problems.append("vmcp.backends: must be a list of {name, url} or {name, docker_socket}")
        return ()
    backends: list[BackendSpec] = []
    for index, item in enumerate(raw):
        where = f"vmcp.backends[{index}]"
        if not isinstance(item, dict) or set(item) not in ({"name", "url"}, {"name", "docker_socket"}):
            problems.append(f"{where}: must be an object with exactly 'name' and one of 'url' or 'docker_socket'")
            continue
        name = item["name"]
        if not isinstance(name, str) or not _BACKEND_NAME.fullmatch(name):
            problems.append(f"{where}.name: must be a workload name")
            continue
        backend = _backend(name, item, where, problems)
        if backend is None:
            continue
        if any(b.name == name for b in backends):
            problems.append(f"{where}.name: {name!r} appears twice")
            continue
        backends.append(backend)
    return tuple(backends)


def _backend(name: str, item: Mapping[str, Any], where: str, problems: list[str]) -> BackendSpec | None:
    """A URL backend, or a stdio one reached through the gate socket at an absolute path (the container is the
    workload's own name, the only one that gate lets through)."""
    if "docker_socket" in item:
        socket = item["docker_socket"]
        if not isinstance(socket, str) or not socket.startswith("/"):
            problems.append(f"{where}.docker_socket: must be an absolute path")
            return None
        return BackendSpec(name, docker_socket=socket)
    url = item["url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname:
        problems.append(f"{where}.url: must be an http:// URL with a host")
        return None
    return BackendSpec(name, url=url)


def parse_aggregation(raw: object, problems: list[str], where: str) -> Aggregation | None:
    """ToolHive's ``aggregation`` block in snake case (the manifest's spelling and this document's)."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    before = len(problems)
    unknown = sorted(set(raw) - {"conflict_resolution", "conflict_resolution_config", "tools"})
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    strategy_text = raw.get("conflict_resolution", "prefix")
    try:
        strategy = Strategy(strategy_text)
    except ValueError:
        problems.append(f"{where}.conflict_resolution: must be one of prefix, priority, manual")
        strategy = Strategy.PREFIX
    resolution = raw.get("conflict_resolution_config") or {}
    prefix_format, order = _resolution_config(resolution, problems, f"{where}.conflict_resolution_config")
    tools = _tools(raw.get("tools") or [], problems, f"{where}.tools")
    if len(problems) > before:
        return None
    return Aggregation(strategy, prefix_format, order, tools)


def _resolution_config(raw: object, problems: list[str], where: str) -> tuple[str, tuple[str, ...]]:
    if not isinstance(raw, dict) or set(raw) - {"prefix_format", "priority_order"}:
        problems.append(f"{where}: must be an object with 'prefix_format' and/or 'priority_order'")
        return DEFAULT_PREFIX_FORMAT, ()
    prefix_format = raw.get("prefix_format", DEFAULT_PREFIX_FORMAT)
    if not isinstance(prefix_format, str):
        problems.append(f"{where}.prefix_format: must be a string")
        prefix_format = DEFAULT_PREFIX_FORMAT
    order = raw.get("priority_order", [])
    if not isinstance(order, list) or not all(isinstance(o, str) and o for o in order):
        problems.append(f"{where}.priority_order: must be a list of workload names")
        order = []
    return prefix_format, tuple(order)


def _tools(raw: object, problems: list[str], where: str) -> dict[str, WorkloadTools]:
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list of {{workload, filter, overrides}}")
        return {}
    result: dict[str, WorkloadTools] = {}
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("workload"), str)
            or set(item)
            - {
                "workload",
                "filter",
                "overrides",
            }
        ):
            problems.append(f"{here}: must be an object with 'workload' and optional 'filter' and 'overrides'")
            continue
        workload = item["workload"]
        if workload in result:
            problems.append(f"{here}.workload: {workload!r} appears twice")
            continue
        chosen = item.get("filter")
        if chosen is not None and (not isinstance(chosen, list) or not all(isinstance(n, str) for n in chosen)):
            problems.append(f"{here}.filter: must be a list of tool names")
            chosen = None
        overrides = _overrides(item.get("overrides") or {}, problems, f"{here}.overrides")
        result[workload] = WorkloadTools(workload, frozenset(chosen) if chosen is not None else None, overrides)
    return result


def _overrides(raw: object, problems: list[str], where: str) -> dict[str, Rename]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object of {{tool: {{name?, description?}}}}")
        return {}
    result: dict[str, Rename] = {}
    for tool, spec in raw.items():
        ok = isinstance(spec, dict) and bool(spec) and not set(spec) - {"name", "description"}
        if not ok or not all(isinstance(v, str) and v for v in spec.values()):
            problems.append(f"{where}.{tool}: must be an object with a non-empty 'name' and/or 'description'")
            continue
        result[tool] = Rename(spec.get("name"), spec.get("description"))
    return result
