"""The typed, frozen manifest: what the rest of the program reads instead of raw YAML data.

Built only from data that already passed the JSON Schema, so construction can trust shapes and
keep every entry's origin for later messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolhive_apply.errors import ManifestIssue, Origin
from toolhive_apply.manifest.auth import OidcConfig, StackAuth, parse_oidc, parse_stack_auth
from toolhive_apply.manifest.client_auth import ClientAuth, parse_client_auth
from toolhive_apply.manifest.header_forward import forwarded_headers
from toolhive_apply.manifest.loader import LoadedManifest, Positions
from toolhive_apply.manifest.vmcp import Vmcp, vmcp_of
from toolhive_apply.redact import SecretValue

DEFAULT_GROUP = "default"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_READY_TIMEOUT = 60.0
DEFAULT_PARALLELISM = 4
DEFAULT_TARGET_PORT = 8080
DEFAULT_PROXY_BASE_IMAGE = "python:3.11-slim"  # settings.proxy.base_image: what the proxy image is built on

Transport = Literal["stdio", "sse", "streamable-http"]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A workload's use of a secret: ToolHive's `{name, target}` plus how it is delivered."""

    name: str
    target: str
    delivery: Literal["env", "file"] = "env"


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    description: str
    origin: Origin | None
    vmcp: Vmcp | None = None
    serve: str | None = None
    """``vmcp-only``: the group's workloads are reached through its gateway only."""


@dataclass(frozen=True, slots=True)
class Registry:
    name: str
    local_path: str | None
    url: str | None
    api_url: str | None
    allow_private_ip: bool
    cache_ttl: int
    base_dir: Path
    origin: Origin | None
    redirect_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Secret:
    key: str
    description: str
    env: str | None
    file: str | None
    present: bool
    value_is_inline: bool
    insecure: bool
    inline: SecretValue | None
    prune: bool
    base_dir: Path
    origin: Origin | None
    allow_empty: bool = False
    """An empty value from the source is meant (otherwise it is an error: an unset variable exported as "")."""


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    groups: tuple[str, ...]
    config_path: str | None
    create: bool
    origin: Origin | None
    per_workload: bool = False
    """Beside a group gateway's one entry, list the group's workloads too."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One MCP server; field names follow ToolHive's workload create request."""

    name: str
    index: int
    origin: Origin | None
    base_dir: Path
    image: str | None = None
    registry: str | None = None
    server: str | None = None
    url: str | None = None
    description: str = ""
    cmd_arguments: tuple[str, ...] = ()
    transport: Transport | None = None
    proxy_mode: Literal["streamable-http", "sse"] | None = None
    session_mode: Literal["shared", "per-client"] | None = None
    proxy_port: int | None = None
    target_port: int | None = None
    host: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
    volumes: tuple[str, ...] = ()
    permission_profile: str | Mapping[str, Any] | None = None
    allow_privileged: bool = False
    allow_host_paths: tuple[str, ...] = ()
    network_isolation: bool | None = None
    allow_docker_gateway: bool = False
    group: str = DEFAULT_GROUP
    tools: tuple[str, ...] = ()
    tools_override: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    trust_proxy_headers: bool = False
    headers: tuple[Mapping[str, str], ...] = ()
    oauth_config: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    prune: bool = True
    ready_timeout: float | None = None
    session_ttl: float | None = None
    """Seconds a client session may stay idle in the proxy (``session_ttl: 2h``); None: the proxy's default."""
    registry_server: str | None = None  # "<registry>/<server>" once resolved from a registry
    audit_config: Mapping[str, Any] | None = None
    telemetry_config: Mapping[str, Any] | None = None
    serve: str | None = None
    """``vmcp-only``: reached through the group's gateway only (no proxy, no published port)."""
    oidc: OidcConfig | None = None
    authz_config: str | Mapping[str, Any] | None = None
    """A path to ToolHive's authz config file (relative to base_dir) or the same object inline."""
    allowed_origins: tuple[str, ...] | None = None
    strict_protocol_validation: bool | None = None
    auth: Literal["anonymous"] | None = None
    runtime_config: Mapping[str, Any] | None = None
    """How a uvx://, npx:// or go:// image is built (ToolHive's templates.RuntimeConfig keys)."""
    header_forward: Mapping[str, Any] | None = None
    """ToolHive's header_forward as written; its headers are already in `headers` (manifest/header_forward.py)."""
    client_auth: ClientAuth | None = None
    """What the stack's client files send to this endpoint (manifest/client_auth.py); not part of the workload."""


@dataclass(frozen=True, slots=True)
class Settings:
    stack: str
    secret_provider: Literal["encrypted", "vault", "environment"]
    vault: Mapping[str, Any]
    encrypted_path: str | None
    docker_host: str | None
    docker_timeout: float
    ready_timeout: float
    parallelism: int
    default_host: str
    home: str | None
    proxy_base_image: str = DEFAULT_PROXY_BASE_IMAGE
    proxy_image: str | None = None
    audit_config: Mapping[str, Any] | None = None
    telemetry_config: Mapping[str, Any] | None = None
    """The stack's defaults for every workload's audit_config/telemetry_config (ToolHive's key names)."""
    auth: StackAuth | None = None
    """`settings.auth`: the endpoint authentication of every workload without its own `oidc` or `auth`."""
    packages: Mapping[str, Any] = field(default_factory=dict)
    """settings.packages as written, with offline_dir made absolute (package builds; providers/package_images.py)."""
    require_pinned: bool = False


@dataclass(frozen=True, slots=True)
class Manifest:
    settings: Settings
    vars: Mapping[str, Any]
    groups: tuple[Group, ...]
    registries: tuple[Registry, ...]
    secrets: tuple[Secret, ...]
    clients: tuple[Client, ...]
    workloads: tuple[Workload, ...]
    files: tuple[Path, ...]
    warnings: tuple[ManifestIssue, ...] = ()
    positions: Positions = field(default_factory=Positions, compare=False)
    """Where every key and list item was written, so later checks (registries, live state) point at the field."""

    _by_name: dict[str, Workload] | None = field(default=None, init=False, repr=False, compare=False)
    """The name index, built on the first lookup: a scan per lookup made a 10,000-workload plan quadratic."""

    def workload(self, name: str) -> Workload | None:
        index = self._by_name
        if index is None:
            index = {}
            for w in self.workloads:
                index.setdefault(w.name, w)  # the first of a duplicated name, as the scan found (checks refuse it)
            object.__setattr__(self, "_by_name", index)  # frozen: the cache is the one field set after init
        return index.get(name)


def default_stack_name(files: tuple[Path, ...]) -> str:
    """The manifest directory's name, folded into the stack-name alphabet."""
    directory = files[0].resolve().parent.name if files else "default"
    folded = re.sub(r"[^a-z0-9_.-]+", "-", directory.lower()).strip("-.") or "default"
    return folded[:63]


def _settings(data: Mapping[str, Any], files: tuple[Path, ...]) -> Settings:
    secrets = data.get("secrets", {})
    docker = data.get("docker", {})
    defaults = data.get("defaults", {})
    return Settings(
        stack=data.get("stack") or default_stack_name(files),
        secret_provider=secrets.get("provider", "encrypted"),
        vault=secrets.get("vault", {}),
        encrypted_path=secrets.get("encrypted", {}).get("path"),
        docker_host=docker.get("host"),
        docker_timeout=float(docker.get("timeout", 60)),
        ready_timeout=float(defaults.get("ready_timeout", DEFAULT_READY_TIMEOUT)),
        parallelism=int(defaults.get("parallelism", DEFAULT_PARALLELISM)),
        default_host=defaults.get("host", DEFAULT_HOST),
        home=data.get("home"),
        proxy_base_image=data.get("proxy", {}).get("base_image", DEFAULT_PROXY_BASE_IMAGE),
        proxy_image=data.get("proxy", {}).get("image"),
        audit_config=data.get("audit_config"),
        telemetry_config=data.get("telemetry_config"),
        auth=parse_stack_auth(data.get("auth")),
        packages=_packages(data.get("packages", {}), files),
        require_pinned=bool(data.get("images", {}).get("require_pinned", False)),
    )


def _packages(packages: Mapping[str, Any], files: tuple[Path, ...]) -> dict[str, Any]:
    """settings.packages with offline_dir and ca_bundles resolved against the (first) manifest file's directory."""
    result = dict(packages)
    if "offline_dir" in result:
        base = files[0].resolve().parent if files else Path.cwd()
        result["offline_dir"] = str((base / str(result["offline_dir"])).resolve())
    if isinstance(result.get("ca_bundles"), Mapping):  # relative to the manifest, as offline_dir
        base = files[0].resolve().parent if files else Path.cwd()
        result["ca_bundles"] = {k: str((base / str(v)).resolve()) for k, v in result["ca_bundles"].items()}
    return result


def _dir_of(positions: Positions, path: tuple[str | int, ...]) -> tuple[Path, Origin | None]:
    origin = positions.find(path)
    return (origin.file.resolve().parent if origin else Path.cwd()), origin


def _workload(index: int, item: Mapping[str, Any], positions: Positions) -> Workload:
    base_dir, origin = _dir_of(positions, ("workloads", index))
    return Workload(
        name=item["name"],
        index=index,
        origin=origin,
        base_dir=base_dir,
        image=item.get("image"),
        registry=item.get("registry"),
        server=item.get("server"),
        url=item.get("url"),
        description=item.get("description", ""),
        cmd_arguments=tuple(str(a) for a in item.get("cmd_arguments", ())),
        transport=item.get("transport"),
        proxy_mode=item.get("proxy_mode"),
        session_mode=item.get("session_mode"),
        proxy_port=item.get("proxy_port"),
        target_port=item.get("target_port"),
        host=item.get("host"),
        env_vars={k: _env_text(v) for k, v in item.get("env_vars", {}).items()},
        secrets=tuple(SecretRef(s["name"], s["target"], s.get("as", "env")) for s in item.get("secrets", ())),
        volumes=tuple(item.get("volumes", ())),
        permission_profile=item.get("permission_profile"),
        allow_privileged=bool(item.get("allow_privileged", False)),
        allow_host_paths=tuple(str(p) for p in item.get("allow_host_paths", ())),
        network_isolation=item.get("network_isolation"),
        allow_docker_gateway=bool(item.get("allow_docker_gateway", False)),
        group=item.get("group", DEFAULT_GROUP),
        tools=tuple(item.get("tools", ())),
        tools_override=dict(item.get("tools_override", {})),
        trust_proxy_headers=bool(item.get("trust_proxy_headers", False)),
        headers=(*item.get("headers", ()), *forwarded_headers(item.get("header_forward"))),
        oauth_config=item.get("oauth_config"),
        labels=dict(item.get("labels", {})),
        prune=bool(item.get("prune", True)),
        ready_timeout=item.get("ready_timeout"),
        session_ttl=duration_seconds(item["session_ttl"]) if "session_ttl" in item else None,
        audit_config=item.get("audit_config"),
        telemetry_config=item.get("telemetry_config"),
        serve=item.get("serve"),
        oidc=parse_oidc(item.get("oidc")),
        authz_config=item.get("authz_config"),
        allowed_origins=tuple(item["allowed_origins"]) if "allowed_origins" in item else None,
        strict_protocol_validation=item.get("strict_protocol_validation"),
        auth=item.get("auth"),
        runtime_config=item.get("runtime_config"),
        header_forward=item.get("header_forward"),
        client_auth=parse_client_auth(item.get("client_auth")),
    )


_DURATION_PART = re.compile(r"([0-9]+)([hms])")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> float:
    """A duration the schema accepted (``2h``, ``1h30m``, ``90s``) in seconds."""
    return float(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text)))


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_manifest(data: Mapping[str, Any], loaded: LoadedManifest) -> Manifest:
    """Data already validated against the schema -> frozen model."""
    positions = loaded.positions
    groups = tuple(
        Group(
            g["name"], g.get("description", ""), positions.find(("groups", i)), vmcp_of(g.get("vmcp")), g.get("serve")
        )
        for i, g in enumerate(data.get("groups", ()))
    )
    registries = tuple(
        Registry(
            name=r["name"],
            local_path=r.get("local_path"),
            url=r.get("url"),
            api_url=r.get("api_url"),
            allow_private_ip=bool(r.get("allow_private_ip", False)),
            cache_ttl=int(r.get("cache_ttl", 3600)),
            base_dir=_dir_of(positions, ("registries", i))[0],
            origin=positions.find(("registries", i)),
            redirect_hosts=tuple(str(h).lower() for h in r.get("redirect_hosts", ())),
        )
        for i, r in enumerate(data.get("registries", ()))
    )
    secrets = tuple(
        Secret(
            key=s["key"],
            description=s.get("description", ""),
            env=s.get("from", {}).get("env"),
            file=s.get("from", {}).get("file"),
            present=bool(s.get("present", False)),
            value_is_inline="value" in s,
            insecure=bool(s.get("insecure", False)),
            inline=SecretValue(str(s["value"])) if "value" in s else None,
            prune=bool(s.get("prune", False)),
            base_dir=_dir_of(positions, ("secrets", i))[0],
            origin=positions.find(("secrets", i)),
            allow_empty=bool(s.get("allow_empty", False)),
        )
        for i, s in enumerate(data.get("secrets", ()))
    )
    clients = tuple(
        Client(
            name=c["name"],
            groups=tuple(c.get("groups", (DEFAULT_GROUP,))),
            config_path=c.get("config_path"),
            create=bool(c.get("create", False)),
            origin=positions.find(("clients", i)),
            per_workload=bool(c.get("per_workload", False)),
        )
        for i, c in enumerate(data.get("clients", ()))
    )
    workloads = tuple(_workload(i, w, positions) for i, w in enumerate(data.get("workloads", ())))
    return Manifest(
        settings=_settings(data.get("settings", {}), loaded.files),
        vars=dict(data.get("vars", {})),
        groups=groups,
        registries=registries,
        secrets=secrets,
        clients=clients,
        workloads=workloads,
        files=loaded.files,
        positions=positions,
    )
