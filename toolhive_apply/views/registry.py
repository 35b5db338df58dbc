"""Registry views in ToolHive's API shapes (facts §7.2; swagger `registry.ImageMetadata`, `registryInfo`, ...)."""

from __future__ import annotations

from typing import Any

from toolhive_apply.registry.formats import Catalogue, EnvVarDef, ServerEntry


def _env(var: EnvVarDef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": var.name, "description": var.description, "required": var.required}
    if var.secret:
        out["secret"] = True
    if var.default is not None:
        out["default"] = var.default
    return out


def server_metadata(entry: ServerEntry) -> dict[str, Any]:
    """`registry.ImageMetadata` for container servers, `registry.RemoteServerMetadata` for remote ones."""
    out: dict[str, Any] = {
        "name": entry.name,
        "description": entry.description,
        "tier": entry.tier,
        "status": entry.status,
        "transport": entry.transport,
        "tools": list(entry.tools),
        "env_vars": [_env(v) for v in entry.env_vars],
    }
    if entry.is_remote:
        out["url"] = entry.url
        out["headers"] = [dict(h) for h in entry.headers]
    else:
        out["image"] = entry.image
        out["args"] = list(entry.args)
        if entry.target_port:
            out["target_port"] = entry.target_port
        if entry.permissions is not None:
            out["permissions"] = entry.permissions
    if entry.proxy_port:
        out["proxy_port"] = entry.proxy_port
    return out


def registry_info(name: str, kind: str, source: str, catalogue: Catalogue) -> dict[str, Any]:
    """One entry of `{"registries": [...]}`."""
    return {
        "name": name,
        "version": catalogue.version,
        "last_updated": catalogue.last_updated,
        "server_count": len(catalogue.servers),
        "type": kind,
        "source": source,
    }


def servers_listing(catalogue: Catalogue) -> dict[str, list[dict[str, Any]]]:
    return {
        "servers": [server_metadata(e) for e in catalogue.servers if not e.is_remote],
        "remote_servers": [server_metadata(e) for e in catalogue.servers if e.is_remote],
    }


def registry_details(name: str, kind: str, source: str, catalogue: Catalogue) -> dict[str, Any]:
    listing = servers_listing(catalogue)
    return {
        **registry_info(name, kind, source, catalogue),
        "registry": {
            "version": catalogue.version,
            "last_updated": catalogue.last_updated,
            "servers": {s["name"]: s for s in listing["servers"]},
            "remote_servers": {s["name"]: s for s in listing["remote_servers"]},
            "groups": [],
        },
    }


def server_view(entry: ServerEntry) -> dict[str, Any]:
    key = "remote_server" if entry.is_remote else "server"
    return {key: server_metadata(entry), "is_remote": entry.is_remote}
