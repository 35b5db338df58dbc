"""What ``validate`` checks of group gateways (``groups[].vmcp``) and ``serve: vmcp-only``, each at its field.

Tool names are known statically when a workload lists them (the vMCP ``filter``, else the workload's ``tools``); for
those, the gateway's own name resolution is run, so every collision ``manual`` leaves unresolved is named here, and
every name a prefix or override would push outside the MCP tool-name rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import DEFAULT_HOST, Group, Manifest, Workload
from toolhive_apply.manifest.ports import manifest_ports
from toolhive_apply.manifest.vmcp import VMCP_ONLY
from toolhive_apply.manifest.vmcp_auth import gateway_auth_issues
from toolhive_apply.proxy.vmcp_aggregate import resolve_names
from toolhive_apply.proxy.vmcp_config import TOOL_NAME, Strategy, parse_aggregation

Path = tuple[str | int, ...]
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}")


def _issue(group: Group | Workload, path: Path, message: str) -> ManifestIssue:
    return ManifestIssue(group.origin, format_path(path), message)


def members(manifest: Manifest, group: str) -> list[Workload]:
    return [w for w in manifest.workloads if w.group == group]


def vmcp_only(manifest: Manifest, workload: Workload) -> bool:
    """Whether ``workload`` is served through its group's gateway only (its own or its group's ``serve``)."""
    group = next((g for g in manifest.groups if g.name == workload.group), None)
    return workload.serve == VMCP_ONLY or (group is not None and group.serve == VMCP_ONLY)


def check_vmcp(manifest: Manifest) -> Iterator[ManifestIssue]:
    for index, group in enumerate(manifest.groups):
        if group.vmcp is not None:
            yield from _gateway_issues(manifest, index, group)
        elif group.serve == VMCP_ONLY:
            yield _issue(group, ("groups", index, "serve"), "serve: vmcp-only needs a vmcp gateway on the group")
    yield from _serve_issues(manifest)
    yield from _port_issues(manifest)


def _gateway_issues(manifest: Manifest, index: int, group: Group) -> Iterator[ManifestIssue]:
    assert group.vmcp is not None
    where: Path = ("groups", index, "vmcp", "aggregation")
    problems: list[str] = []
    parse_aggregation(group.vmcp.raw_aggregation, problems, "aggregation")
    for problem in problems:
        yield _issue(group, where, problem.removeprefix("aggregation: "))
    workloads = members(manifest, group.name)
    names = {w.name for w in workloads}
    aggregation = group.vmcp.aggregation
    for t_index, name in enumerate(aggregation.tools):
        if name not in names:
            yield _issue(group, (*where, "tools", t_index, "workload"), f"{name!r} is not a workload of the group")
    for p_index, name in enumerate(aggregation.priority_order):
        if name not in names:
            path = (*where, "conflict_resolution_config", "priority_order", p_index)
            yield _issue(group, path, f"{name!r} is not a workload of the group")
    yield from gateway_auth_issues(manifest, index, group)
    yield from _name_rule_issues(group, where, workloads)
    yield from _collisions(group, where, workloads)
    entry = group.vmcp.name or group.name
    if not _CONTAINER_NAME.fullmatch(entry):
        yield _issue(group, ("groups", index, "name"), f"{entry!r} cannot name the gateway's container; set vmcp.name")
    for w in workloads:
        if _serves_sse(manifest, w):
            message = f"workload {w.name!r} serves sse; the gateway reaches streamable-http backends only"
            yield _issue(group, ("groups", index, "vmcp"), message)
    if entry in {w.name for w in manifest.workloads}:
        path = ("groups", index, "vmcp", "name") if group.vmcp.name else ("groups", index, "name")
        yield _issue(group, path, f"the gateway's client entry {entry!r} would have a workload's name; set vmcp.name")


def _serves_sse(manifest: Manifest, workload: Workload) -> bool:
    """What the gateway would reach: the workload's proxy (its proxy_mode for stdio, else its transport), or when
    served vmcp-only the server itself (an HTTP server's transport; a stdio server through its gate, never sse)."""
    if workload.transport in (None, "stdio") and not workload.url:
        return workload.proxy_mode == "sse" and not vmcp_only(manifest, workload)
    return workload.transport == "sse"


def _name_rule_issues(group: Group, where: Path, workloads: list[Workload]) -> Iterator[ManifestIssue]:
    """Prefixes and override names that would push a tool's name outside the MCP tool-name rule."""
    assert group.vmcp is not None
    aggregation = group.vmcp.aggregation
    rule = "the MCP tool-name rule (1-128 of A-Z a-z 0-9 _ - .)"
    if aggregation.strategy is Strategy.PREFIX:
        for w in workloads:
            prefix = aggregation.prefix(w.name)
            if prefix and not TOOL_NAME.fullmatch(prefix):
                path = (*where, "conflict_resolution_config", "prefix_format")
                yield _issue(group, path, f"prefix {prefix!r} (for {w.name}) breaks {rule}")
    for t_index, tools in enumerate(aggregation.tools.values()):
        for tool, rename in tools.overrides.items():
            if rename.name is not None and not TOOL_NAME.fullmatch(rename.name):
                path = (*where, "tools", t_index, "overrides", tool, "name")
                yield _issue(group, path, f"{rename.name[:130]!r} breaks {rule}")


def _known_tools(group: Group, workloads: list[Workload]) -> list[tuple[str, list[str]]]:
    """(workload, tool names) for the workloads whose tools the manifest lists (a vMCP filter, else ``tools``)."""
    assert group.vmcp is not None
    known = []
    for w in workloads:
        chosen = group.vmcp.aggregation.for_backend(w.name).filter
        listed = sorted(chosen) if chosen is not None else list(w.tools)
        if listed:
            known.append((w.name, listed))
    return known


def vmcp_warnings(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Under ``priority``: which known tools the gateway will hide behind another workload's."""
    for index, group in enumerate(manifest.groups):
        if group.vmcp is None or group.vmcp.aggregation.strategy is not Strategy.PRIORITY:
            continue
        resolution = resolve_names(_known_tools(group, members(manifest, group.name)), group.vmcp.aggregation)
        for warning in resolution.warnings:
            yield _issue(group, ("groups", index, "vmcp", "aggregation"), f"warning: {warning}")


def _collisions(group: Group, where: Path, workloads: list[Workload]) -> Iterator[ManifestIssue]:
    """Under ``manual``: the collisions among the tools the manifest knows (listed by a filter or ``tools``)."""
    assert group.vmcp is not None
    aggregation = group.vmcp.aggregation
    if aggregation.strategy is not Strategy.MANUAL:
        return
    resolution = resolve_names(_known_tools(group, workloads), aggregation)
    for name, backends in sorted(resolution.collisions.items()):
        message = (
            f"conflict_resolution manual: tool {name!r} is offered by {' and '.join(backends)}; "
            "rename all but one in tools[].overrides"
        )
        yield _issue(group, (*where, "conflict_resolution"), message)


def _serve_issues(manifest: Manifest) -> Iterator[ManifestIssue]:
    gateways = {g.name for g in manifest.groups if g.vmcp is not None}
    for w in manifest.workloads:
        if not vmcp_only(manifest, w):
            continue
        path: Path = ("workloads", w.index, "serve") if w.serve else ("workloads", w.index, "group")
        if w.group not in gateways:
            yield _issue(w, path, f"serve: vmcp-only needs a vmcp gateway on group {w.group!r}")
        elif w.url:
            yield _issue(w, path, "serve: vmcp-only is for containers; a remote server (url) keeps its proxy")
        elif w.transport in (None, "stdio"):  # reached through its gate, not the network: isolation applies
            yield from _proxy_only_issues(w)
            if w.session_mode == "per-client":
                message = "served vmcp-only, the gateway is the server's one client: use session_mode shared"
                yield _issue(w, ("workloads", w.index, "session_mode"), message)
        elif w.tools or w.tools_override:
            yield from _proxy_only_issues(w, ("tools", "tools_override"))
        elif w.network_isolation:
            yield _issue(w, path, "serve: vmcp-only cannot reach an isolated server (only its proxy is on its network)")


PROXY_ONLY_FIELDS: Final = ("tools", "tools_override", "oidc", "authz_config", "allowed_origins")
"""Settings a workload's own proxy applies (strict_protocol_validation too, when true); served vmcp-only there is
none, and they would silently not apply. A stdio server served so is refused all of them (it had a proxy before);
an HTTP one only its tools settings, as ever (its endpoint settings are left out of its spec: the gateway's
``incoming_auth`` is the endpoint)."""


def _proxy_only_issues(
    w: Workload, fields: tuple[str, ...] = (*PROXY_ONLY_FIELDS, "strict_protocol_validation")
) -> Iterator[ManifestIssue]:
    for field in fields:
        if not getattr(w, field):
            continue
        where = "vmcp.aggregation.tools[].filter and overrides" if field.startswith("tools") else "vmcp.incoming_auth"
        message = f"served vmcp-only, the workload has no proxy to apply it: use the group's {where}"
        yield _issue(w, ("workloads", w.index, field), message)


def _port_issues(manifest: Manifest) -> Iterator[ManifestIssue]:
    """A gateway's host port may be neither another gateway's nor a published workload's."""
    published = manifest_ports(manifest)
    default_host = manifest.settings.default_host or DEFAULT_HOST
    taken: dict[tuple[str, int], str] = {
        (w.host or default_host, published[w.name]): f"workload {w.name!r}"
        for w in manifest.workloads
        if not vmcp_only(manifest, w)
    }
    for index, group in enumerate(manifest.groups):
        if group.vmcp is None:
            continue
        key = (group.vmcp.host or default_host, group.vmcp.port)
        if key in taken:
            path = ("groups", index, "vmcp", "port")
            yield _issue(group, path, f"port {key[1]} on {key[0]} is already used by {taken[key]}")
        else:
            taken[key] = f"the gateway of group {group.name!r}"
