"""The workload spec as typed, frozen data: `WorkloadSpec`, and the one conversion to and from its document.

The *document* (a JSON mapping) is what is hashed, recorded in the spec label, diffed by the engine and saved in a
plan file; its keys and values must not change, or every running workload would plan a replace. So a field set only
for some workloads (`session_ttl`, `endpoint`, `package`, ...) is left out of the document when it is unset, exactly
as the hand-built dict did, and `document()` reproduces the old dict key for key. Everything inside the workload
provider reads the typed value; the engine keeps the document, and `from_document` is the one way back (a saved
plan, a label). ToolHive-shaped blocks (permission profile, audit, telemetry, endpoint, vMCP, package) stay mappings
in ToolHive's own vocabulary, deep-frozen so nothing downstream can change what was hashed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

Document = Mapping[str, Any]
EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
BUILTIN_PROFILES: Final[Mapping[str, Mapping[str, Any]]] = {
    "none": {"name": "none", "network": {"outbound": {}, "inbound": {}}},
    "network": {"name": "network", "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}}},
}
"""ToolHive's built-in permission profiles (`stdio` is `none`)."""


def freeze(value: Any) -> Any:
    """A JSON value made immutable: mappings become read-only proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of `freeze`: plain dicts and lists again, as JSON and the hash expect."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret a container gets, by name: as env var `target`, or as a file (`delivery == "file"`). A proxy's
    secrets (`proxy_secrets`) are env vars and were always recorded without `as`: None keeps their documents."""

    name: str
    target: str
    delivery: str | None = None

    def document(self) -> dict[str, str]:
        doc = {"name": self.name, "target": self.target}
        if self.delivery is not None:
            doc["as"] = self.delivery
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SecretRef:
        delivery = doc.get("as")
        return cls(str(doc["name"]), str(doc["target"]), None if delivery is None else str(delivery))


@dataclass(frozen=True, slots=True)
class RemoteHeader:
    """A header a remote workload's proxy adds: a plain value, or the env var its secret value arrives in."""

    name: str
    value: str | None = None
    env: str | None = None

    def document(self) -> dict[str, str]:
        if self.env is not None:
            return {"name": self.name, "env": self.env}
        return {"name": self.name, "value": self.value or ""}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RemoteHeader:
        env = doc.get("env")
        return cls(str(doc["name"]), None if env is not None else str(doc.get("value", "")), env)


@dataclass(frozen=True, slots=True)
class ProxyImages:
    """The proxy image to run and the base it is built from (settings.proxy_image / proxy_base_image)."""

    image: str | None = None
    base_image: str | None = None

    def document(self) -> dict[str, str | None]:
        return {"image": self.image, "base_image": self.base_image}


_WHEN_SET: Final = "when_set"
"""Field metadata: left out of the document when None (or False for a flag), as the dict left the key out."""


def _optional(default: Any = None) -> Any:
    return field(default=default, metadata={_WHEN_SET: True})


@dataclass(frozen=True, slots=True)
class WorkloadSpec(Mapping[str, Any]):
    """Everything that shapes a workload's unit (server, proxy, gate, egress, network), and nothing secret.

    A group's vMCP gateway is a spec too: a remote-like unit (the proxy is the unit) with `vmcp` set. The code of
    the workload provider reads the typed fields; readers that speak documents (the engine's diff and hash, a
    saved plan, a view) read it as the read-only mapping of its document, computed once, when first read.
    """

    name: str
    description: str | None
    image: str | None
    cmd_arguments: tuple[str, ...]
    transport: str
    proxy_mode: str
    proxy_port: int
    target_port: int
    host: str
    env_vars: Mapping[str, str]
    secrets: tuple[SecretRef, ...]
    volumes: tuple[str, ...]
    permission_profile: Mapping[str, Any]
    allow_privileged: bool
    allow_host_paths: tuple[str, ...]
    network_isolation: bool
    group: str
    tools: tuple[str, ...]
    tools_override: Mapping[str, Mapping[str, str]]
    trust_proxy_headers: bool
    labels: Mapping[str, str]
    prune: bool
    ready_timeout: float
    proxy: ProxyImages
    session_ttl: float | None = _optional()
    session_mode: str | None = _optional()
    image_id: str | None = _optional()
    registry_server: str | None = _optional()
    allow_docker_gateway: bool = _optional(False)
    audit: Mapping[str, Any] | None = _optional()
    telemetry: Mapping[str, Any] | None = _optional()
    endpoint_documents: Mapping[str, Any] | None = _optional()
    proxy_secrets: tuple[SecretRef, ...] | None = _optional()
    remote: bool = _optional(False)
    url: str | None = _optional()
    headers: tuple[RemoteHeader, ...] | None = _optional()
    vmcp: Mapping[str, Any] | None = _optional()
    gateway_hosts: tuple[str, ...] | None = _optional()
    serve: str | None = _optional()
    endpoint: Mapping[str, Any] | None = _optional()
    parts: tuple[str, ...] = ()
    package: Mapping[str, Any] | None = _optional()
    secret_digests: Mapping[str, str] | None = _optional()
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    """Keys this version does not know (a label written by a newer toolhive-apply): kept, so the document it is
    read from is the document written back, and a diff shows nothing that is not there."""
    _document: Mapping[str, Any] | None = field(init=False, repr=False, compare=False, default=None)
    """The document, built on first use and kept: a spec copied by `with_fields` on its way through the provider
    (image id, digests) builds none for the intermediate copies."""

    def _built(self) -> Mapping[str, Any]:
        built = self._document
        if built is None:
            built = self.document()
            object.__setattr__(self, "_document", built)  # frozen: the cache is the one field set after init
        return built

    # -- read-only mapping of the document ----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    # -- the document -------------------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The JSON document: hashed, recorded, diffed and saved. Key for key the spec the dict-building code made."""
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "_document"):
                continue
            value = getattr(self, f.name)
            if f.metadata.get(_WHEN_SET) and (value is None or value is False):
                continue
            doc[f.name] = _document_value(value)
        doc.update(thaw(self.extra))
        return doc

    @classmethod
    def from_document(cls, doc: Document) -> WorkloadSpec:
        """A spec from its document (a saved plan, a container's label, a test's literal). Lenient about what an
        older version left out: the same defaults the builder gives."""
        if isinstance(doc, WorkloadSpec):
            return doc
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "_document"}
        values: dict[str, Any] = {k: freeze(v) for k, v in doc.items() if k in known}
        values["secrets"] = tuple(SecretRef.from_document(s) for s in doc.get("secrets") or ())
        if doc.get("proxy_secrets") is not None:
            values["proxy_secrets"] = tuple(SecretRef.from_document(s) for s in doc["proxy_secrets"])
        if doc.get("headers") is not None:
            values["headers"] = tuple(RemoteHeader.from_document(h) for h in doc["headers"])
        proxy = doc.get("proxy") or {}
        values["proxy"] = ProxyImages(proxy.get("image"), proxy.get("base_image"))
        for name, default in _LENIENT_DEFAULTS.items():
            values.setdefault(name, default)
        extra = {k: v for k, v in doc.items() if k not in known}
        return cls(**values, extra=freeze(extra))

    def with_fields(self, **changes: Any) -> WorkloadSpec:
        """A copy with `changes` (frozen on the way in): how the provider records the image id or digests."""
        return dataclasses.replace(self, **{k: _frozen_field(v) for k, v in changes.items()})


def _document_value(value: Any) -> Any:
    if isinstance(value, SecretRef | RemoteHeader | ProxyImages):
        return value.document()
    if isinstance(value, tuple):
        return [_document_value(v) for v in value]
    return thaw(value)


def _frozen_field(value: Any) -> Any:
    if isinstance(value, SecretRef | RemoteHeader | ProxyImages):
        return value
    if isinstance(value, list | tuple) and value and isinstance(value[0], SecretRef | RemoteHeader):
        return tuple(value)
    return freeze(value)


_LENIENT_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "description": None,
        "image": None,
        "cmd_arguments": (),
        "transport": "stdio",
        "proxy_mode": "streamable-http",
        "proxy_port": 0,
        "target_port": 0,
        "host": "127.0.0.1",
        "env_vars": EMPTY,
        "volumes": (),
        "permission_profile": freeze(BUILTIN_PROFILES["network"]),
        "allow_privileged": False,
        "allow_host_paths": (),
        "network_isolation": False,
        "group": "default",
        "tools": (),
        "tools_override": EMPTY,
        "trust_proxy_headers": False,
        "labels": EMPTY,
        "prune": True,
        "ready_timeout": 60.0,
    }
)
"""What a document written by an older version may lack (the keys a builder always sets today)."""
