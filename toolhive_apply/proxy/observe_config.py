"""The ``"audit"`` and ``"telemetry"`` sections of ``THV_PROXY_CONFIG``, in ToolHive's RunConfig key names.

``audit`` is ToolHive's ``audit_config`` (enabled, component, eventTypes, excludeEventTypes, includeRequestData,
includeResponseData, logFile, maxDataSize) plus ``scrub_env``: variables whose values (the workload's secrets) are
scrubbed from recorded data. ``telemetry`` is ToolHive's ``telemetry_config`` plus ``headers_env`` ({header: env var})
for collector headers that are secrets, ``environment_values`` (the values of ``environmentVariables``, resolved on
the host from the workload's plain env_vars), ``ca_pem`` (the collector CA bundle's text: trusted instead of the
system store) and ``protocol`` (OTEL_EXPORTER_OTLP_PROTOCOL's http/protobuf or
http/json). Problems are appended to the caller's list, as config.py does.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

AUDIT_EVENT_TYPES: Final = frozenset(
    {
        "mcp_initialize",
        "sse_connection",
        "mcp_tool_call",
        "mcp_tools_list",
        "mcp_resource_read",
        "mcp_resources_list",
        "mcp_prompt_get",
        "mcp_prompts_list",
        "mcp_notification",
        "mcp_ping",
        "mcp_logging",
        "mcp_completion",
        "mcp_roots_list_changed",
        "mcp_request",
        "http_request",
    }
)
"""ToolHive's event types (pkg/audit/mcp_events.go), the values eventTypes/excludeEventTypes may name."""
DEFAULT_MAX_DATA_SIZE: Final = 1024  # ToolHive's DefaultConfig
DEFAULT_SAMPLING_RATE: Final = 0.05  # ToolHive's CRD default
METRIC_INTERVAL_ENV: Final = "OTEL_METRIC_EXPORT_INTERVAL"
"""The OpenTelemetry SDK's variable (milliseconds) for how often metrics are pushed; 60 s when unset, as there."""
DEFAULT_METRIC_INTERVAL: Final = 60.0
AUDIT_KEYS: Final = frozenset(
    {
        "enabled",
        "component",
        "eventTypes",
        "excludeEventTypes",
        "includeRequestData",
        "includeResponseData",
        "logFile",
        "maxDataSize",
        "scrub_env",
    }
)
TELEMETRY_KEYS: Final = frozenset(
    {
        "endpoint",
        "serviceName",
        "serviceVersion",
        "tracingEnabled",
        "metricsEnabled",
        "samplingRate",
        "insecure",
        "enablePrometheusMetricsPath",
        "customAttributes",
        "headers",
        "headers_env",
        "environmentVariables",
        "environment_values",
        "protocol",
        "ca_pem",
    }
)
PROTOBUF: Final = "http/protobuf"
JSON: Final = "http/json"
PROTOCOLS: Final = (PROTOBUF, JSON)
"""OTEL_EXPORTER_OTLP_PROTOCOL's names for the two OTLP/HTTP encodings; protobuf is the SDKs' (and ToolHive's)."""
ENVIRONMENT_PREFIX: Final = "environment."
"""ToolHive's span attribute for a listed environment variable: ``environment.<NAME>``."""
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Invariant: event types are ToolHive's; ``scrub_values`` are the secret values named by ``scrub_env``."""

    component: str
    event_types: frozenset[str] = frozenset()
    exclude_event_types: frozenset[str] = frozenset()
    include_request_data: bool = False
    include_response_data: bool = False
    log_file: str | None = None
    max_data_size: int = DEFAULT_MAX_DATA_SIZE
    scrub_values: tuple[str, ...] = ()

    def wants(self, event_type: str) -> bool:
        """ToolHive's ShouldAuditEvent: excluded types never, else all types or only the listed ones."""
        if event_type in self.exclude_event_types:
            return False
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Invariant: ``traces_url``/``metrics_url`` are set only when an endpoint is and that signal is enabled."""

    service_name: str
    service_version: str = ""
    traces_url: str | None = None
    metrics_url: str | None = None
    sampling_rate: float = DEFAULT_SAMPLING_RATE
    prometheus: bool = False
    custom_attributes: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    metric_interval: float = DEFAULT_METRIC_INTERVAL
    protocol: str = PROTOBUF
    environment: Mapping[str, str] = field(default_factory=dict)
    """Span attributes ``environment.<NAME>`` for each listed variable (empty when unset, as ToolHive does)."""
    ca_pem: str | None = None
    """The CA bundle an https collector is verified against, instead of the system trust store."""
    secret_values: tuple[str, ...] = ()
    """Header values that came from secrets: never logged, and scrubbed from audit data too."""


class _Section:
    """Typed reads of one section; each problem is prefixed with the section's name."""

    def __init__(self, name: str, raw: Mapping[str, Any], problems: list[str]) -> None:
        self.name = name
        self.raw = raw
        self.problems = problems

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            self.problems.append(f"{self.name}.{key}: must be true or false")
            return False
        return value

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{self.name}.{key}: must be a non-empty string")
            return None
        return value

    def strings(self, key: str) -> list[str]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problems.append(f"{self.name}.{key}: must be a list of non-empty strings")
            return []
        return list(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.problems.append(f"{self.name}.{key}: must be an object of strings")
            return {}
        return dict(value)

    def unknown(self, known: frozenset[str]) -> None:
        extra = sorted(set(self.raw) - known)
        if extra:
            self.problems.append(f"{self.name}: unknown keys {extra}; known keys are {sorted(known)}")


def _section(name: str, raw: object, problems: list[str]) -> _Section | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{name}: must be an object")
        return None
    return _Section(name, raw, problems)


def parse_audit(
    raw: object, workload: str, environ: Mapping[str, str], problems: list[str], secret_env: list[str] | None = None
) -> AuditConfig | None:
    """The audit section, or None when it is absent or ``enabled`` is not true. ``secret_env``: variables the rest
    of the configuration reads secrets from (header_env, bearer_token_env); their values are scrubbed too."""
    section = _section("audit", raw, problems)
    if section is None:
        return None
    section.unknown(AUDIT_KEYS)
    enabled = section.flag("enabled")
    types = {key: frozenset(section.strings(key)) for key in ("eventTypes", "excludeEventTypes")}
    for key, listed in types.items():
        if listed - AUDIT_EVENT_TYPES:
            problems.append(f"audit.{key}: unknown event types {sorted(listed - AUDIT_EVENT_TYPES)}")
    size = section.raw.get("maxDataSize", DEFAULT_MAX_DATA_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 1 << 24:
        problems.append("audit.maxDataSize: must be an integer from 0 to 16777216")
        size = DEFAULT_MAX_DATA_SIZE
    log_file = section.text("logFile")
    if log_file is not None and not log_file.startswith("/"):
        problems.append("audit.logFile: must be an absolute path inside the proxy container")
    scrub = [environ[v] for v in secret_env or () if isinstance(v, str) and environ.get(v)]
    for variable in section.strings("scrub_env"):
        if variable not in environ:
            problems.append(f"audit.scrub_env: environment variable {variable} is not set")
        elif environ[variable]:
            scrub.append(environ[variable])
    if not enabled:
        return None
    return AuditConfig(
        component=section.text("component") or workload,
        event_types=types["eventTypes"],
        exclude_event_types=types["excludeEventTypes"],
        include_request_data=section.flag("includeRequestData"),
        include_response_data=section.flag("includeResponseData"),
        log_file=log_file,
        max_data_size=size,
        scrub_values=tuple(scrub),
    )


def parse_telemetry(
    raw: object, workload: str, environ: Mapping[str, str], problems: list[str]
) -> TelemetryConfig | None:
    """The telemetry section, or None when it turns nothing on."""
    section = _section("telemetry", raw, problems)
    if section is None:
        return None
    section.unknown(TELEMETRY_KEYS)
    endpoint = section.text("endpoint")
    base = _endpoint_url(endpoint, section.flag("insecure"), problems) if endpoint else None
    tracing, metrics, prometheus = (
        section.flag(k) for k in ("tracingEnabled", "metricsEnabled", "enablePrometheusMetricsPath")
    )
    headers, secrets = _collector_headers(section, environ)
    rate, attributes, interval = _rate(section), section.string_map("customAttributes"), _interval(environ, problems)
    protocol = section.text("protocol") or PROTOBUF
    if protocol not in PROTOCOLS:
        problems.append(f"telemetry.protocol: must be one of {list(PROTOCOLS)}, got {protocol!r}")
    environment = _environment(section)
    ca_pem = _ca_pem(section, base)
    if not (base and (tracing or metrics)) and not prometheus:
        return None
    return TelemetryConfig(
        service_name=section.text("serviceName") or workload,
        service_version=section.text("serviceVersion") or "",
        traces_url=f"{base}/v1/traces" if base and tracing else None,
        metrics_url=f"{base}/v1/metrics" if base and metrics else None,
        sampling_rate=rate,
        prometheus=prometheus,
        custom_attributes=attributes,
        headers=headers,
        metric_interval=interval,
        protocol=protocol if protocol in PROTOCOLS else PROTOBUF,
        environment=environment,
        ca_pem=ca_pem,
        secret_values=tuple(secrets),
    )


def _endpoint_url(endpoint: str, insecure: bool, problems: list[str]) -> str | None:
    """ToolHive's endpoint is ``host:port`` (``insecure`` picks http); a full http(s) URL is accepted too."""
    text = endpoint if "://" in endpoint else f"{'http' if insecure else 'https'}://{endpoint}"
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = urlsplit("invalid://")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        problems.append(f"telemetry.endpoint: must be host:port or an http(s) URL, got {endpoint!r}")
        return None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _collector_headers(section: _Section, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    headers = section.string_map("headers")
    secrets = []
    for header, variable in section.string_map("headers_env").items():
        value = environ.get(variable)
        if value is None:
            section.problems.append(f"telemetry.headers_env.{header}: environment variable {variable} is not set")
            continue
        headers[header] = value
        secrets.append(value)
    for header, value in headers.items():  # values are never echoed: they may be secrets
        if not _HEADER_NAME.match(header) or not _HEADER_VALUE.fullmatch(value):
            section.problems.append(f"telemetry.headers: {header!r} is not a header (or value) that can be sent")
    return headers, secrets


def _ca_pem(section: _Section, base: str | None) -> str | None:
    text = section.text("ca_pem")
    if text is None:
        return None
    if base is not None and not base.startswith("https://"):
        section.problems.append("telemetry.ca_pem: a CA bundle needs an https endpoint")
        return None
    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError):
        section.problems.append("telemetry.ca_pem: not PEM CA certificates TLS can load")
        return None
    return text


def _environment(section: _Section) -> dict[str, str]:
    names = section.strings("environmentVariables")
    values = section.string_map("environment_values")
    bad = [n for n in names if not _ENV_NAME.match(n)]
    if bad:
        section.problems.append(f"telemetry.environmentVariables: not environment variable names: {bad}")
    return {f"{ENVIRONMENT_PREFIX}{n}": values.get(n, "") for n in names if _ENV_NAME.match(n)}


def _rate(section: _Section) -> float:
    """ToolHive writes samplingRate as a string ("0.05"); a number is accepted too."""
    value = section.raw.get("samplingRate", DEFAULT_SAMPLING_RATE)
    try:
        rate = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else -1.0
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        section.problems.append(f"telemetry.samplingRate: must be a number from 0 to 1, got {value!r}")
        return DEFAULT_SAMPLING_RATE
    return rate


def _interval(environ: Mapping[str, str], problems: list[str]) -> float:
    text = environ.get(METRIC_INTERVAL_ENV)
    if not text:
        return DEFAULT_METRIC_INTERVAL
    try:
        milliseconds = int(text)
    except ValueError:
        milliseconds = 0
    if not 100 <= milliseconds <= 86_400_000:
        problems.append(f"{METRIC_INTERVAL_ENV}: must be milliseconds from 100 to 86400000, got {text!r}")
        return DEFAULT_METRIC_INTERVAL
    return milliseconds / 1000.0
