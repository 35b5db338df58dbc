"""Workloads that say `registry:` + `server:` get image, transport, ports, args, env and profile from the entry.

Anything the workload sets itself wins (ToolHive's rule). The result is what the engine diffs, and the origin of
every filled-in value is kept so `plan --explain` and the JSON plan can say where it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from toolhive_apply.errors import ManifestError, ManifestIssue
from toolhive_apply.manifest.checks import check_ports
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest, Registry, Workload
from toolhive_apply.manifest.mounts import mount_problems
from toolhive_apply.manifest.positions import positioned
from toolhive_apply.registry.formats import Catalogue, RegistryError, ServerEntry, parse_catalogue
from toolhive_apply.registry.sources import Fetched, FetchPolicy, load_cached, load_file, load_remote


@dataclass(frozen=True, slots=True)
class Resolved:
    manifest: Manifest
    explain: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    catalogues: Mapping[str, Catalogue] = field(default_factory=dict)
    notes: tuple[ManifestIssue, ...] = ()
    """What an offline resolution could not check (a remote registry with no cached copy), positioned."""


SOURCE_FIELDS: Final = {"file": "local_path", "url": "url", "api": "api_url"}


def source_of(registry: Registry) -> tuple[str, str]:
    """(type, source) as ToolHive's registry listing names them: file | url | api."""
    if registry.local_path is not None:
        return "file", str((registry.base_dir / registry.local_path).resolve())
    if registry.url is not None:
        return "url", registry.url
    return "api", str(registry.api_url)


def policy_of(registry: Registry) -> FetchPolicy:
    return FetchPolicy(allow_private_ip=registry.allow_private_ip, redirect_hosts=frozenset(registry.redirect_hosts))


def fetch_registry(registry: Registry, offline: bool = False) -> Fetched | None:
    """The registry's document; offline, a remote one only from the cache (None when there is no cached copy)."""
    kind, source = source_of(registry)
    if kind == "file":
        return load_file(Path(source), registry.name)
    if offline:
        return load_cached(f"{kind}:{source}", policy_of(registry))
    return load_remote(f"{kind}:{source}", registry.name, ttl=registry.cache_ttl, policy=policy_of(registry))


@dataclass(slots=True)
class _Catalogues:
    found: dict[str, Catalogue] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    issues: list[ManifestIssue] = field(default_factory=list)
    notes: list[ManifestIssue] = field(default_factory=list)


def load_catalogues(manifest: Manifest, wanted: set[str], offline: bool = False) -> _Catalogues:
    """Each registry a workload uses, and every local one (cheap, and a broken file is a broken declaration), read
    once per run; a registry that cannot be read or parsed is an issue at its source field."""
    loaded = _Catalogues()
    for index, registry in enumerate(manifest.registries):
        kind, _ = source_of(registry)
        if registry.name not in wanted and kind != "file":
            continue
        where = format_path(("registries", index, SOURCE_FIELDS[kind]))
        try:
            fetched = fetch_registry(registry, offline)
            if fetched is None:
                message = "warning: no cached copy here, so its servers are checked when plan fetches it"
                loaded.notes.append(ManifestIssue(registry.origin, where, message))
                continue
            if fetched.warning:
                loaded.warnings.append(fetched.warning)
            loaded.found[registry.name] = parse_catalogue(registry.name, fetched.document)
        except RegistryError as exc:
            hint = f" (hint: {exc.hint})" if exc.hint else ""
            loaded.issues.append(ManifestIssue(registry.origin, where, exc.message + hint))
    return loaded


def _issue(workload: Workload, path: tuple[str | int, ...], message: str) -> ManifestIssue:
    return ManifestIssue(workload.origin, format_path(("workloads", workload.index, *path)), message)


def _env_issues(workload: Workload, entry: ServerEntry, env: dict[str, str]) -> list[ManifestIssue]:
    """Required variables must be supplied; secret ones only through `secrets`; defaults fill the rest."""
    issues = []
    from_secrets = {ref.target for ref in workload.secrets if ref.delivery == "env"}
    for var in entry.env_vars:
        where = f"server {entry.name!r} of registry {workload.registry!r}"
        if var.name in workload.env_vars and var.secret:
            issues.append(
                _issue(workload, ("env_vars", var.name), f"{var.name} is a secret for {where}: supply it with secrets")
            )
        elif var.name in workload.env_vars or var.name in from_secrets:
            continue
        elif var.default is not None and not var.secret:
            env[var.name] = var.default
        elif var.required:
            how = "secrets: [{name: ..., target: " + var.name + "}]" if var.secret else f"env_vars: {{{var.name}: ...}}"
            issues.append(_issue(workload, ("server",), f"{where} requires environment variable {var.name}; add {how}"))
    return issues


def _tool_issues(workload: Workload, entry: ServerEntry) -> list[ManifestIssue]:
    if not entry.tools:
        return []
    known = set(entry.tools)
    issues = [
        _issue(workload, ("tools", i), f"tool {name!r} is not offered by server {entry.name!r}")
        for i, name in enumerate(workload.tools)
        if name not in known and name not in {o.get("name") for o in workload.tools_override.values()}
    ]
    issues += [
        _issue(workload, ("tools_override", name), f"tool {name!r} is not offered by server {entry.name!r}")
        for name in workload.tools_override
        if name not in known
    ]
    return issues


def resolve_workload(workload: Workload, entry: ServerEntry) -> tuple[Workload, dict[str, str], list[ManifestIssue]]:
    origin = f"registry {workload.registry}/{entry.name}"
    env = dict(workload.env_vars)
    issues = _env_issues(workload, entry, env) + _tool_issues(workload, entry)
    filled: dict[str, object] = {}
    candidates: dict[str, object] = {
        "image": entry.image,
        "url": entry.url,
        "transport": entry.transport,
        "target_port": entry.target_port,
        "proxy_port": entry.proxy_port,
        "cmd_arguments": entry.args,
        "permission_profile": entry.permissions,
    }
    for name, value in candidates.items():
        if value and not getattr(workload, name):
            filled[name] = value
    if "permission_profile" in filled:  # the registry's mounts get the same scrutiny as the manifest's own
        profile = entry.permissions if isinstance(entry.permissions, dict) else None
        for path, message in mount_problems(workload.base_dir, profile, (), workload.allow_host_paths):
            issues.append(_issue(workload, path, f"{message} (from {origin})"))
    explain = {name: origin for name in filled}
    explain.update({f"env_vars.{k}": origin for k in env if k not in workload.env_vars})
    resolved = dataclasses.replace(
        workload,
        env_vars=env,
        registry_server=f"{workload.registry}/{entry.name}",
        **filled,  # type: ignore[arg-type]
    )
    return resolved, explain, issues


def resolve_registries(manifest: Manifest, offline: bool = False) -> Resolved:
    """Fill registry-backed workloads; ManifestError lists every unreadable registry, unknown server, missing
    variable and host port two workloads share once registries supplied theirs, each at its field.

    Offline (`validate`), remote registries are read only from the cache; workloads of a registry with no cached
    copy stay unresolved, and a note says so.
    """
    wanted = {w.registry for w in manifest.workloads if w.registry}
    if not wanted and not any(r.local_path is not None for r in manifest.registries):
        return Resolved(manifest)
    loaded = load_catalogues(manifest, wanted, offline)
    workloads: list[Workload] = []
    explain: dict[str, dict[str, str]] = {}
    issues = list(loaded.issues)
    for workload in manifest.workloads:
        catalogue = loaded.found.get(workload.registry or "")
        if not workload.registry or not workload.server or catalogue is None:
            workloads.append(workload)  # no registry, or one that could not be read (already an issue or a note)
            continue
        entry = catalogue.find(workload.server)
        if entry is None:
            many = catalogue.ambiguous(workload.server)
            detail = f"ambiguous short name: {', '.join(many)}" if many else "not found"
            issues.append(
                _issue(workload, ("server",), f"{workload.server!r} in registry {workload.registry!r}: {detail}")
            )
            continue
        resolved, why, problems = resolve_workload(workload, entry)
        workloads.append(resolved)
        explain[workload.name] = why
        issues.extend(problems)
    result = dataclasses.replace(manifest, workloads=tuple(workloads))
    if not issues:  # ports are checked again once registries supplied theirs
        issues.extend(_port_issues(result, explain))
    if issues:
        raise ManifestError(positioned(issues, manifest.positions))
    return Resolved(result, explain, tuple(loaded.warnings), loaded.found, tuple(loaded.notes))


def _port_issues(manifest: Manifest, explain: Mapping[str, Mapping[str, str]]) -> list[ManifestIssue]:
    """Host ports shared by two workloads, now that registry entries supplied some."""
    sources = {name: why["proxy_port"] for name, why in explain.items() if "proxy_port" in why}
    return list(check_ports(manifest, sources))
