"""Docker create arguments of a workload's unit, from its canonical spec: env, labels, host config and the
THV_PROXY_CONFIG of the proxy, gate and egress containers, and the isolated network. Pure data, so the exact
settings are testable without Docker and the hashed spec stays the single input of what is created."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from docker.types import DriverConfig, Mount

from toolhive_apply.engine.resource import HASH_VERSION, spec_hash
from toolhive_apply.providers.docker.host import DockerHostAddresses
from toolhive_apply.providers.docker.labels import (
    LABEL_GROUP,
    LABEL_HASH,
    LABEL_HASH_VERSION,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_ROLE,
    LABEL_SPEC,
    LABEL_STACK,
    MANAGED_BY,
    ROLE_EGRESS,
    ROLE_GATE,
    ROLE_ISOLATION,
    ROLE_PROXY,
    TH_AUXILIARY,
    TH_BASENAME,
    TH_ISOLATION,
    TH_LABEL,
    TH_NAME,
    TH_PORT,
    TH_TRANSPORT,
    egress_name,
    gate_name,
    isolation_network,
    proxy_name,
)
from toolhive_apply.providers.fields import WORKLOAD_FIELDS
from toolhive_apply.providers.workload.endpoint import endpoint_label, endpoint_proxy_config, server_part
from toolhive_apply.providers.workload.observability import audit_bind, audit_dir_gid, proxy_sections
from toolhive_apply.providers.workload.spec import (
    EGRESS_PORT,
    HTTP_TRANSPORTS,
    LOOPBACK_HOSTS,
    PROXY_LISTEN_PORT,
    REMOTE_BEARER_ENV,
    egress_rules,
    isolated,
    network_mode,
    uses_gate,
)
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.proxy.config import DEFAULT_MAX_PROCESSES
from toolhive_apply.redact import scrubbed_json

PROXY_SOCKET: Final = "/var/run/docker.sock"
LOG_MAX_SIZE: Final = "10m"
LOG_MAX_FILES: Final = 3
"""Every container we create logs to json-file with at most 3 x 10 MiB: Docker's default has no bound."""


HELPER_MEMORY_LIMIT: Final = "256m"
HELPER_PIDS_LIMIT: Final = 128
"""The proxy and egress helpers are one asyncio process each (tens of MiB); the bounds leave ample room. The MCP
server itself gets no memory or pids limit: what a server needs is its own business, and the manifest has no field
for it (ToolHive's neither); it does get the bounded log."""


# The isolated server's network: internal (no route off the host) and, by this bridge-driver option, with no IPv4
# address on the host's side of the bridge. With one (Docker's default, even for internal networks), the server
# reached every host service listening on that gateway or on 0.0.0.0, and through it the other bridges' gateways
# and docker0. The egress and workload proxies still reach the server: containers on the bridge talk directly.
INHIBIT_IPV4: Final = "com.docker.network.bridge.inhibit_ipv4"
ISOLATION_NETWORK_OPTIONS: Final[Mapping[str, str]] = {INHIBIT_IPV4: "true"}


# The host's IPv6 link-local address (fe80::...) is on that bridge too: the isolated server gets no IPv6 at all.
NO_IPV6_SYSCTLS: Final[Mapping[str, str]] = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}


# ToolHive's names for the Docker host; with allow_docker_gateway the egress proxy resolves them (Docker's
# host-gateway is the default bridge's gateway, as on Docker Desktop).
GATEWAY_HOSTS: Final[Mapping[str, str]] = {
    "host.docker.internal": "host-gateway",
    "gateway.docker.internal": "host-gateway",
}
"""Where the docker gate of a stdio workload finds the engine's socket (the only container that has it)."""


GATE_DIR: Final = "/run/toolhive-gate"
GATE_SOCKET: Final = f"{GATE_DIR}/docker.sock"
"""The gate's listening socket, in a volume only the proxy and its gate mount."""


HELPER_USER: Final = "65532:65532"
"""The proxy image's user, set explicitly so gate and proxy share the gate volume whatever image is configured."""


def container_env(spec: WorkloadSpec) -> dict[str, str]:
    """Plain env plus ToolHive's injected MCP_* variables (pkg/environment)."""
    env = dict(spec.env_vars)
    if egress_rules(spec) is not None:
        # ToolHive's variables: programs that honour them reach the egress proxy; others have no way out
        url = f"http://{egress_name(spec.name)}:{EGRESS_PORT}"
        env.update({"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url})
        env.update({"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1"})
    env["MCP_TRANSPORT"] = spec.transport
    if spec.transport in HTTP_TRANSPORTS:
        port = str(spec.target_port)
        env.update({"MCP_PORT": port, "FASTMCP_PORT": port, "MCP_HOST": "0.0.0.0"})
    return env


def container_labels(spec: WorkloadSpec, stack: str) -> dict[str, str]:
    """ToolHive's standard labels, the user's, and our ownership, hash and spec (the endpoint is the proxy's)."""
    record = server_part(spec)
    labels = dict(spec.labels)
    labels.update(
        {
            TH_LABEL: "true",
            TH_NAME: spec.name,
            TH_BASENAME: spec.name,
            TH_TRANSPORT: spec.transport,
            TH_PORT: str(spec.proxy_port),
            TH_ISOLATION: "true" if spec.network_isolation else "false",
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_STACK: stack,
            LABEL_NAME: spec.name,
            LABEL_GROUP: spec.group,
            LABEL_HASH: WORKLOAD_FIELDS.hash(record),
            LABEL_HASH_VERSION: HASH_VERSION,
            LABEL_SPEC: scrubbed_json(record, sort_keys=True, separators=(",", ":")),
        }
    )
    return labels


def host_config_args(spec: WorkloadSpec, network: str) -> dict[str, Any]:
    """ToolHive's defaults: all capabilities dropped, unprivileged unless the profile says so.

    No port is published: clients reach the server only through its proxy, on the stack's network, or (isolated)
    on the workload's own internal network, which has no route out.
    """
    args: dict[str, Any] = {
        "cap_drop": ["ALL"],
        "security_opt": ["label:disable", "no-new-privileges"],
        "privileged": bool(spec.permission_profile.get("privileged", False)),
        "restart_policy": {"Name": "unless-stopped"},
        "binds": list(spec.volumes),
        "network_mode": network_mode(spec) or network,
    }
    if args["privileged"]:
        args["security_opt"] = ["label:disable"]
    args["log_config"] = bounded_log_config()
    if isolated(spec):
        args["sysctls"] = dict(NO_IPV6_SYSCTLS)
    return args


def proxy_config(spec: WorkloadSpec) -> dict[str, Any]:
    """THV_PROXY_CONFIG for the workload's proxy: stdio attach, or pass-through to the server's port."""
    if spec.vmcp:
        from toolhive_apply.providers.gateway import gateway_proxy_config

        return gateway_proxy_config(spec)
    config: dict[str, Any] = {
        "name": spec.name,
        "listen_port": PROXY_LISTEN_PORT,
        "proxy_mode": spec.proxy_mode,
        "docker_api_version": "auto",
    }
    if spec.remote:
        config.update({"mode": "remote", "upstream_url": spec.url, "upstream_transport": spec.transport})
        headers = spec.headers or ()
        config["headers"] = {h.name: h.value for h in headers if h.env is None}
        config["header_env"] = {h.name: h.env for h in headers if h.env is not None}
        if any(ref.target == REMOTE_BEARER_ENV for ref in spec.secrets):
            config["bearer_token_env"] = REMOTE_BEARER_ENV
    elif spec.transport == "stdio":
        config.update({"mode": "stdio", "container": spec.name, "docker_socket": GATE_SOCKET})
        config.update({"session_mode": spec.session_mode or "shared", "max_processes": DEFAULT_MAX_PROCESSES})
    else:
        path = "/sse" if spec.transport == "sse" else "/mcp"
        config.update(
            {
                "mode": "http",
                "upstream_url": f"http://{spec.name}:{spec.target_port}{path}",
                "upstream_transport": spec.transport,
            }
        )
    if spec.host not in LOOPBACK_HOSTS:
        config["allowed_hosts"] = [spec.host]  # the Host check (DNS rebinding) also accepts the published address
    if spec.gateway_hosts:  # the group's vMCP gateway names the proxy by its container name
        config["allowed_hosts"] = [*config.get("allowed_hosts", []), *spec.gateway_hosts]
    if spec.session_ttl:
        config["session_ttl"] = spec.session_ttl
    if spec.tools:
        config["tools"] = list(spec.tools)
    if spec.tools_override:
        config["tools_override"] = {k: dict(v) for k, v in spec.tools_override.items()}
    config.update(proxy_sections(spec))
    config.update(endpoint_proxy_config(spec))
    return config


def proxy_labels(spec: WorkloadSpec, stack: str, role: str = ROLE_PROXY) -> dict[str, str]:
    """ToolHive's helper-container labels (so `thv list` skips it) plus our ownership and the pair's hash."""
    name = {ROLE_EGRESS: egress_name, ROLE_GATE: gate_name}.get(role, proxy_name)(spec.name)
    return {
        TH_LABEL: "true",
        TH_NAME: name,
        TH_BASENAME: name,
        TH_TRANSPORT: "stdio",
        TH_PORT: str(spec.proxy_port),
        TH_AUXILIARY: "true",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_STACK: stack,
        LABEL_NAME: spec.name,
        LABEL_ROLE: role,
        LABEL_HASH: WORKLOAD_FIELDS.hash(spec.document()),
        LABEL_HASH_VERSION: HASH_VERSION,
        **(endpoint_label(spec) if role == ROLE_PROXY else {}),
    }


def helper_host_config_args(network: str) -> dict[str, Any]:
    """Every helper container (the egress proxy as it is, the workload proxy with its port on top): read-only,
    no capabilities, restarted by Docker, a bounded log and bounded memory and processes (a client that can reach
    the port must not be able to fill the disk or the host's memory through it); the egress proxy publishes nothing."""
    return {
        "network_mode": network,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "restart_policy": {"Name": "unless-stopped"},
        "log_config": bounded_log_config(),
        "mem_limit": HELPER_MEMORY_LIMIT,
        "memswap_limit": HELPER_MEMORY_LIMIT,
        "pids_limit": HELPER_PIDS_LIMIT,
    }


def bounded_log_config() -> dict[str, Any]:
    """json-file logging capped at LOG_MAX_FILES files of LOG_MAX_SIZE each, whatever the engine's default."""
    return {"Type": "json-file", "Config": {"max-size": LOG_MAX_SIZE, "max-file": str(LOG_MAX_FILES)}}


def proxy_host_config_args(spec: WorkloadSpec, network: str) -> dict[str, Any]:
    """A helper publishing the loopback-only port. Never the Docker socket: a stdio proxy has the volume its gate
    listens in (the gate takes it with volumes_from, the only way around: volumes_from copies binds too, and the
    gate's include the socket)."""
    args = helper_host_config_args(network)
    if not spec.serve:  # served through a group's gateway only: reached on the stack network, no host port
        args["port_bindings"] = {f"{PROXY_LISTEN_PORT}/tcp": (spec.host, spec.proxy_port)}
    if uses_gate(spec):
        args["mounts"] = [gate_volume()]
    if audit_bind(spec):
        args["binds"] = [audit_bind(spec)]
        gid = audit_dir_gid(spec)
        args["group_add"] = [str(gid)] if gid else []
    return args


def gate_volume_options() -> dict[str, str]:
    """The local driver's options of a gate volume: tmpfs, owned by the helpers' user, mode 0700, 64 KiB."""
    uid, gid = HELPER_USER.split(":")
    return {"type": "tmpfs", "device": "tmpfs", "o": f"uid={uid},gid={gid},mode=0700,size=65536,nosuid,nodev,noexec"}


def gate_volume() -> Mount:
    """The gate's socket directory: an anonymous volume (it lives and dies with the proxy and gate containers, removed
    with the last of them) on tmpfs. Anonymous volumes cannot be mounted read-only; the proxy could only replace the
    gate's socket with one of its own, which nobody else connects to."""
    return Mount(GATE_DIR, None, type="volume", driver_config=DriverConfig("local", gate_volume_options()))


def gate_volume_labels(stack: str, workload: str) -> dict[str, str]:
    """A named gate volume's labels (a stdio server served vmcp-only): owned by the stack, like its containers."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_STACK: stack, LABEL_NAME: workload, LABEL_ROLE: ROLE_GATE}


def gate_host_config_args(
    socket: tuple[str, int | None], proxy: str | None, volume: str | None = None
) -> dict[str, Any]:
    """The docker gate: no network at all, read-only, no capabilities, the engine's socket with its group only, and
    its proxy's volume (which holds nothing else), or with no proxy (served vmcp-only) the named ``volume``."""
    host_path, gid = socket
    args = helper_host_config_args("none")
    args["binds"] = {host_path: {"bind": PROXY_SOCKET, "mode": "ro"}}  # connect() still works; the file stays put
    if volume is not None:
        args["mounts"] = [Mount(GATE_DIR, volume, type="volume")]
    else:
        assert proxy is not None
        args["volumes_from"] = [f"{proxy}:rw"]
    if gid is not None:
        args["group_add"] = [str(gid)]
    return args


def gateway_mounts(volumes: Mapping[str, str]) -> list[Mount]:
    """A gateway's mounts: each stdio backend's gate volume (``volumes``: backend -> volume) read-only, in a
    directory of its own. Only gate sockets: never the engine's."""
    from toolhive_apply.providers.gateway import gateway_gate_dir

    return [Mount(gateway_gate_dir(b), v, type="volume", read_only=True) for b, v in sorted(volumes.items())]


def gate_config(spec: WorkloadSpec, container_id: str) -> dict[str, Any]:
    """THV_PROXY_CONFIG of a stdio workload's docker gate: the one container (by engine id) it may reach."""
    return {
        "name": gate_name(spec.name),
        "mode": "docker-gate",
        "container": container_id,
        "container_name": spec.name,
        "listen": GATE_SOCKET,
        "docker_socket": PROXY_SOCKET,
        "docker_api_version": "auto",
        "session_mode": spec.session_mode or "shared",
        "max_processes": DEFAULT_MAX_PROCESSES,
    }


def egress_config(spec: WorkloadSpec, docker_host: DockerHostAddresses) -> dict[str, Any]:
    """THV_PROXY_CONFIG of the workload's egress proxy (the proxy image in egress mode), with the addresses of the
    Docker host it must refuse (read from the engine at apply; not part of the hashed spec)."""
    rules = egress_rules(spec)
    assert rules is not None
    host = {"gateways": list(docker_host.gateways), "addresses": list(docker_host.addresses)}
    egress = {**rules, "docker_host": host}
    return {"name": egress_name(spec.name), "mode": "egress", "listen_port": EGRESS_PORT, "egress": egress}


def egress_host_config_args(spec: WorkloadSpec, network: str) -> dict[str, Any]:
    """A helper on the stack's network; it resolves ToolHive's host names only when the workload opens the host."""
    args = helper_host_config_args(network)
    if spec.allow_docker_gateway:
        args["extra_hosts"] = dict(GATEWAY_HOSTS)
    return args


def isolation_network_args() -> dict[str, Any]:
    """How the internal network is created (docker-py's create_network keywords besides name and labels)."""
    return {"driver": "bridge", "internal": True, "options": dict(ISOLATION_NETWORK_OPTIONS), "enable_ipv6": False}


def isolation_network_sound(network: Mapping[str, Any]) -> bool:
    """The network as the engine reports it (list or inspect) has the isolating shape: internal, no host-side
    IPv4, no IPv6. Judged on what Docker says, not on our label."""
    options = network.get("Options") or {}
    return (
        network.get("Internal") is True
        and str(options.get(INHIBIT_IPV4, "")).lower() == "true"
        and not network.get("EnableIPv6")
    )


def isolation_network_labels(spec: WorkloadSpec, stack: str) -> dict[str, str]:
    """ToolHive's network labels plus ours; the hash covers what the network is (its creation arguments), not the
    pair, so a network of an older shape is recognised and remade."""
    name = isolation_network(stack, spec.name)
    shape = {**isolation_network_args(), "name": name}
    return {
        TH_LABEL: "true",
        TH_NAME: name,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_STACK: stack,
        LABEL_NAME: spec.name,
        LABEL_ROLE: ROLE_ISOLATION,
        LABEL_HASH: spec_hash(shape),
        LABEL_HASH_VERSION: HASH_VERSION,
    }
