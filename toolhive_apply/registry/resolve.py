"""Workloads that say `registry:` + `server:` get image, transport, ports, args, env and profile from the entry.

Anything the workload sets itself wins (ToolHive's rule). The result is what the engine diffs, and the origin of
every filled-in value is kept so `plan --explain` and the JSON plan can say where it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolhive_apply.errors import ManifestError, ManifestIssue
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest, Registry, Workload
from toolhive_apply.manifest.mounts import mount_problems
from toolhive_apply.registry.formats import Catalogue, ServerEntry, parse_catalogue
from toolhive_apply.registry.sources import Fetched, FetchPolicy, load_file, load_remote


@dataclass(frozen=True, slots=True)
class Resolved:
    manifest: Manifest
    explain: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    catalogues: Mapping[str, Catalogue] = field(default_factory=dict)


def source_of(registry: Registry) -> tuple[str, str]:
    """(type, source) as ToolHive's registry listing names them: file | url | api."""
    if registry.local_path is not None:
        return "file", str((registry.base_dir / registry.local_path).resolve())
    if registry.url is not None:
        return "url", registry.url
    return "api", str(registry.api_url)


def policy_of(registry: Registry) -> FetchPolicy:
    return FetchPolicy(allow_private_ip=registry.allow_private_ip, redirect_hosts=frozenset(registry.redirect_hosts))


def fetch_registry(registry: Registry) -> Fetched:
    kind, source = source_of(registry)
    if kind == "file":
        return load_file(Path(source), registry.name)
    return load_remote(f"{kind}:{source}", registry.name, ttl=registry.cache_ttl, policy=policy_of(registry))


def load_catalogues(manifest: Manifest, wanted: set[str]) -> tuple[dict[str, Catalogue], list[str]]:
    """Each registry a workload uses is read once per run."""
    catalogues: dict[str, Catalogue] = {}
    warnings: list[str] = []
    for registry in manifest.registries:
        if registry.name not in wanted:
            continue
        fetched = fetch_registry(registry)
        if fetched.warning:
            warnings.append(fetched.warning)
        catalogues[registry.name] = parse_catalogue(registry.name, fetched.document)
    return catalogues, warnings


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


def resolve_registries(manifest: Manifest) -> Resolved:
    """Fill registry-backed workloads; ManifestError lists every unknown server or missing variable."""
    wanted = {w.registry for w in manifest.workloads if w.registry}
    if not wanted:
        return Resolved(manifest)
    catalogues, warnings = load_catalogues(manifest, wanted)
    workloads: list[Workload] = []
    explain: dict[str, dict[str, str]] = {}
    issues: list[ManifestIssue] = []
    for workload in manifest.workloads:
        if not workload.registry or not workload.server:
            workloads.append(workload)
            continue
        catalogue = catalogues[workload.registry]
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
    if issues:
        raise ManifestError(issues)
    return Resolved(dataclasses.replace(manifest, workloads=tuple(workloads)), explain, tuple(warnings), catalogues)
