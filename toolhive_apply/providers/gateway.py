"""A group's vMCP gateway as a planned container: one proxy container in ``vmcp`` mode per group with ``vmcp``.

It is planned as a workload with no server of its own (like a remote workload: the proxy *is* the unit), so it is
labelled, hashed, drift-repaired, restarted by Docker's policy, published on its host port and exported by the same
code as every workload. Its resource name is its client entry name (``vmcp.name`` or the group's), which validate
keeps apart from workload names. Backends are the group's workloads as the gateway reaches them on the stack
network: each workload's proxy, or (``serve: vmcp-only``) the HTTP server's own port.

A stdio server served ``vmcp-only`` keeps its proxy and docker gate, but the proxy publishes no host port: the
gateway reaches it on the stack network like any proxy. Why not the gate directly: only the gate may hold the Docker
socket, and it has no network; the gateway would have to mount each stdio backend's gate volume, which ties the
gateway's mounts (not updatable in place) to the backend set and to each backend's own replaces.

A change of the backend list (a workload joins or leaves the group) replaces the gateway: its configuration is in
its environment and the spec it was made from in its labels, and Docker changes neither on a running container. An
in-place update would need a second, mutable record of the applied spec (observed with more than list calls) and a
configuration the gateway re-reads; the replace costs the gateway's clients one reconnect, and no backend changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from toolhive_apply.manifest.model import Group, Manifest, Workload
from toolhive_apply.manifest.vmcp import VMCP_ONLY
from toolhive_apply.manifest.vmcp_auth import gateway_endpoint
from toolhive_apply.manifest.vmcp_checks import members, vmcp_only
from toolhive_apply.providers.docker.labels import proxy_name
from toolhive_apply.providers.workload.endpoint import endpoint_proxy_config, endpoint_spec
from toolhive_apply.providers.workload.spec import LOOPBACK_HOSTS, PROXY_LISTEN_PORT
from toolhive_apply.providers.workload.spec_model import WorkloadSpec, thaw

GATEWAY_DESCRIPTION: Final = "vMCP gateway of group {group}"
BACKEND_CALL_TIMEOUT: Final = 60.0


def gateway_name(group: Group) -> str:
    """The gateway's container, resource and client-entry name."""
    assert group.vmcp is not None
    return group.vmcp.name or group.name


def backend_url(spec: WorkloadSpec) -> str:
    """Where the gateway reaches a workload on the stack network: an HTTP server's own port when served vmcp-only,
    its proxy otherwise (a remote workload's proxy carries the workload's name; a stdio one's has no host port)."""
    if not has_proxy(spec):
        return f"http://{spec.name}:{spec.target_port}/mcp"
    host = spec.name if spec.remote else proxy_name(spec.name)
    return f"http://{host}:{PROXY_LISTEN_PORT}/mcp"


def gateway_spec(group: Group, manifest: Manifest, workload_specs: Mapping[str, WorkloadSpec]) -> WorkloadSpec:
    """The canonical spec of the gateway of ``group`` (``workload_specs`` by workload name, as planned)."""
    assert group.vmcp is not None
    name = gateway_name(group)
    backends = [
        {"name": w.name, "url": backend_url(workload_specs[w.name])}
        for w in members(manifest, group.name)
        if w.name in workload_specs
    ]
    settings = manifest.settings
    spec: dict[str, Any] = {
        "name": name,
        "description": GATEWAY_DESCRIPTION.format(group=group.name),
        "image": None,
        "cmd_arguments": [],
        "transport": "streamable-http",
        "proxy_mode": "streamable-http",
        "proxy_port": group.vmcp.port,
        "target_port": 0,
        "host": group.vmcp.host or settings.default_host,
        "env_vars": {},
        "secrets": [],
        "volumes": [],
        "permission_profile": {"name": "none", "network": {"outbound": {}, "inbound": {}}},
        "allow_privileged": False,
        "allow_host_paths": [],
        "network_isolation": False,
        "group": group.name,
        "tools": [],
        "tools_override": {},
        "trust_proxy_headers": False,
        "labels": {},
        "prune": True,
        "ready_timeout": settings.ready_timeout,
        "proxy": {"image": settings.proxy_image, "base_image": settings.proxy_base_image},
        "remote": True,
        "url": f"http://{name}:{PROXY_LISTEN_PORT}/mcp",
        "headers": [],
        "vmcp": {
            "entry": name,
            "backends": backends,
            "aggregation": dict(group.vmcp.raw_aggregation),
            **({"name": group.vmcp.name} if group.vmcp.name else {}),
        },
        "parts": [f"container {name} (vMCP gateway: {', '.join(b['name'] for b in backends) or 'no workloads'})"],
    }
    # incoming_auth (or settings.auth) as a workload's endpoint: only when set, so other gateways' hashes stay
    spec.update(endpoint_spec(gateway_endpoint(manifest, group), manifest))
    return WorkloadSpec.from_document(spec)


def is_gateway(spec: WorkloadSpec) -> bool:
    return spec.vmcp is not None


def gateway_proxy_config(spec: WorkloadSpec) -> dict[str, Any]:
    """THV_PROXY_CONFIG of a gateway container (the proxy's ``vmcp`` mode)."""
    assert spec.vmcp is not None
    vmcp = thaw(spec.vmcp)
    config: dict[str, Any] = {
        "name": spec.name,
        "mode": "vmcp",
        "listen_port": PROXY_LISTEN_PORT,
        "proxy_mode": "streamable-http",
        "vmcp": {
            "backends": list(vmcp["backends"]),
            "aggregation": dict(vmcp["aggregation"]),
            "call_timeout": BACKEND_CALL_TIMEOUT,
        },
    }
    if spec.host not in LOOPBACK_HOSTS:
        config["allowed_hosts"] = [spec.host]
    config.update(endpoint_proxy_config(spec))  # authentication, Cedar and origins, as a workload proxy's
    return config


def gateway_groups(manifest: Manifest, groups: Sequence[str]) -> dict[str, Group]:
    """The groups among ``groups`` that have a gateway, by name."""
    return {g.name: g for g in manifest.groups if g.vmcp is not None and g.name in groups}


def gateway_specs(manifest: Manifest, workload_specs: Mapping[str, WorkloadSpec]) -> list[tuple[Group, WorkloadSpec]]:
    return [(g, gateway_spec(g, manifest, workload_specs)) for g in manifest.groups if g.vmcp is not None]


def served_by_gateway_only(manifest: Manifest, workload: Workload) -> bool:
    """``serve: vmcp-only`` in effect: a container of a group with a gateway (validate refuses the rest)."""
    return vmcp_only(manifest, workload) and not workload.url


def has_proxy(spec: WorkloadSpec) -> bool:
    """Whether a (non-remote) workload unit has a proxy container: all but HTTP servers served through the gateway
    only (a stdio server is reached through its proxy and gate, whatever it serves)."""
    return spec.serve != VMCP_ONLY or spec.transport == "stdio"


def publishes_port(spec: WorkloadSpec) -> bool:
    """Whether a workload's proxy publishes its host port: not when it is served through the gateway only."""
    return spec.serve != VMCP_ONLY


def backend_hosts(manifest: Manifest, workload: str) -> list[str]:
    """Host names a workload's proxy must accept besides loopback: its own container name, when a gateway of its
    group reaches it over the stack network."""
    entry = manifest.workload(workload)
    if entry is None:
        return []
    group = next((g for g in manifest.groups if g.name == entry.group), None)
    if group is None or group.vmcp is None:
        return []
    if served_by_gateway_only(manifest, entry):  # an HTTP server is reached directly; a stdio one by its proxy
        return [proxy_name(entry.name)] if entry.transport in (None, "stdio") else []
    return [entry.name if entry.url else proxy_name(entry.name)]
