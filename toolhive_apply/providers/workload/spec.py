"""Pure translation: manifest workload -> the canonical spec that is hashed and recorded in the spec label.

Docker create arguments are derived from this spec in create_args.py, and names and labels come from
providers/docker/labels.py, so the spec is the single input of everything created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from toolhive_apply.manifest.model import DEFAULT_TARGET_PORT, Manifest, Workload
from toolhive_apply.manifest.mounts import workload_mounts
from toolhive_apply.manifest.vmcp import VMCP_ONLY
from toolhive_apply.providers.docker.labels import (
    egress_name,
    gate_name,
    gate_volume_name,
    isolation_network,
    proxy_name,
)
from toolhive_apply.providers.workload.endpoint import DOCUMENTS_KEY, endpoint_spec
from toolhive_apply.providers.workload.observability import spec_fields as observe_spec_fields
from toolhive_apply.providers.workload.spec_model import (
    BUILTIN_PROFILES,
    ProxyImages,
    RemoteHeader,
    SecretRef,
    WorkloadSpec,
    freeze,
)

EGRESS_PORT: Final = 3128
PROXY_LISTEN_PORT: Final = 8099
"""The port the workload proxy listens on inside its own container (published as the workload's proxy_port). Not
DEFAULT_TARGET_PORT (the MCP server's port in *its* container, 8080): one number per meaning, so a mix-up shows."""


LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", ""})
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
DEFAULT_BRIDGE: Final = "bridge"


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


def uses_gate(spec: WorkloadSpec) -> bool:
    """A stdio server (not a remote one) is reached through the Docker API, so its unit has a docker gate."""
    return not spec.remote and spec.transport == "stdio"


def gate_in_named_volume(spec: WorkloadSpec) -> bool:
    """A stdio server served vmcp-only has no proxy to share an anonymous volume with: its gate listens in the named
    volume (labels.gate_volume_name) that the group's gateway mounts read-only."""
    return uses_gate(spec) and spec.serve == VMCP_ONLY


def recorded_gate_volume(doc: Mapping[str, Any] | None) -> bool:
    """``gate_in_named_volume`` of a recorded spec document (an observed unit's, possibly of an older version)."""
    if not doc:
        return False
    return doc.get("serve") == VMCP_ONLY and doc.get("transport") == "stdio" and not doc.get("remote")


def stdio_server_network(spec: WorkloadSpec) -> str | None:
    """Where a non-isolated stdio server lives: Docker's default bridge, away from every proxy (it needs to reach
    none: the proxy reaches it through the gate, not the network). None: the usual rules apply (an isolated server
    on its internal network, where its proxy is not either; a profile's own network mode; HTTP servers)."""
    if uses_gate(spec) and not isolated(spec) and network_mode(spec) is None:
        return DEFAULT_BRIDGE
    return None


def isolated(spec: WorkloadSpec) -> bool:
    """Effective isolation: asked for, a container of ours, and bridge networking (ToolHive drops it otherwise)."""
    return spec.network_isolation and not spec.remote and network_mode(spec) is None


def egress_rules(spec: WorkloadSpec) -> dict[str, Any] | None:
    """What the egress proxy allows, or None when nothing is allowed out at all (no egress container).

    `allow_host` is kept beside `insecure_allow_all`: allow-all reaches public addresses only, and a listed host
    may also be a private one. `allow_docker_gateway` alone opens the Docker host's gateways, as in ToolHive.
    """
    if not isolated(spec):
        return None
    outbound = (spec.permission_profile.get("network") or {}).get("outbound") or {}
    rules = {
        "allow_all": bool(outbound.get("insecure_allow_all")),
        "allow_host": sorted({str(h) for h in outbound.get("allow_host") or ()}),
        "allow_port": sorted({int(p) for p in outbound.get("allow_port") or ()}),
        "allow_docker_gateway": spec.allow_docker_gateway,
    }
    if not (rules["allow_all"] or rules["allow_host"] or rules["allow_docker_gateway"]):
        return None
    return rules


def workload_spec(workload: Workload, manifest: Manifest, port: int, image_id: str | None) -> WorkloadSpec:
    """The canonical desired spec: everything that shapes the container, and nothing secret.

    Optional fields stay None unless the workload sets them, so the document (and the hash) of a workload that
    does not use a newer feature is the one it always had."""
    transport = workload.transport or ("streamable-http" if workload.url else "stdio")
    profile = resolve_profile(workload.permission_profile)
    fields: dict[str, Any] = {
        "name": workload.name,
        "description": workload.description,
        "image": workload.image,
        "cmd_arguments": tuple(workload.cmd_arguments),
        "transport": transport,
        "proxy_mode": (workload.proxy_mode or "streamable-http") if transport == "stdio" else transport,
        "proxy_port": port,
        "target_port": (workload.target_port or DEFAULT_TARGET_PORT) if transport in HTTP_TRANSPORTS else 0,
        "host": workload.host or manifest.settings.default_host,
        "env_vars": freeze(dict(sorted(workload.env_vars.items()))),
        "secrets": tuple(SecretRef(s.name, s.target, s.delivery) for s in workload.secrets),
        "volumes": tuple(resolve_mounts(workload, profile)),
        "permission_profile": freeze(profile),
        # the acknowledgements the spec was checked with: a saved plan's specs are checked again with them
        "allow_privileged": workload.allow_privileged,
        "allow_host_paths": tuple(str(workload.base_dir / p) for p in workload.allow_host_paths),  # as judged
        "network_isolation": bool(workload.network_isolation),
        "group": workload.group,
        "tools": tuple(workload.tools),
        "tools_override": freeze({k: dict(v) for k, v in sorted(workload.tools_override.items())}),
        "trust_proxy_headers": workload.trust_proxy_headers,
        "labels": freeze(dict(sorted(workload.labels.items()))),
        "prune": workload.prune,
        "ready_timeout": workload.ready_timeout or manifest.settings.ready_timeout,
        "proxy": ProxyImages(manifest.settings.proxy_image, manifest.settings.proxy_base_image),
        "session_ttl": workload.session_ttl,
        "session_mode": (workload.session_mode or "shared") if transport == "stdio" and not workload.url else None,
        "image_id": image_id or None,
        "registry_server": workload.registry_server or None,
        "allow_docker_gateway": bool(workload.allow_docker_gateway),
    }
    fields.update(observe_spec_fields(workload, manifest))  # audit/telemetry only when set
    if workload.url:
        fields.update(remote_fields(workload))
    from toolhive_apply.providers.gateway import backend_hosts, served_by_gateway_only  # (builds on this module)

    fields["gateway_hosts"] = tuple(backend_hosts(manifest, workload.name)) or None
    fields["serve"] = VMCP_ONLY if served_by_gateway_only(manifest, workload) else None
    # only when the workload has endpoint settings, and a proxy to apply them (not served vmcp-only: the gateway's
    # incoming_auth is the endpoint then, and validate refuses the workload's own settings)
    endpoint = {} if fields["serve"] else endpoint_spec(workload, manifest)
    if DOCUMENTS_KEY in fields and DOCUMENTS_KEY in endpoint:  # the collector CA bundle beside a JWKS
        endpoint[DOCUMENTS_KEY] = {**fields[DOCUMENTS_KEY], **endpoint[DOCUMENTS_KEY]}
    fields.update(endpoint)
    for key in ("audit", "telemetry", "endpoint", DOCUMENTS_KEY):
        if key in fields:
            fields[key] = freeze(fields[key])
    if "proxy_secrets" in fields:
        fields["proxy_secrets"] = tuple(SecretRef.from_document(ref) for ref in fields["proxy_secrets"])
    spec = WorkloadSpec(**fields)
    return spec.with_fields(parts=unit_parts(spec, manifest.settings.stack))


def unit_parts(spec: WorkloadSpec, stack: str) -> tuple[str, ...]:
    """The Docker objects this workload is made of, as a plan names them."""
    if spec.remote:
        return (f"container {spec.name} (proxy to {spec.url})",)
    if spec.serve and spec.transport != "stdio":
        return (f"container {spec.name} (no proxy, no port: served through its group's vMCP gateway only)",)
    if spec.serve:
        parts = [f"container {spec.name} (no proxy, no port: served through its group's vMCP gateway only)"]
        volume = gate_volume_name(stack, spec.name)
        parts.append(f"container {gate_name(spec.name)} (docker gate, no network; listens in volume {volume})")
    else:
        parts = [f"container {spec.name}", f"container {proxy_name(spec.name)}"]
        if uses_gate(spec):
            parts.append(f"container {gate_name(spec.name)} (docker gate, no network)")
    if egress_rules(spec) is not None:
        parts.append(f"container {egress_name(spec.name)} (egress proxy)")
    if isolated(spec):
        parts.append(f"network {isolation_network(stack, spec.name)} (internal)")
    return tuple(parts)


REMOTE_HEADER_ENV = "THV_HEADER_{index}"


REMOTE_BEARER_ENV = "THV_BEARER_TOKEN"


def remote_fields(workload: Workload) -> dict[str, Any]:
    """A remote server: only a proxy runs, forwarding to `url`; header and token secrets reach it as env vars."""
    headers = []
    secrets = []
    for index, header in enumerate(workload.headers):
        if header.get("secret"):
            env = REMOTE_HEADER_ENV.format(index=index)
            headers.append(RemoteHeader(header["name"], env=env))
            secrets.append(SecretRef(header["secret"], env, "env"))
        else:
            headers.append(RemoteHeader(header["name"], value=header.get("value", "")))
    oauth = workload.oauth_config or {}
    bearer = oauth.get("bearer_token")
    if bearer:
        secrets.append(SecretRef(bearer["name"], REMOTE_BEARER_ENV, "env"))
    return {"remote": True, "url": workload.url, "image": None, "headers": tuple(headers), "secrets": tuple(secrets)}


def network_mode(spec: WorkloadSpec) -> str | None:
    mode = (spec.permission_profile.get("network") or {}).get("mode") or ""
    return None if mode in ("", "bridge", "default") else str(mode)


def client_host(spec: WorkloadSpec) -> str:
    """`client_address` of the spec's host."""
    return client_address(spec.host)


def client_address(host: str | None) -> str:
    """The one rule for the address a client on this machine connects to (client files, export, readiness): the
    address the proxy's port is published on, or loopback when that is a wildcard. A port published on one
    non-loopback address only is not reachable at 127.0.0.1."""
    host = host or ""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def workload_url(spec: WorkloadSpec, transport: str | None = None) -> str:
    """ToolHive's client URL shape (pkg/transport/url.go): /mcp, or /sse#name for SSE, on `client_host`.

    `transport` picks the endpoint (the proxy serves both for every workload); by default the proxy mode's.
    """
    return proxy_url(spec.name, spec.host, spec.proxy_port, transport or spec.proxy_mode)


def proxy_url(name: str, host: str | None, port: int, transport: str) -> str:
    """The URL shape itself, from the recorded parts (`thv list` reads them from labels)."""
    address = client_address(host)
    where = f"[{address}]" if ":" in address else address  # an IPv6 literal in a URL
    if transport == "sse":
        return f"http://{where}:{port}/sse#{name}"
    return f"http://{where}:{port}/mcp"


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
