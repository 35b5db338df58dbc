"""`export --as-manifest`: a manifest, from live state, that validates and plans no changes against that state.

Everything the plan of the stack depends on is written out: workloads with their defaults made explicit, registries
(from their records), clients (from this machine's client records), groups with their descriptions, the secret
store's settings and every secret as a `present: true` reference (from the stack record). Values and credentials
never appear: the stack record holds only names, descriptions and the store's location.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolhive_apply.clients import UnsupportedPlatformError, client_table, config_path, is_installed
from toolhive_apply.engine.resource import Spec
from toolhive_apply.manifest.loader import API_VERSION
from toolhive_apply.manifest.model import DEFAULT_GROUP
from toolhive_apply.providers.client.state import ClientRecord
from toolhive_apply.providers.workload.endpoint import endpoint_manifest
from toolhive_apply.providers.workload.observability import manifest_fields as observe_manifest_fields
from toolhive_apply.providers.workload.spec import REMOTE_BEARER_ENV
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.views.client_auth import bearer_secrets, with_client_auth
from toolhive_apply.views.vmcp import with_gateways


@dataclass(frozen=True, slots=True)
class LiveStack:
    """What the export reads: the stack's workload specs and records, and this machine's client records."""

    stack: str
    workloads: Sequence[Spec]
    registries: Sequence[Spec] = ()
    record: Spec | None = None
    clients: Mapping[str, ClientRecord] = field(default_factory=dict)
    home: Path = field(default_factory=Path.home)
    docker_host: str | None = None


def as_manifest(live: LiveStack) -> dict[str, Any]:
    """A manifest that, planned against the same state, has no changes (sections in the manifest's own order)."""
    everything = sorted(live.workloads, key=lambda s: str(s["name"]))
    gateways = {str(s["group"]): s for s in everything if s.get("vmcp") is not None}  # written back as groups[].vmcp
    specs = [s for s in everything if s.get("vmcp") is None]
    record = live.record or {}
    manifest: dict[str, Any] = {"apiVersion": API_VERSION, "settings": _settings(live, specs, record)}
    clients = [_client_entry(name, rec, live.home) for name, rec in _in_table_order(live.clients)]
    used = [str(s["group"]) for s in specs] + [g for c in clients for g in c["groups"]]
    tokens = bearer_secrets(live.clients)  # client_auth: the secrets' names, from the client records
    workloads, groups = with_client_auth(
        [_workload_entry(s) for s in specs], with_gateways(_groups(record, [*used, *gateways]), gateways), tokens
    )
    sections = {
        "groups": groups,
        "registries": [_registry_entry(r) for r in sorted(live.registries, key=lambda r: str(r["name"]))],
        "secrets": _secrets(record, specs, tokens.values()),
        "clients": clients,
    }
    manifest.update({key: value for key, value in sections.items() if value})
    manifest["workloads"] = workloads
    return manifest


def _settings(live: LiveStack, specs: Sequence[Spec], record: Spec) -> dict[str, Any]:
    settings: dict[str, Any] = {"stack": live.stack}
    store = record.get("secret_store")
    if isinstance(store, dict) and store:
        settings["secrets"] = {k: v for k, v in store.items() if v}
    if live.docker_host:
        settings["docker"] = {"host": live.docker_host}
    proxies = [s["proxy"] for s in specs if s.get("proxy")]
    if proxies:  # settings shared by the stack's workloads: any one spec carries them
        settings["proxy"] = {k: v for k, v in proxies[0].items() if v is not None}
    return settings


def _groups(record: Spec, used: Iterable[str]) -> list[dict[str, Any]]:
    """Declared groups with their descriptions, and any group a workload or client uses that the record lacks."""
    declared = record.get("declared_groups")
    groups: dict[str, str] = {}
    if isinstance(declared, dict):
        groups = {str(name): str((about or {}).get("description") or "") for name, about in declared.items()}
    for name in used:
        if name != DEFAULT_GROUP:
            groups.setdefault(name, "")
    return [{"name": name, **({"description": text} if text else {})} for name, text in sorted(groups.items())]


def _secrets(record: Spec, specs: Sequence[Spec], tokens: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every declared secret, and every secret a workload uses, as a reference to what the store holds."""
    declared = record.get("declared_secrets")
    secrets: dict[str, str] = {}
    if isinstance(declared, dict):
        secrets = {str(key): str((about or {}).get("description") or "") for key, about in declared.items()}
    for spec in specs:
        for ref in spec.get("secrets") or ():
            secrets.setdefault(str(ref["name"]), "")
    for name in tokens:
        secrets.setdefault(name, "")
    return [
        {"key": key, **({"description": text} if text else {}), "present": True}
        for key, text in sorted(secrets.items())
    ]


def _in_table_order(records: Mapping[str, ClientRecord]) -> list[tuple[str, ClientRecord]]:
    names = client_table().names()
    return [(name, records[name]) for name in names if name in records]


def _client_entry(name: str, record: ClientRecord, home: Path) -> dict[str, Any]:
    """The client with its groups; its file only when it is not the default one, and `create` when the client is
    not installed here (the plan would otherwise skip it, and so delete its entries)."""
    client = client_table().get(name)
    entry: dict[str, Any] = {"name": name, "groups": list(record.groups)}
    try:
        default = config_path(client, home)
        default = default.parent.resolve() / default.name
    except UnsupportedPlatformError:
        default = None
    if record.path != default:
        entry["config_path"] = str(record.path)
    if not is_installed(client, home, override=str(record.path)):
        entry["create"] = True
    return entry


def _registry_entry(spec: Spec) -> dict[str, Any]:
    key = {"file": "local_path", "url": "url", "api": "api_url"}[str(spec["type"])]
    entry = {"name": spec["name"], key: spec["source"]}
    entry.update({k: spec[k] for k in ("allow_private_ip", "redirect_hosts") if spec.get(k)})
    return entry


def _workload_entry(spec: Spec) -> dict[str, Any]:
    """A manifest entry that resolves back to exactly `spec` (defaults written out, nothing implied)."""
    entry: dict[str, Any] = {"name": spec["name"]}
    if spec.get("registry_server"):
        registry, _, server = str(spec["registry_server"]).partition("/")
        entry.update({"registry": registry, "server": server})
    elif spec.get("remote"):
        entry["url"] = spec["url"]
    else:
        entry["image"] = spec["image"]
    entry |= {
        "transport": spec["transport"],
        "proxy_port": spec["proxy_port"],
        "host": spec["host"],
        "group": spec["group"],
        "network_isolation": spec["network_isolation"],
        "permission_profile": spec["permission_profile"],
    }
    if spec["transport"] == "stdio":
        entry["proxy_mode"] = spec["proxy_mode"]
    else:
        entry["target_port"] = spec["target_port"]
    entry.update({k: v for k, v in _optional_fields(spec).items() if v is not None})
    return entry


def _optional_fields(spec: Spec) -> dict[str, Any]:
    remote = bool(spec.get("remote"))
    typed = WorkloadSpec.from_document(spec)  # once, for both typed readers below
    return {
        "description": spec.get("description") or None,
        "cmd_arguments": list(spec["cmd_arguments"]) or None,
        "env_vars": dict(spec["env_vars"]) or None,
        # a remote server's secrets are its headers' and its bearer token's, written back as those
        "secrets": None if remote else list(spec["secrets"]) or None,
        "headers": _headers(spec) if remote else None,
        "oauth_config": _oauth(spec) if remote else None,
        "volumes": [_volume_entry(v) for v in spec["volumes"]] or None,
        "tools": list(spec["tools"]) or None,
        "tools_override": dict(spec["tools_override"]) or None,
        "trust_proxy_headers": spec["trust_proxy_headers"] or None,
        "allow_docker_gateway": True if spec.get("allow_docker_gateway") else None,
        "labels": dict(spec["labels"]) or None,
        "prune": False if spec["prune"] is False else None,
        "allow_privileged": True if (spec["permission_profile"] or {}).get("privileged") else None,
        "ready_timeout": spec.get("ready_timeout"),
        "session_ttl": _duration(spec["session_ttl"]) if spec.get("session_ttl") else None,
        **observe_manifest_fields(typed),
        "serve": spec.get("serve"),
        **endpoint_manifest(typed),
    }


def _headers(spec: Spec) -> list[dict[str, str]] | None:
    by_target = {str(ref["target"]): str(ref["name"]) for ref in spec.get("secrets") or ()}
    headers = []
    for header in spec.get("headers") or ():
        if "env" in header:
            headers.append({"name": str(header["name"]), "secret": by_target[str(header["env"])]})
        else:
            headers.append({"name": str(header["name"]), "value": str(header.get("value", ""))})
    return headers or None


def _oauth(spec: Spec) -> dict[str, Any] | None:
    bearer = [ref for ref in spec.get("secrets") or () if ref["target"] == REMOTE_BEARER_ENV]
    return {"bearer_token": {"name": bearer[0]["name"], "target": REMOTE_BEARER_ENV}} if bearer else None


def _duration(seconds: float) -> str:
    """Seconds back into the manifest's duration form (`2h`, `1h30m`, `90s` as `1m30s`)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def _volume_entry(mount: str) -> str:
    host, container, mode = mount.rsplit(":", 2)
    return f"{host}:{container}:ro" if mode == "ro" else f"{host}:{container}"
