"""The table of MCP clients, loaded from clients.toml into frozen dataclasses and checked once.

Client differences (paths, formats, keys, labels) are data so that supporting a new client, or following a
ToolHive change, is an edit to clients.toml rather than to code (ARCHITECTURE: "the table lives as data").
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Final, TypeVar

from toolhive_apply.clients.errors import ClientTableError, UnknownClientError

Scalar = str | int | float | bool
_E = TypeVar("_E", bound=StrEnum)
TABLE_FILE: Final = "clients.toml"


class FileFormat(StrEnum):
    JSON = "json"
    JSONC = "jsonc"
    YAML_MAP = "yaml-map"
    YAML_LIST = "yaml-list"
    TOML_TABLES = "toml-tables"
    TOML_ARRAY = "toml-array"

    @property
    def is_list(self) -> bool:
        """Servers are list items found by their name field, not keys of a map."""
        return self in (FileFormat.YAML_LIST, FileFormat.TOML_ARRAY)


class Transport(StrEnum):
    """A workload's transport: ToolHive keys client labels by it, not by proxy mode."""

    STDIO = "stdio"
    SSE = "sse"
    STREAMABLE_HTTP = "streamable-http"


class InstalledRule(StrEnum):
    DIR = "dir"  # the config file's directory exists
    FILE = "file"  # the config file itself exists (clients that live directly in $HOME)


@dataclass(frozen=True, slots=True)
class PerTransport:
    """One string per workload transport; all three are always present."""

    stdio: str
    sse: str
    streamable_http: str

    def __getitem__(self, transport: Transport) -> str:
        match transport:
            case Transport.STDIO:
                return self.stdio
            case Transport.SSE:
                return self.sse
            case Transport.STREAMABLE_HTTP:
                return self.streamable_http

    @classmethod
    def same(cls, value: str) -> PerTransport:
        return cls(value, value, value)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One MCP client as ToolHive writes to it.

    Invariants (checked by load_table): paths are relative POSIX paths without `..`; list formats have a
    name_key; `servers` has at least one segment.
    """

    name: str
    description: str
    format: FileFormat
    linux_path: str
    macos_path: str | None
    servers: tuple[str, ...]
    url_keys: PerTransport
    type_key: str
    types: PerTransport | None
    name_key: str | None
    defaults: tuple[tuple[str, Scalar], ...]
    installed: InstalledRule
    deprecated: bool = False
    connects: tuple[Transport, ...] = (Transport.STREAMABLE_HTTP, Transport.SSE)
    """The HTTP transports the client can connect with, best first (never stdio: every workload is behind a proxy)."""
    new_file: str | None = None
    """What a file the tool creates starts as, when the client rejects an empty one (Continue: name, version)."""
    endpoint_auth: str = "unverified"
    """"oauth": the client follows the MCP authorization flow from an endpoint's 401; else "unverified"."""
    headers_key: str | None = None
    """The entry key of the client's static HTTP headers (`headers`, Codex `http_headers`); None: none is known."""

    def __str__(self) -> str:
        return self.name

    @property
    def best_transport(self) -> Transport:
        """The transport this client's entries use: the proxy serves streamable HTTP and SSE for every workload, so
        the client's own first choice is always available."""
        return self.connects[0]


@dataclass(frozen=True, slots=True)
class ClientTable:
    """All clients in ToolHive's order, looked up by name."""

    clients: tuple[ClientSpec, ...]

    def __iter__(self) -> Iterator[ClientSpec]:
        return iter(self.clients)

    def __len__(self) -> int:
        return len(self.clients)

    def names(self) -> tuple[str, ...]:
        return tuple(client.name for client in self.clients)

    def get(self, name: str) -> ClientSpec:
        for client in self.clients:
            if client.name == name:
                return client
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known clients: {', '.join(self.names())}"
        raise UnknownClientError(f"unknown MCP client {name!r}", hint=hint)


_KEYS: Final = frozenset(
    {
        "name",
        "description",
        "deprecated",
        "format",
        "path",
        "servers",
        "url_key",
        "type_key",
        "types",
        "name_key",
        "defaults",
        "installed",
        "connects",
        "new_file",
        "endpoint_auth",
        "headers_key",
    }
)
_TRANSPORT_KEYS: Final = {"stdio": "stdio", "sse": "sse", "streamable-http": "streamable_http"}


class _Fields:
    """Reads one [[client]] table, recording every problem instead of stopping at the first."""

    def __init__(self, where: str, raw: Mapping[str, object], problems: list[str]) -> None:
        self.where, self.raw, self.problems = where, raw, problems
        for key in raw.keys() - _KEYS:
            close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
            self.problem(key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}: {key}: {message}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if isinstance(value, str) and value:
            return value
        self.problem(key, "must be a non-empty string")
        return ""

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self.raw else None

    def choice(self, key: str, enum: type[_E]) -> _E:
        value = self.raw.get(key)
        try:
            return enum(str(value))
        except ValueError:
            self.problem(key, f"must be one of {', '.join(enum)}")
            return next(iter(enum))

    def rel_path(self, platform: str, *, required: bool) -> str | None:
        paths = self.raw.get("path", {})
        value = paths.get(platform) if isinstance(paths, dict) else None
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or PurePosixPath(value).is_absolute() or ".." in value.split("/"):
            self.problem(f"path.{platform}", "must be a path relative to $HOME without '..'")
            return ""
        return value

    def per_transport(self, key: str) -> PerTransport | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value:
            return PerTransport.same(value)
        labels = _labels(value)
        if labels is not None:
            return PerTransport(**labels)
        self.problem(key, "must be a string or a table with exactly stdio, sse and streamable-http")
        return None

    def segments(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        self.problem(key, "must be a non-empty list of non-empty strings")
        return ("",)

    def connects(self) -> tuple[Transport, ...]:
        value = self.raw.get("connects", ["streamable-http", "sse"])
        http = {Transport.STREAMABLE_HTTP.value, Transport.SSE.value}
        if isinstance(value, list) and value and len(set(value)) == len(value) and set(value) <= http:
            return tuple(Transport(v) for v in value)
        self.problem("connects", "must be a non-empty list of distinct transports: streamable-http, sse")
        return (Transport.STREAMABLE_HTTP,)

    def defaults(self) -> tuple[tuple[str, Scalar], ...]:
        value = self.raw.get("defaults", {})
        if isinstance(value, dict) and all(isinstance(v, str | int | float | bool) for v in value.values()):
            return tuple(value.items())
        self.problem("defaults", "must be a table of scalars")
        return ()


def _labels(value: object) -> dict[str, str] | None:
    """{stdio, sse, streamable-http} -> PerTransport keyword arguments, or None when the table is malformed."""
    if not isinstance(value, dict) or value.keys() != _TRANSPORT_KEYS.keys():
        return None
    if not all(isinstance(label, str) and label for label in value.values()):
        return None
    return {_TRANSPORT_KEYS[key]: str(label) for key, label in value.items()}


def _parse_client(index: int, raw: Mapping[str, object], problems: list[str]) -> ClientSpec:
    fields = _Fields(f"client #{index + 1} ({raw.get('name', '?')})", raw, problems)
    spec = ClientSpec(
        name=fields.text("name"),
        description=fields.text("description"),
        format=fields.choice("format", FileFormat),
        linux_path=fields.rel_path("linux", required=True) or "",
        macos_path=fields.rel_path("macos", required=False),
        servers=fields.segments("servers"),
        url_keys=fields.per_transport("url_key") or PerTransport.same("url"),
        type_key=fields.text("type_key", "type"),
        types=fields.per_transport("types"),
        name_key=fields.optional_text("name_key"),
        defaults=fields.defaults(),
        installed=fields.choice("installed", InstalledRule),
        deprecated=raw.get("deprecated", False) is True,
        connects=fields.connects(),
        new_file=fields.optional_text("new_file"),
        endpoint_auth=fields.text("endpoint_auth", "unverified"),
        headers_key=fields.optional_text("headers_key"),
    )
    if spec.endpoint_auth not in ("oauth", "unverified"):
        fields.problem("endpoint_auth", "must be oauth or unverified")
    if "url_key" not in raw:
        fields.problem("url_key", "is required")
    if spec.format.is_list and spec.name_key is None:
        fields.problem("name_key", f"is required for format {spec.format}")
    return spec


def parse_table(data: bytes) -> ClientTable:
    """Parse and check a clients.toml document; every problem is reported at once."""
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClientTableError([str(exc)]) from None
    raw_clients = document.get("client")
    if not isinstance(raw_clients, list) or not raw_clients:
        raise ClientTableError(["expected [[client]] tables"])
    problems: list[str] = []
    clients = tuple(_parse_client(i, raw, problems) for i, raw in enumerate(raw_clients))
    seen: set[str] = set()
    for client in clients:
        if client.name in seen:
            problems.append(f"client {client.name!r} is listed twice")
        seen.add(client.name)
    if problems:
        raise ClientTableError(problems)
    return ClientTable(clients)


@cache
def client_table() -> ClientTable:
    """The table shipped inside the package (read through importlib.resources so wheels and zips work)."""
    return parse_table(resources.files(__package__).joinpath(TABLE_FILE).read_bytes())


def get_client(name: str) -> ClientSpec:
    return client_table().get(name)
