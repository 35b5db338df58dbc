"""From one container list and one network list to observed workloads: pure, so every rule is tested on data.

A workload is a unit: the MCP container (or, for a remote server, its proxy alone), its proxy, for a stdio server
its docker gate, and when isolated its egress proxy and internal network. Helpers belong to their server only under
their proper names; a helper or network whose server is gone, or a container renamed aside by an interrupted replace,
is an orphan and is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from toolhive_apply.engine.resource import DRIFTED, Kind, ObservedResource, ResourceId, Status
from toolhive_apply.providers.docker.labels import (
    LABEL_HASH,
    LABEL_HASH_VERSION,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_SPEC,
    ROLE_EGRESS,
    ROLE_GATE,
    ROLE_ISOLATION,
    ROLE_PROXY,
    TH_LABEL,
    egress_name,
    gate_name,
    proxy_name,
    stack_network,
)
from toolhive_apply.providers.gateway import has_proxy
from toolhive_apply.providers.workload.create_args import isolation_network_sound
from toolhive_apply.providers.workload.endpoint import merge_endpoint
from toolhive_apply.providers.workload.spec import egress_rules, isolated, stdio_server_network, uses_gate
from toolhive_apply.providers.workload.spec_model import WorkloadSpec

HELPER_NAMES = {ROLE_PROXY: proxy_name, ROLE_EGRESS: egress_name, ROLE_GATE: gate_name}


def container_name(summary: dict[str, Any]) -> str:
    names = summary.get("Names") or ["/?"]
    return str(names[0]).lstrip("/")


def _labels(summary: dict[str, Any]) -> dict[str, str]:
    return summary.get("Labels") or {}


def parse_spec(labels: dict[str, str]) -> dict[str, Any] | None:
    try:
        spec = json.loads(labels.get(LABEL_SPEC, ""))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def observe_units(
    stack: str, containers: Iterable[dict[str, Any]], networks: Iterable[dict[str, Any]], wanted: Collection[str]
) -> dict[ResourceId, ObservedResource]:
    """Every workload unit of the stack, and every orphan; `wanted` names keep their networks out of the orphans."""
    owned = [c for c in containers if _labels(c).get(TH_LABEL) == "true"]
    networks = list(networks)
    helpers: dict[str, dict[str, dict[str, Any]]] = {role: {} for role in HELPER_NAMES}
    orphans: list[dict[str, Any]] = []
    servers = []
    for summary in owned:
        role = _labels(summary).get(LABEL_ROLE)
        if role in HELPER_NAMES:
            name = _labels(summary).get(LABEL_NAME, "")
            if container_name(summary) == HELPER_NAMES[role](name):
                helpers[role][name] = summary
            else:
                orphans.append(summary)  # set aside by an interrupted replace
        else:
            servers.append(summary)
    own_networks = {_labels(n).get(LABEL_NAME, ""): n for n in networks if _labels(n).get(LABEL_ROLE) == ROLE_ISOLATION}
    observed: dict[ResourceId, ObservedResource] = {}
    for summary in servers:
        name = container_name(summary)
        found = {role: helpers[role].pop(name, None) for role in HELPER_NAMES}
        resource, is_isolated = _owned(stack, summary, found, own_networks.get(name))
        if resource.status != Status.ORPHANED and is_isolated:
            own_networks.pop(name, None)  # a network beside a server that is not isolated is a leftover
        observed[resource.id] = resource
    for summary in [*orphans, *(s for by_name in helpers.values() for s in by_name.values())]:
        name = container_name(summary)
        observed[ResourceId(Kind.WORKLOAD, name)] = _orphan(stack, summary["Id"], name, {"container_name": name})
    servers_by_name = {container_name(s) for s in servers}
    for name, network in own_networks.items():
        if name not in wanted or name in servers_by_name:  # a desired workload being created reuses its network
            rid = ResourceId(Kind.WORKLOAD, str(network.get("Name")))
            observed[rid] = _orphan(stack, "", rid.name, {"network": network.get("Name")})
    if not owned and not wanted:
        observed.update(_unused_stack_network(stack, networks))
    return observed


def _unused_stack_network(stack: str, networks: Iterable[dict[str, Any]]) -> dict[ResourceId, ObservedResource]:
    """The stack's shared network with no unit of the stack left (a first create failed, say): an orphan, so destroy
    shows and removes it; while any workload is wanted it is kept for them."""
    shared = stack_network(stack)
    for network in networks:
        if network.get("Name") == shared and not _labels(network).get(LABEL_ROLE):
            rid = ResourceId(Kind.WORKLOAD, shared)
            return {rid: _orphan(stack, "", shared, {"network": shared})}
    return {}


def recorded_spec(spec: Mapping[str, Any] | None) -> WorkloadSpec | None:
    """The typed spec of a recorded document, or None when it cannot be read as one (written by a version whose
    spec lacked a key this one needs): such a unit is judged by its hash alone."""
    if spec is None:
        return None
    try:
        return WorkloadSpec.from_document(spec)
    except (KeyError, AttributeError, TypeError, ValueError):
        return None


def _isolation_of(typed: WorkloadSpec | None) -> tuple[bool, bool]:
    """(isolated, has an egress proxy) from a recorded spec; a spec from an older version counts as neither and
    is judged by its hash alone."""
    try:
        return (typed is not None and isolated(typed), typed is not None and egress_rules(typed) is not None)
    except (KeyError, AttributeError, TypeError):
        return (False, False)


def _orphan(stack: str, handle: str, name: str, facts: dict[str, Any]) -> ObservedResource:
    rid = ResourceId(Kind.WORKLOAD, name)
    return ObservedResource(
        rid, handle, True, stack, None, None, Status.ORPHANED, None, {"container_id": handle, **facts}
    )


def _owned(
    stack: str, summary: dict[str, Any], helpers: dict[str, dict[str, Any] | None], network: dict[str, Any] | None
) -> tuple[ObservedResource, bool]:
    """The observed unit of a server container, and whether its recorded spec is isolated (its network is kept)."""
    labels = _labels(summary)
    name = container_name(summary)
    if name != labels.get(LABEL_NAME, name):
        # left behind by an interrupted replace
        return _orphan(stack, summary["Id"], name, {"container_name": name}), False
    spec = parse_spec(labels)
    proxy, egress, gate = helpers[ROLE_PROXY], helpers[ROLE_EGRESS], helpers[ROLE_GATE]
    recorded_hash = labels.get(LABEL_HASH)
    if spec is not None and proxy is not None:
        spec, recorded_hash = merge_endpoint(spec, recorded_hash, _labels(proxy))  # the endpoint is the proxy's
    if spec is not None and summary.get("ImageID") and "image_id" in spec:
        spec = {**spec, "image_id": summary["ImageID"]}
    facts: dict[str, Any] = {
        "container_id": summary["Id"],
        "image_id": summary.get("ImageID"),
        "container_name": name,
        "proxy_id": proxy["Id"] if proxy else None,
        "proxy_state": str(proxy.get("State")) if proxy else "missing",
        "gate_id": gate["Id"] if gate else None,
        "gate_state": str(gate.get("State")) if gate else "missing",
        "egress_id": egress["Id"] if egress else None,
        "egress_state": str(egress.get("State")) if egress else "missing",
        "network": network.get("Name") if network else None,
        "network_sound": bool(network) and isolation_network_sound(network or {}),
        "attached": sorted((summary.get("NetworkSettings") or {}).get("Networks") or {}),
    }
    typed = recorded_spec(spec)  # converted once: the status and the isolation both read it
    isolation = _isolation_of(typed)
    resource = ObservedResource(
        ResourceId(Kind.WORKLOAD, name),
        summary["Id"],
        True,
        stack,
        recorded_hash,
        labels.get(LABEL_HASH_VERSION),
        _status(str(summary.get("State", "unknown")), spec, typed, isolation, facts),
        spec,
        facts,
    )
    return resource, isolation[0]


def _status(
    state: str,
    spec: dict[str, Any] | None,
    typed: WorkloadSpec | None,
    isolation: tuple[bool, bool],
    facts: dict[str, Any],
) -> str:
    """`running` only when every part of the unit runs; otherwise which part is not (planned as a start)."""
    if state != "running" or spec is None or spec.get("remote"):
        return state
    if facts["proxy_state"] != "running" and (typed is None or has_proxy(typed)):
        return f"proxy {facts['proxy_state']}"
    is_isolated, needs_egress = isolation
    if is_isolated and facts["network"] is None:
        return f"{DRIFTED}internal network missing"
    if is_isolated and not facts["network_sound"]:
        # made by an older version: internal, but with the host's address on it (the server reached the host)
        return f"{DRIFTED}internal network {facts['network']} lets the server reach the Docker host: remade"
    if is_isolated and facts["attached"] != [facts["network"]]:
        return f"{DRIFTED}attached to {', '.join(facts['attached']) or 'no network'}"
    if needs_egress and facts["egress_state"] != "running":
        return f"egress {facts['egress_state']}"
    return _stdio_status(state, typed, facts)


def _stdio_status(state: str, spec: WorkloadSpec | None, facts: dict[str, Any]) -> str:
    """A stdio unit also needs its docker gate, and a non-isolated stdio server lives on the default bridge only
    (an older unit on the stack network could reach every proxy: replaced)."""
    if spec is None:
        return state  # a spec from an older version: judged by its hash alone
    try:
        gated, bridge = uses_gate(spec), stdio_server_network(spec)
    except (KeyError, AttributeError, TypeError):
        return state
    if gated and facts["gate_state"] != "running":
        return f"gate {facts['gate_state']}"
    if bridge is not None and facts["attached"] != [bridge]:
        return f"{DRIFTED}attached to {', '.join(facts['attached']) or 'no network'}"
    return state
