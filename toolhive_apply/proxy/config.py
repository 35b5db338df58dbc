"""Parse and validate ``THV_PROXY_CONFIG``, the one JSON document that tells a proxy container what to do.

Secrets never need to be in that JSON: header values can be read from environment variables named in ``header_env``
(and ``bearer_token_env``), which the engine fills from its secret store. All problems are reported at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.proxy.auth_config import AuthConfig, parse_auth
from toolhive_apply.proxy.config_reader import ConfigReader
from toolhive_apply.proxy.observe_config import AuditConfig, TelemetryConfig, parse_audit, parse_telemetry
from toolhive_apply.proxy.vmcp_config import VmcpConfig, parse_vmcp

CONFIG_ENV: Final = "THV_PROXY_CONFIG"
DEFAULT_DOCKER_SOCKET: Final = "/var/run/docker.sock"
DEFAULT_DOCKER_API_VERSION: Final = "auto"
"""Speak the engine's own API version (asked via /version); or pin one such as "1.41"."""
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
DEFAULT_SESSION_TTL: Final = 2 * 3600.0
"""Seconds a client session may stay idle before it is forgotten (ToolHive's default session TTL, 2 h)."""
DEFAULT_MAX_SESSIONS: Final = 1000
"""Client sessions kept at most; past it the least recently used is ended (memory stays bounded)."""
DEFAULT_LISTEN_HOST: Final = "0.0.0.0"  # inside the container; the engine publishes the port on 127.0.0.1 only
DEFAULT_ALLOWED_ORIGINS: Final = tuple(
    f"{scheme}://{host}:*" for scheme in ("http", "https") for host in ("localhost", "127.0.0.1", "[::1]")
)
"""Loopback origins on any port: local browser tools may talk to the proxy, web pages elsewhere may not."""

KNOWN_KEYS: Final = frozenset(
    {
        "name",
        "mode",
        "proxy_mode",
        "listen_port",
        "listen_host",
        "container",
        "docker_socket",
        "docker_api_version",
        "session_mode",
        "max_processes",
        "upstream_url",
        "upstream_transport",
        "headers",
        "header_env",
        "bearer_token_env",
        "tools",
        "tools_override",
        "allowed_origins",
        "allowed_hosts",
        "session_ttl",
        "max_sessions",
        "max_body_bytes",
        "log_level",
        "oauth",
        "audit",
        "telemetry",
        "auth",
        "strict_protocol_validation",
        "vmcp",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
"""What the wire layer will send (RFC 9110 field-value): a bad secret fails at start, not on every request."""
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"}
)
_LOG_LEVELS: Final = frozenset({"debug", "info", "warning", "error"})


class ConfigError(ValueError):
    """The configuration cannot be used; the message lists every problem found."""

    exit_code: Final = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid proxy configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class Mode(StrEnum):
    """What the proxy sits in front of."""

    STDIO = "stdio"  # an MCP container speaking stdio, reached by attaching through the Docker socket
    HTTP = "http"  # an MCP container already speaking HTTP on a shared Docker network
    REMOTE = "remote"  # an MCP server somewhere else, reached by URL
    VMCP = "vmcp"  # a group gateway aggregating several MCP servers (vmcp_app.py)


class SessionMode(StrEnum):
    """How a stdio server is shared: one process for every client, or one process per client session."""

    SHARED = "shared"
    PER_CLIENT = "per-client"


DEFAULT_MAX_PROCESSES: Final = 16
"""Per-client mode: at most this many server processes at once (the docker gate enforces it too)."""


class Transport(StrEnum):
    STREAMABLE_HTTP = "streamable-http"
    SSE = "sse"


@dataclass(frozen=True, slots=True)
class ToolOverride:
    """A rename and/or new description for one tool; at least one of the two is set."""

    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """A validated configuration. Invariants: stdio mode has ``container``; http/remote have ``upstream_url`` and
    ``upstream_transport`` equal to ``proxy_mode`` (the native transport; bridge.py serves the other one too)."""

    name: str
    mode: Mode
    proxy_mode: Transport
    listen_port: int
    listen_host: str = DEFAULT_LISTEN_HOST
    container: str | None = None
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    docker_api_version: str = DEFAULT_DOCKER_API_VERSION
    session_mode: SessionMode = SessionMode.SHARED
    max_processes: int = DEFAULT_MAX_PROCESSES
    upstream_url: str | None = None
    upstream_transport: Transport | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tools: frozenset[str] | None = None
    tools_override: Mapping[str, ToolOverride] = field(default_factory=dict)
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    allowed_hosts: tuple[str, ...] = ()
    """Host header values accepted besides localhost and loopback addresses (the workload's configured host)."""
    session_ttl: float = DEFAULT_SESSION_TTL
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    audit: AuditConfig | None = None
    telemetry: TelemetryConfig | None = None
    auth: AuthConfig | None = None
    """Who may call (OIDC) and what they may do (Cedar); None for an anonymous endpoint (``auth_config.py``)."""
    strict_protocol_validation: bool = False
    """Refuse an unsupported ``MCP-Protocol-Version`` (400) and JSON-RPC batches."""
    vmcp: VmcpConfig | None = None
    """vmcp mode only: the gateway's backends and aggregation."""


def load_config(text: str | None, environ: Mapping[str, str]) -> ProxyConfig:
    """The configuration from the JSON ``text`` (the value of ``THV_PROXY_CONFIG``), secrets read from ``environ``."""
    if not text:
        raise ConfigError([f"environment variable {CONFIG_ENV} is not set"])
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError([f"{CONFIG_ENV} is not valid JSON: {error}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{CONFIG_ENV} must be a JSON object"])
    reader = ConfigReader(raw)
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        reader.problems.append(f"unknown keys {unknown}; known keys are {sorted(KNOWN_KEYS)}")
    if raw.get("oauth") not in (None, False):
        reader.problems.append(
            "oauth: interactive browser OAuth cannot run inside a proxy container; obtain a token elsewhere, "
            "store it as a secret and pass it with bearer_token_env (or header_env)"
        )
    config = _build(reader, environ)
    if reader.problems or config is None:
        raise ConfigError(reader.problems or ["configuration incomplete"])
    return config


def _build(reader: ConfigReader, environ: Mapping[str, str]) -> ProxyConfig | None:
    name = reader.text("name", required=True)
    mode: Mode | None = reader.choice("mode", Mode, required=True)
    port = reader.integer("listen_port", 1, 65535)
    target = _target(reader, mode)
    headers = _headers(reader, environ)
    tools = reader.string_list("tools")
    overrides = _overrides(reader)
    origins = reader.string_list("allowed_origins")
    hosts = reader.string_list("allowed_hosts") or []
    session_ttl = reader.number("session_ttl", 1.0, 30 * 86400.0, default=DEFAULT_SESSION_TTL)
    max_sessions = reader.integer("max_sessions", 1, 1_000_000, default=DEFAULT_MAX_SESSIONS)
    max_body = reader.integer("max_body_bytes", 1024, 1 << 30, default=DEFAULT_MAX_BODY_BYTES)
    session_mode: SessionMode = reader.choice("session_mode", SessionMode) or SessionMode.SHARED
    max_processes = reader.integer("max_processes", 1, 256, default=DEFAULT_MAX_PROCESSES) or DEFAULT_MAX_PROCESSES
    log_level = (reader.text("log_level", default="info") or "info").lower()
    if log_level not in _LOG_LEVELS:
        reader.problems.append(f"log_level: must be one of {sorted(_LOG_LEVELS)}")
    secret_env = [*reader.string_map("header_env").values(), *filter(None, [reader.raw.get("bearer_token_env")])]
    audit = parse_audit(reader.raw.get("audit"), name or "", environ, reader.problems, secret_env)
    telemetry = parse_telemetry(reader.raw.get("telemetry"), name or "", environ, reader.problems)
    auth = parse_auth(reader.raw.get("auth"), environ, reader.problems)
    strict = reader.raw.get("strict_protocol_validation", False)
    if not isinstance(strict, bool):
        reader.problems.append("strict_protocol_validation: must be true or false")
    if name is None or mode is None or port is None or target is None or max_body is None:
        return None
    return ProxyConfig(
        audit=audit,
        telemetry=telemetry,
        name=name,
        mode=mode,
        listen_port=port,
        listen_host=reader.text("listen_host", default=DEFAULT_LISTEN_HOST) or DEFAULT_LISTEN_HOST,
        docker_socket=reader.text("docker_socket", default=DEFAULT_DOCKER_SOCKET) or DEFAULT_DOCKER_SOCKET,
        docker_api_version=reader.text("docker_api_version", default=DEFAULT_DOCKER_API_VERSION) or "auto",
        session_mode=session_mode,
        max_processes=max_processes,
        headers=headers,
        tools=frozenset(tools) if tools else None,
        tools_override=overrides,
        allowed_origins=tuple(o.rstrip("/") for o in origins) if origins is not None else DEFAULT_ALLOWED_ORIGINS,
        allowed_hosts=tuple(hosts),
        session_ttl=session_ttl,
        max_sessions=max_sessions or DEFAULT_MAX_SESSIONS,
        max_body_bytes=max_body,
        log_level=log_level,
        auth=auth,
        strict_protocol_validation=strict is True,
        **target,
    )


def _target(reader: ConfigReader, mode: Mode | None) -> dict[str, Any] | None:
    """The mode-specific fields: the container for stdio, the upstream URL and transport otherwise."""
    proxy_mode: Transport | None = reader.choice("proxy_mode", Transport)
    if mode is Mode.STDIO:
        container = reader.text("container", required=True)
        for key in ("upstream_url", "upstream_transport"):
            if key in reader.raw:
                reader.problems.append(f"{key}: not used in stdio mode")
        return {"container": container, "proxy_mode": proxy_mode or Transport.STREAMABLE_HTTP}
    if mode is Mode.VMCP:
        if proxy_mode not in (None, Transport.STREAMABLE_HTTP):
            reader.problems.append("proxy_mode: the vmcp gateway serves streamable-http")
        return {"vmcp": parse_vmcp(reader.raw.get("vmcp"), reader.problems), "proxy_mode": Transport.STREAMABLE_HTTP}
    if "vmcp" in reader.raw:
        reader.problems.append("vmcp: only used in vmcp mode")
    if mode is None:
        return None
    url = reader.text("upstream_url", required=True)
    if url is not None and not _valid_upstream(url, mode):
        allowed = "http:// or https://" if mode is Mode.REMOTE else "http://"
        reader.problems.append(f"upstream_url: must be an absolute {allowed} URL with a host, got {url!r}")
    transport: Transport | None = reader.choice("upstream_transport", Transport)
    if transport is None and url is not None:
        transport = Transport.SSE if urlsplit(url).path.rstrip("/").endswith("/sse") else Transport.STREAMABLE_HTTP
    if proxy_mode is not None and transport is not None and proxy_mode is not transport:
        reader.problems.append(
            f"proxy_mode: {mode} mode serves the upstream's own transport ({transport}); "
            f"translating to {proxy_mode} is not supported"
        )
    if "container" in reader.raw:
        reader.problems.append("container: only used in stdio mode")
    return {"upstream_url": url, "upstream_transport": transport, "proxy_mode": transport or proxy_mode}


def _valid_upstream(url: str, mode: Mode) -> bool:
    parts = urlsplit(url)
    schemes = ("http", "https") if mode is Mode.REMOTE else ("http",)
    return parts.scheme in schemes and bool(parts.hostname)


def _headers(reader: ConfigReader, environ: Mapping[str, str]) -> dict[str, str]:
    """Static headers, then values from the environment (secrets), then the bearer token; later ones win."""
    headers = reader.string_map("headers")
    for header, variable in reader.string_map("header_env").items():
        value = environ.get(variable)
        if value is None:
            reader.problems.append(f"header_env.{header}: environment variable {variable} is not set")
        else:
            headers[header] = value
    token_variable = reader.text("bearer_token_env")
    if token_variable is not None:
        token = environ.get(token_variable)
        if not token:
            reader.problems.append(f"bearer_token_env: environment variable {token_variable} is not set or empty")
        else:
            headers["Authorization"] = f"Bearer {token}"
    for header, value in headers.items():
        _check_header(reader, header, value)
    return headers


def _check_header(reader: ConfigReader, header: str, value: str) -> None:
    # The value is never echoed: it may be a secret.
    if not _HEADER_NAME.match(header) or header.lower() in _RESERVED_HEADERS:
        reader.problems.append(f"headers: {header!r} is not a header the proxy may set")
    if not _HEADER_VALUE.fullmatch(value):
        reader.problems.append(f"headers: the value of {header!r} contains a control character or non-Latin-1 text")


def _overrides(reader: ConfigReader) -> dict[str, ToolOverride]:
    raw = reader.raw.get("tools_override")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        reader.problems.append("tools_override: must be an object of {actual_name: {name?, description?}}")
        return {}
    overrides: dict[str, ToolOverride] = {}
    for actual, spec in raw.items():
        override = _override(reader, actual, spec)
        if override is not None:
            overrides[actual] = override
    targets = [o.name or actual for actual, o in overrides.items()]
    duplicated = sorted({t for t in targets if targets.count(t) > 1})
    if duplicated:
        reader.problems.append(f"tools_override: several tools would be named {duplicated}")
    return overrides


def _override(reader: ConfigReader, actual: str, spec: object) -> ToolOverride | None:
    where = f"tools_override.{actual}"
    fields: dict[str, Callable[[Any], bool]] = {"name": lambda v: isinstance(v, str) and bool(v)}
    fields["description"] = lambda v: isinstance(v, str)
    if not isinstance(spec, dict) or set(spec) - set(fields):
        reader.problems.append(f"{where}: must be an object with only 'name' and/or 'description'")
        return None
    bad = [key for key, ok in fields.items() if key in spec and spec[key] is not None and not ok(spec[key])]
    if bad:
        reader.problems.append(f"{where}: {', '.join(bad)} must be a non-empty string")
        return None
    name, description = spec.get("name"), spec.get("description")
    if name is None and description is None:
        reader.problems.append(f"{where}: set 'name' or 'description'")
        return None
    return ToolOverride(name=name, description=description)
