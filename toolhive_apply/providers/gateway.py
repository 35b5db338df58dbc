"""A group's vMCP gateway as a planned container: one proxy container in ``vmcp`` mode per group with ``vmcp``.

It is planned as a workload with no server of its own (like a remote workload: the proxy *is* the unit), so it is
labelled, hashed, drift-repaired, restarted by Docker's policy, published on its host port and exported by the same
code as every workload. Its resource name is its client entry name (``vmcp.name`` or the group's), which validate
keeps apart from workload names. Backends are the group's workloads as the gateway reaches them: each workload's
proxy on the stack network, or (``serve: vmcp-only``) the workload itself with no proxy: an HTTP server on its own
port, a stdio server through its docker gate.

A stdio server served ``vmcp-only`` is its container and its docker gate only. The gate (still the only holder of
the Docker socket, still with no network, still letting through that one container) listens in a *named* volume
(``labels.gate_volume_name``), and the gateway mounts each such volume read-only at ``gateway_gate_dir(backend)``:
a unix socket can be connected to on a read-only mount, and the gateway cannot put a socket of its own in its place.
The gateway attaches through it the way a workload proxy does (``proxy/vmcp_stdio.py``). The volume's name does not
change when the backend is replaced, so a backend's own replace leaves the gateway as it is; the mounts follow the
backend set, which replaces the gateway anyway (below). A volume goes with the last of its gate and the gateway: each
tries to remove it once its own container is gone, and Docker refuses while the other still uses it.

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
from toolhive_apply.providers.docker.labels import gate_volume_name, proxy_name
from toolhive_apply.providers.workload.endpoint import endpoint_proxy_config, endpoint_spec
from toolhive_apply.providers.workload.spec import LOOPBACK_HOSTS, PROXY_LISTEN_PORT, gate_in_named_volume
from toolhive_apply.providers.workload.spec_model import WorkloadSpec, thaw

GATEWAY_DESCRIPTION: Final = "vMCP gateway of group {group}"
BACKEND_CALL_TIMEOUT: Final = 60.0
GATEWAY_GATES_DIR: Final = "/run/toolhive-gates"
"""Where the gateway mounts its stdio backends' gate volumes, one directory per backend."""
GATE_SOCKET_FILE: Final = "docker.sock"
"""The gate's socket in its volume (create_args.GATE_SOCKET is the same file as the gate sees it)."""


def gateway_name(group: Group) -> str:
    """The gateway's container, resource and client-entry name."""
    assert group.vmcp is not None
    return group.vmcp.name or group.name


def gateway_gate_dir(backend: str) -> str:
    return f"{GATEWAY_GATES_DIR}/{backend}"


def backend_entry(spec: WorkloadSpec, stack: str) -> dict[str, str]:
    """How the gateway reaches a workload, as its spec records it: a stdio server served vmcp-only by its gate's
    volume (mounted read-only), anything else by URL on the stack network: an HTTP server's own port when served
    vmcp-only, its proxy otherwise (a remote workload's proxy carries the workload's name)."""
    if gate_in_named_volume(spec):
        return {"name": spec.name, "gate_volume": gate_volume_name(stack, spec.name)}
    if not has_proxy(spec):
        return {"name": spec.name, "url": f"http://{spec.name}:{spec.target_port}/mcp"}
    host = spec.name if spec.remote else proxy_name(spec.name)
    return {"name": spec.name, "url": f"http://{host}:{PROXY_LISTEN_PORT}/mcp"}


def gateway_spec(group: Group, manifest: Manifest, workload_specs: Mapping[str, WorkloadSpec]) -> WorkloadSpec:
    """The canonical spec of the gateway of ``group`` (``workload_specs`` by workload name, as planned)."""
    assert group.vmcp is not None
    name = gateway_name(group)
    settings = manifest.settings
    backends = [
        backend_entry(workload_specs[w.name], settings.stack)
        for w in members(manifest, group.name)
        if w.name in workload_specs
    ]
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
            "backends": [backend_config(dict(b)) for b in vmcp["backends"]],
            "aggregation": dict(vmcp["aggregation"]),
            "call_timeout": BACKEND_CALL_TIMEOUT,
        },
    }
    if spec.host not in LOOPBACK_HOSTS:
        config["allowed_hosts"] = [spec.host]
    config.update(endpoint_proxy_config(spec))  # authentication, Cedar and origins, as a workload proxy's
    return config


def backend_config(entry: Mapping[str, str]) -> dict[str, str]:
    """A backend of the gateway's THV_PROXY_CONFIG: its URL, or the gate socket in the backend's mounted volume."""
    if "gate_volume" in entry:
        return {"name": entry["name"], "docker_socket": f"{gateway_gate_dir(entry['name'])}/{GATE_SOCKET_FILE}"}
    return {"name": entry["name"], "url": entry["url"]}


def gate_volumes(spec: WorkloadSpec) -> dict[str, str]:
    """The gate volumes a gateway mounts, by backend name (none for other workloads)."""
    backends = thaw(spec.vmcp)["backends"] if spec.vmcp is not None else []
    return {b["name"]: b["gate_volume"] for b in backends if "gate_volume" in b}


def gateway_groups(manifest: Manifest, groups: Sequence[str]) -> dict[str, Group]:
    """The groups among ``groups`` that have a gateway, by name."""
    return {g.name: g for g in manifest.groups if g.vmcp is not None and g.name in groups}


def gateway_specs(manifest: Manifest, workload_specs: Mapping[str, WorkloadSpec]) -> list[tuple[Group, WorkloadSpec]]:
    return [(g, gateway_spec(g, manifest, workload_specs)) for g in manifest.groups if g.vmcp is not None]


def served_by_gateway_only(manifest: Manifest, workload: Workload) -> bool:
    """``serve: vmcp-only`` in effect: a container of a group with a gateway (validate refuses the rest)."""
    return vmcp_only(manifest, workload) and not workload.url


def has_proxy(spec: WorkloadSpec) -> bool:
    """Whether a (non-remote) workload unit has a proxy container: all but those served through the gateway only
    (an HTTP server is reached on its port, a stdio server through its docker gate)."""
    return spec.serve != VMCP_ONLY


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
    if served_by_gateway_only(manifest, entry):  # no proxy: an HTTP server is reached directly, stdio by its gate
        return []
    return [entry.name if entry.url else proxy_name(entry.name)]
