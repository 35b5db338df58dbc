"""Pure translation: manifest workload -> the canonical spec that is hashed and recorded in the spec label.

Docker create arguments are derived from this spec in create_args.py, and names and labels come from
providers/docker/labels.py, so the spec is the single input of everything created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from toolhive_apply.engine.resource import Spec
from toolhive_apply.manifest.model import DEFAULT_TARGET_PORT, Manifest, Workload
from toolhive_apply.manifest.mounts import workload_mounts
from toolhive_apply.manifest.vmcp import VMCP_ONLY
from toolhive_apply.providers.docker.labels import (
    egress_name,
    gate_name,
    isolation_network,
    proxy_name,
)
from toolhive_apply.providers.workload.endpoint import DOCUMENTS_KEY, endpoint_spec
from toolhive_apply.providers.workload.observability import spec_fields as observe_spec_fields

EGRESS_PORT: Final = 3128
PROXY_LISTEN_PORT: Final = 8099
"""The port the workload proxy listens on inside its own container (published as the workload's proxy_port). Not
DEFAULT_TARGET_PORT (the MCP server's port in *its* container, 8080): one number per meaning, so a mix-up shows."""


LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", ""})
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
DEFAULT_BRIDGE: Final = "bridge"
BUILTIN_PROFILES: Final[Mapping[str, Mapping[str, Any]]] = {
    "none": {"name": "none", "network": {"outbound": {}, "inbound": {}}},
    "network": {"name": "network", "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}}},
}


HTTP_TRANSPORTS: Final = ("sse", "streamable-http")


def resolve_profile(profile: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """ToolHive's order: explicit object > built-in name (`stdio` = `none`) > the `network` built-in."""
    if profile is None:
        return dict(BUILTIN_PROFILES["network"])
    if isinstance(profile, str):
        return dict(BUILTIN_PROFILES["none" if profile == "stdio" else profile])
    return dict(profile)


def resolve_mounts(workload: Workload, profile: Mapping[str, Any]) -> list[str]:
    """`volumes` and profile read/write lists as Docker binds `host:container:mode`, one per target, write winning.

    The same parse the manifest checks judged (manifest/mounts.py), so the applied mount is the checked one.
    """
    return [mount.bind for mount in workload_mounts(workload.base_dir, profile, workload.volumes)]


def uses_gate(spec: Spec) -> bool:
    """A stdio server (not a remote one) is reached through the Docker API, so its unit has a docker gate."""
    return not spec.get("remote") and spec.get("transport") == "stdio"


def stdio_server_network(spec: Spec) -> str | None:
    """Where a non-isolated stdio server lives: Docker's default bridge, away from every proxy (it needs to reach
    none: the proxy reaches it through the gate, not the network). None: the usual rules apply (an isolated server
    on its internal network, where its proxy is not either; a profile's own network mode; HTTP servers)."""
    if uses_gate(spec) and not isolated(spec) and network_mode(spec) is None:
        return DEFAULT_BRIDGE
    return None


def isolated(spec: Spec) -> bool:
    """Effective isolation: asked for, a container of ours, and bridge networking (ToolHive drops it otherwise)."""
    return bool(spec["network_isolation"]) and not spec.get("remote") and network_mode(spec) is None


def egress_rules(spec: Spec) -> dict[str, Any] | None:
    """What the egress proxy allows, or None when nothing is allowed out at all (no egress container).

    `allow_host` is kept beside `insecure_allow_all`: allow-all reaches public addresses only, and a listed host
    may also be a private one. `allow_docker_gateway` alone opens the Docker host's gateways, as in ToolHive.
    """
    if not isolated(spec):
        return None
    outbound = (spec["permission_profile"].get("network") or {}).get("outbound") or {}
    rules = {
        "allow_all": bool(outbound.get("insecure_allow_all")),
        "allow_host": sorted({str(h) for h in outbound.get("allow_host") or ()}),
        "allow_port": sorted({int(p) for p in outbound.get("allow_port") or ()}),
        "allow_docker_gateway": bool(spec.get("allow_docker_gateway")),
    }
    if not (rules["allow_all"] or rules["allow_host"] or rules["allow_docker_gateway"]):
        return None
    return rules


def workload_spec(workload: Workload, manifest: Manifest, port: int, image_id: str | None) -> dict[str, Any]:
    """The canonical desired spec: everything that shapes the container, and nothing secret."""
    transport = workload.transport or ("streamable-http" if workload.url else "stdio")
    profile = resolve_profile(workload.permission_profile)
    spec: dict[str, Any] = {
        "name": workload.name,
        "description": workload.description,
        "image": workload.image,
        "cmd_arguments": list(workload.cmd_arguments),
        "transport": transport,
        "proxy_mode": (workload.proxy_mode or "streamable-http") if transport == "stdio" else transport,
        "proxy_port": port,
        "target_port": (workload.target_port or DEFAULT_TARGET_PORT) if transport in HTTP_TRANSPORTS else 0,
        "host": workload.host or manifest.settings.default_host,
        "env_vars": dict(sorted(workload.env_vars.items())),
        "secrets": [{"name": s.name, "target": s.target, "as": s.delivery} for s in workload.secrets],
        "volumes": resolve_mounts(workload, profile),
        "permission_profile": profile,
        # the acknowledgements the spec was checked with: a saved plan's specs are checked again with them
        "allow_privileged": workload.allow_privileged,
        "allow_host_paths": [str(workload.base_dir / p) for p in workload.allow_host_paths],  # absolute, as judged
        "network_isolation": bool(workload.network_isolation),
        "group": workload.group,
        "tools": list(workload.tools),
        "tools_override": {k: dict(v) for k, v in sorted(workload.tools_override.items())},
        "trust_proxy_headers": workload.trust_proxy_headers,
        "labels": dict(sorted(workload.labels.items())),
        "prune": workload.prune,
        "ready_timeout": workload.ready_timeout or manifest.settings.ready_timeout,
        "proxy": {"image": manifest.settings.proxy_image, "base_image": manifest.settings.proxy_base_image},
    }
    if workload.session_ttl is not None:
        spec["session_ttl"] = workload.session_ttl  # only when set: existing specs (and their hashes) are unchanged
    if transport == "stdio" and not workload.url:
        spec["session_mode"] = workload.session_mode or "shared"
    if image_id:
        spec["image_id"] = image_id
    if workload.registry_server:
        spec["registry_server"] = workload.registry_server
    if workload.allow_docker_gateway:  # only when set, so specs (and hashes) without it stay as they were
        spec["allow_docker_gateway"] = True
    spec.update(observe_spec_fields(workload, manifest))  # audit/telemetry only when set: other hashes unchanged
    if workload.url:
        spec.update(remote_spec(workload))
    from toolhive_apply.providers.gateway import backend_hosts, served_by_gateway_only  # (builds on this module)

    if hosts := backend_hosts(manifest, workload.name):  # only when set: specs (and hashes) without it stay
        spec["gateway_hosts"] = hosts
    if served_by_gateway_only(manifest, workload):
        spec["serve"] = VMCP_ONLY
    endpoint = endpoint_spec(workload, manifest)  # only when the workload has endpoint settings
    if DOCUMENTS_KEY in spec and DOCUMENTS_KEY in endpoint:  # the collector CA bundle beside a JWKS
        endpoint[DOCUMENTS_KEY] = {**spec[DOCUMENTS_KEY], **endpoint[DOCUMENTS_KEY]}
    spec.update(endpoint)
    spec["parts"] = unit_parts(spec, manifest.settings.stack)
    return spec


def unit_parts(spec: Spec, stack: str) -> list[str]:
    """The Docker objects this workload is made of, as a plan names them."""
    if spec.get("remote"):
        return [f"container {spec['name']} (proxy to {spec['url']})"]
    if spec.get("serve") and spec["transport"] != "stdio":
        return [f"container {spec['name']} (no proxy, no port: served through its group's vMCP gateway only)"]
    proxy = f"container {proxy_name(spec['name'])}"
    if spec.get("serve"):
        proxy += " (no port: served through its group's vMCP gateway only)"
    parts = [f"container {spec['name']}", proxy]
    if uses_gate(spec):
        parts.append(f"container {gate_name(spec['name'])} (docker gate, no network)")
    if egress_rules(spec) is not None:
        parts.append(f"container {egress_name(spec['name'])} (egress proxy)")
    if isolated(spec):
        parts.append(f"network {isolation_network(stack, spec['name'])} (internal)")
    return parts


REMOTE_HEADER_ENV = "THV_HEADER_{index}"


REMOTE_BEARER_ENV = "THV_BEARER_TOKEN"


def remote_spec(workload: Workload) -> dict[str, Any]:
    """A remote server: only a proxy runs, forwarding to `url`; header and token secrets reach it as env vars."""
    headers = []
    secrets = []
    for index, header in enumerate(workload.headers):
        if header.get("secret"):
            env = REMOTE_HEADER_ENV.format(index=index)
            headers.append({"name": header["name"], "env": env})
            secrets.append({"name": header["secret"], "target": env, "as": "env"})
        else:
            headers.append({"name": header["name"], "value": header.get("value", "")})
    oauth = workload.oauth_config or {}
    bearer = oauth.get("bearer_token")
    if bearer:
        secrets.append({"name": bearer["name"], "target": REMOTE_BEARER_ENV, "as": "env"})
    return {"remote": True, "url": workload.url, "image": None, "headers": headers, "secrets": secrets}


def network_mode(spec: Spec) -> str | None:
    mode = spec["permission_profile"].get("network", {}).get("mode") or ""
    return None if mode in ("", "bridge", "default") else str(mode)


def client_host(spec: Spec) -> str:
    """The one rule for the address a client on this machine connects to (client files, export, readiness): the
    address the proxy's port is published on, or loopback when that is a wildcard. A port published on one
    non-loopback address only is not reachable at 127.0.0.1."""
    host = str(spec.get("host") or "")
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def workload_url(spec: Spec, transport: str | None = None) -> str:
    """ToolHive's client URL shape (pkg/transport/url.go): /mcp, or /sse#name for SSE, on `client_host`.

    `transport` picks the endpoint (the proxy serves both for every workload); by default the proxy mode's.
    """
    host = client_host(spec)
    where = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL
    if (transport or spec["proxy_mode"]) == "sse":
        return f"http://{where}:{spec['proxy_port']}/sse#{spec['name']}"
    return f"http://{where}:{spec['proxy_port']}/mcp"


def split_image(ref: str) -> tuple[str, str]:
    """`repo:tag` -> (repo, tag), leaving registry ports (`host:5000/x`) alone; default tag `latest`."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"
