"""Registry documents -> one internal catalogue, from either format ToolHive has used.

The upstream MCP format (`data.servers[]` of server.json objects, ToolHive data under `_meta`) is current;
the legacy ToolHive format (`servers`/`remote_servers` maps) is still common in the wild. Both are validated
against their published schemas (shipped under schemas/registry/, no network) before conversion, so an invalid
document is an error naming the registry, the server and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.registry.packages import chosen_package, package_image

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

PUBLISHER_KEY = "io.modelcontextprotocol.registry/publisher-provided"
LEGACY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]+[a-z0-9]$")  # the legacy schema's patternProperties for names
STACKLOK = "io.github.stacklok"
SCHEMA_FILES = (
    "upstream-registry.schema.json",
    "server.schema.json",
    "publisher-provided.schema.json",
    "skill.schema.json",
    "plugin.schema.json",
    "toolhive-legacy-registry.schema.json",
)


class RegistryError(ToolhiveApplyError):
    """A registry source is unreachable, too big, invalid, or lacks a server a workload names."""

    code = "registry_invalid"


@dataclass(frozen=True, slots=True)
class EnvVarDef:
    name: str
    description: str = ""
    required: bool = False
    secret: bool = False
    default: str | None = None


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One server as toolhive-apply needs it, whichever format it came from."""

    name: str
    description: str = ""
    image: str | None = None
    url: str | None = None
    transport: str = "stdio"
    target_port: int | None = None
    proxy_port: int | None = None
    args: tuple[str, ...] = ()
    env_vars: tuple[EnvVarDef, ...] = ()
    permissions: dict[str, Any] | None = None
    tools: tuple[str, ...] = ()
    tier: str = ""
    status: str = ""
    headers: tuple[dict[str, Any], ...] = ()
    legacy: dict[str, Any] = field(default_factory=dict)

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def is_remote(self) -> bool:
        return self.url is not None


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: str
    last_updated: str
    servers: tuple[ServerEntry, ...]
    format: str  # "upstream" | "legacy"

    def find(self, wanted: str) -> ServerEntry | None:
        """Full reverse-DNS name first, else a unique short name (ToolHive's lookup rule)."""
        for entry in self.servers:
            if entry.name == wanted:
                return entry
        matches = [e for e in self.servers if e.short_name == wanted]
        return matches[0] if len(matches) == 1 else None

    def ambiguous(self, wanted: str) -> list[str]:
        return [e.name for e in self.servers if e.short_name == wanted]


def _schema_dir() -> Path:
    from toolhive_apply.manifest.schema import schema_path

    return schema_path().parent / "registry"


@cache
def _validators() -> dict[str, Draft202012Validator]:
    # imported here: jsonschema is a tenth of the CLI's start-up, and most plans read no registry (issue #20)
    from jsonschema import Draft202012Validator
    from referencing import Registry as SchemaRegistry
    from referencing import Resource

    documents = {name: json.loads((_schema_dir() / name).read_text(encoding="utf-8")) for name in SCHEMA_FILES}
    store: SchemaRegistry[Any] = SchemaRegistry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values()
    )
    legacy_id = documents["toolhive-legacy-registry.schema.json"]["$id"]
    return {
        "upstream": Draft202012Validator(documents["upstream-registry.schema.json"], registry=store),
        "legacy": Draft202012Validator(documents["toolhive-legacy-registry.schema.json"], registry=store),
        "publisher": Draft202012Validator(documents["publisher-provided.schema.json"], registry=store),
        "servers": Draft202012Validator({"$ref": f"{legacy_id}#/$defs/server"}, registry=store),
        "remote_servers": Draft202012Validator({"$ref": f"{legacy_id}#/$defs/remote_server"}, registry=store),
    }


def detect_format(document: object) -> str | None:
    """ToolHive's rule (pkg/registry/legacyhint): a `data` object is upstream; servers/remote_servers is legacy."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("data"), dict):
        return "upstream"
    if any(key in document for key in ("servers", "remote_servers", "groups")):
        return "legacy"
    return None


def _where(path: list[Any], document: dict[str, Any]) -> str:
    """`data.servers[3].packages[0].transport` -> server name + field path, for messages."""
    server = ""
    node: Any = document
    for part in path[:3]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "name" in node and not server:
            server = str(node["name"])
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return f"server {server!r}, field {text}" if server else f"field {text or '(top level)'}"


def _publisher_meta(server: object) -> object:
    """`_meta[PUBLISHER_KEY]` of a server, or None; any level may have any type before validation.

    Why: a document with `"_meta": null` (or a non-list `servers`) raised AttributeError/TypeError here instead of
    a RegistryError naming the registry (found by the fault suite's registry fuzzing).
    """
    meta = server.get("_meta") if isinstance(server, dict) else None
    return meta.get(PUBLISHER_KEY) if isinstance(meta, dict) else None


def _legacy_entry_errors(document: dict[str, Any]) -> list[ValidationError]:
    """Errors of legacy entries whose names the schema's patternProperties do not match (so it never checks them).

    Why: such an entry (`"remote_servers": {"": null}`, say) passed validation unchecked and then crashed the
    conversion with AttributeError instead of a RegistryError (found by the fault suite's registry fuzzing). Every
    entry is converted, so every entry is validated against its definition.
    """
    errors: list[ValidationError] = []
    for section in ("servers", "remote_servers"):
        entries = document.get(section)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            if LEGACY_NAME.search(name):
                continue  # the document schema validated it already
            for error in _validators()[section].iter_errors(entry):
                error.path.extendleft([name, section])  # positions relative to the document, as _where expects
                errors.append(error)
    return errors


def validate_document(registry: str, document: dict[str, Any], kind: str) -> None:
    errors = sorted(_validators()[kind].iter_errors(document), key=lambda e: list(e.absolute_path))
    if kind == "legacy":
        errors += _legacy_entry_errors(document)
    if kind == "upstream":
        servers = document["data"].get("servers")
        for server in servers if isinstance(servers, list) else []:
            meta = _publisher_meta(server)
            if meta is not None:
                errors += list(_validators()["publisher"].iter_errors(meta))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise RegistryError(
            f"registry {registry!r} is not a valid {kind} registry: "
            f"{_where(list(first.absolute_path), document)}: {first.message}{more}"
        )


def _port_of(url: str | None) -> int | None:
    if not url:
        return None
    try:
        return urlparse(url).port
    except ValueError:
        return None


def _env_from_upstream(items: list[dict[str, Any]]) -> tuple[EnvVarDef, ...]:
    return tuple(
        EnvVarDef(
            name=str(item["name"]),
            description=str(item.get("description", "")),
            required=bool(item.get("isRequired", False)),
            secret=bool(item.get("isSecret", False)),
            default=None if item.get("default") is None else str(item["default"]),
        )
        for item in items
    )


def _flatten_arguments(arguments: list[dict[str, Any]]) -> tuple[str, ...]:
    """packageArguments -> argv: named ones as name then value, positional ones as their value."""
    argv: list[str] = []
    for argument in arguments:
        if argument.get("type") == "named":
            argv.append(str(argument.get("name", "")))
            if argument.get("value") is not None:
                argv.append(str(argument["value"]))
        elif argument.get("value") is not None:
            argv.append(str(argument["value"]))
    return tuple(argv)


def _upstream_entry(server: dict[str, Any]) -> ServerEntry:
    extensions = server.get("_meta", {}).get(PUBLISHER_KEY, {}).get(STACKLOK, {})
    package = chosen_package(server.get("packages", []))  # oci, else npm/pypi (built as npx:// / uvx://)
    if package is not None:
        extra = extensions.get(package["identifier"], {})
        transport = package.get("transport", {})
        args = _flatten_arguments(package.get("packageArguments", [])) or tuple(extra.get("args", ()))
        return ServerEntry(
            name=server["name"],
            description=server.get("description", ""),
            image=package_image(package),
            transport=transport.get("type", "stdio"),
            target_port=_port_of(transport.get("url")),
            proxy_port=extra.get("proxy_port"),
            args=args,
            env_vars=_env_from_upstream(package.get("environmentVariables", [])),
            permissions=extra.get("permissions"),
            tools=tuple(extra.get("tools", ())),
            tier=extra.get("tier", ""),
            status=extra.get("status", ""),
        )
    remote = (server.get("remotes") or [{}])[0]
    extra = extensions.get(remote.get("url", ""), {})
    return ServerEntry(
        name=server["name"],
        description=server.get("description", ""),
        url=remote.get("url"),
        transport=remote.get("type", "streamable-http"),
        proxy_port=extra.get("proxy_port"),
        tools=tuple(extra.get("tools", ())),
        tier=extra.get("tier", ""),
        status=extra.get("status", ""),
        headers=tuple(remote.get("headers", ())),
        env_vars=tuple(EnvVarDef(**_legacy_env(e)) for e in extra.get("env_vars", ())),
    )


def _legacy_env(item: dict[str, Any]) -> dict[str, Any]:
    default = item.get("default")
    return {
        "name": str(item["name"]),
        "description": str(item.get("description", "")),
        "required": bool(item.get("required", False)),
        "secret": bool(item.get("secret", False)),
        "default": None if default in (None, "") else str(default),
    }


def _legacy_entry(name: str, data: dict[str, Any], remote: bool) -> ServerEntry:
    return ServerEntry(
        name=name,
        description=data.get("description", ""),
        image=None if remote else data.get("image"),
        url=data.get("url") if remote else None,
        transport=data.get("transport", "streamable-http" if remote else "stdio"),
        target_port=data.get("target_port") or None,
        proxy_port=data.get("proxy_port") or None,
        args=tuple(data.get("args", ())),
        env_vars=tuple(EnvVarDef(**_legacy_env(e)) for e in data.get("env_vars", ())),
        permissions=data.get("permissions"),
        tools=tuple(data.get("tools", ())),
        tier=data.get("tier", ""),
        status=data.get("status", ""),
        headers=tuple(data.get("headers", ())),
        legacy=dict(data),
    )


def parse_catalogue(registry: str, document: object) -> Catalogue:
    """Validate and convert a registry document; every failure is a RegistryError naming `registry`."""
    kind = detect_format(document)
    if kind is None or not isinstance(document, dict):
        raise RegistryError(
            f"registry {registry!r} is neither the upstream MCP registry format (a `data` object) "
            "nor the legacy ToolHive format (a `servers` map)"
        )
    validate_document(registry, document, kind)
    if kind == "upstream":
        servers = tuple(_upstream_entry(s) for s in document["data"]["servers"])
        return Catalogue(document["version"], document["meta"]["last_updated"], servers, kind)
    entries = [_legacy_entry(n, d, False) for n, d in document.get("servers", {}).items()]
    entries += [_legacy_entry(n, d, True) for n, d in document.get("remote_servers", {}).items()]
    return Catalogue(document["version"], document["last_updated"], tuple(entries), kind)
