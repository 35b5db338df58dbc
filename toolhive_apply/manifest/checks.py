"""Semantic checks the JSON Schema cannot express: references, uniqueness, ports, volumes, profiles.

Each check returns issues (never raises) so that one run reports every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from toolhive_apply.errors import ManifestIssue, Origin
from toolhive_apply.manifest.auth_checks import auth_warnings, check_auth
from toolhive_apply.manifest.client_auth import check_client_auth
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import DEFAULT_GROUP, DEFAULT_HOST, Manifest, Workload
from toolhive_apply.manifest.mounts import allow_host_path_problems, mount_problems
from toolhive_apply.manifest.names import check_names
from toolhive_apply.manifest.observability import manifest_problems as observe_problems
from toolhive_apply.manifest.ports import manifest_ports
from toolhive_apply.manifest.positions import positioned
from toolhive_apply.manifest.vmcp_checks import check_vmcp, vmcp_warnings

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _issue(origin: Origin | None, path: tuple[str | int, ...], message: str) -> ManifestIssue:
    return ManifestIssue(origin, format_path(path), message)


def _unique(section: str, entries: Iterable[tuple[str, Origin | None]], key: str = "name") -> Iterator[ManifestIssue]:
    seen: dict[str, Origin | None] = {}
    for index, (name, origin) in enumerate(entries):
        if name in seen:
            yield _issue(origin, (section, index, key), f"{name!r} is defined twice (first at {seen[name]})")
        else:
            seen[name] = origin


def check_uniqueness(manifest: Manifest) -> Iterator[ManifestIssue]:
    yield from _unique("groups", ((g.name, g.origin) for g in manifest.groups))
    yield from _unique("registries", ((r.name, r.origin) for r in manifest.registries))
    yield from _unique("secrets", ((s.key, s.origin) for s in manifest.secrets), key="key")
    yield from _unique("clients", ((c.name, c.origin) for c in manifest.clients))
    yield from _unique("workloads", ((w.name, w.origin) for w in manifest.workloads))


def _source_issues(w: Workload, registries: set[str]) -> Iterator[ManifestIssue]:
    path = ("workloads", w.index)
    sources = [key for key in ("image", "server", "url") if getattr(w, key)]
    if len(sources) != 1:
        found = ", ".join(sources) or "none"
        yield _issue(w.origin, path, f"needs exactly one of image, server (with registry) or url (found: {found})")
    if w.server and not w.registry:
        yield _issue(w.origin, (*path, "registry"), "server needs registry: name the registry to resolve it from")
    if w.registry and not w.server:
        yield _issue(w.origin, (*path, "server"), "registry needs server: name the server to take from it")
    if w.registry and w.registry not in registries:
        yield _issue(w.origin, (*path, "registry"), f"unknown registry {w.registry!r}{_known(registries)}")
    if w.url and w.transport == "stdio":
        yield _issue(w.origin, (*path, "transport"), "a remote server (url) speaks sse or streamable-http")
    if w.proxy_mode and w.transport not in (None, "stdio"):
        yield _issue(w.origin, (*path, "proxy_mode"), "proxy_mode applies to stdio servers only")
    if w.session_mode and (w.url or w.transport not in (None, "stdio")):
        yield _issue(w.origin, (*path, "session_mode"), "session_mode applies to stdio servers only")


def _known(names: set[str]) -> str:
    return f" (declared: {', '.join(sorted(names))})" if names else " (none declared)"


def _secret_issues(w: Workload, declared: set[str]) -> Iterator[ManifestIssue]:
    for index, ref in enumerate(w.secrets):
        path = ("workloads", w.index, "secrets", index)
        if ref.name not in declared:
            yield _issue(
                w.origin,
                (*path, "name"),
                f"unknown secret {ref.name!r}: declare it under secrets (use present: true for one managed elsewhere)",
            )
        if ref.delivery == "env" and not _ENV_NAME.match(ref.target):
            yield _issue(w.origin, (*path, "target"), f"{ref.target!r} is not an environment variable name")
        if ref.delivery == "file" and not ref.target.startswith("/"):
            yield _issue(w.origin, (*path, "target"), "with as: file, target is an absolute path in the container")


def _mount_issues(w: Workload) -> Iterator[ManifestIssue]:
    profile = w.permission_profile if isinstance(w.permission_profile, dict) else None
    for path, message in mount_problems(w.base_dir, profile, w.volumes, w.allow_host_paths):
        yield _issue(w.origin, ("workloads", w.index, *path), message)
    for path, message in allow_host_path_problems(w.base_dir, w.allow_host_paths):
        yield _issue(w.origin, ("workloads", w.index, *path), message)


def _profile_issues(w: Workload) -> Iterator[ManifestIssue]:
    profile = w.permission_profile
    path = ("workloads", w.index, "permission_profile")
    if isinstance(profile, dict) and profile.get("privileged") and not w.allow_privileged:
        yield _issue(w.origin, (*path, "privileged"), "a privileged container needs allow_privileged: true")
    if not w.network_isolation:
        return
    where = ("workloads", w.index, "network_isolation")
    if w.url:
        yield _issue(w.origin, where, "a remote server (url) runs no container to isolate; remove network_isolation")
    mode = ((profile.get("network") or {}).get("mode") or "") if isinstance(profile, dict) else ""
    if mode not in ("", "bridge", "default", "none"):
        yield _issue(
            w.origin,
            where,
            f"network isolation needs bridge networking, but the profile sets network.mode {mode!r} "
            "(ToolHive refuses this combination too)",
        )


def _profile_warnings(w: Workload) -> Iterator[ManifestIssue]:
    profile = w.permission_profile
    if isinstance(profile, dict) and not w.network_isolation:
        outbound = (profile.get("network") or {}).get("outbound") or {}
        if outbound.get("allow_host") or outbound.get("allow_port"):
            yield _issue(
                w.origin,
                ("workloads", w.index, "permission_profile", "network"),
                "warning: outbound rules are enforced only with network_isolation: true; without it the server "
                "can reach anything",
            )
    if w.allow_docker_gateway and not w.network_isolation:
        yield _issue(
            w.origin,
            ("workloads", w.index, "allow_docker_gateway"),
            "warning: allow_docker_gateway matters only with network_isolation: true; without it the server can "
            "reach the Docker host anyway",
        )


def check_references(manifest: Manifest) -> Iterator[ManifestIssue]:
    groups = {g.name for g in manifest.groups} | {DEFAULT_GROUP}
    registries = {r.name for r in manifest.registries}
    secrets = {s.key for s in manifest.secrets}
    for w in manifest.workloads:
        yield from _source_issues(w, registries)
        if w.group not in groups:
            yield _issue(w.origin, ("workloads", w.index, "group"), f"unknown group {w.group!r}{_known(groups)}")
        yield from _secret_issues(w, secrets)
        yield from _mount_issues(w)
        yield from (_issue(w.origin, ("workloads", w.index, *p), m) for p, m in observe_problems(w, manifest))
        yield from _profile_issues(w)
    for index, client in enumerate(manifest.clients):
        for g_index, group in enumerate(client.groups):
            if group not in groups:
                yield _issue(
                    client.origin, ("clients", index, "groups", g_index), f"unknown group {group!r}{_known(groups)}"
                )
    for index, secret in enumerate(manifest.secrets):
        if secret.value_is_inline and not secret.insecure:
            yield _issue(
                secret.origin,
                ("secrets", index, "value"),
                "a plaintext value in the manifest needs insecure: true (prefer from: {env: ...} or {file: ...})",
            )


def check_ports(manifest: Manifest, sources: Mapping[str, str] | None = None) -> Iterator[ManifestIssue]:
    """Two workloads may not publish the same host address and port. `sources` says where a workload's port came
    from when the manifest does not set it (a registry entry), so the message can say so."""
    ports = manifest_ports(manifest)
    seen: dict[tuple[str, int], Workload] = {}
    names: set[str] = set()
    came = sources or {}
    for w in manifest.workloads:
        if w.name in names:
            continue  # a duplicate name is reported once, by check_uniqueness
        names.add(w.name)
        key = (w.host or manifest.settings.default_host or DEFAULT_HOST, ports[w.name])
        if key in seen:
            first = seen[key]
            via = "".join(f"; {who}'s port is from {came[who]}" for who in (w.name, first.name) if who in came)
            yield _issue(
                w.origin,
                ("workloads", w.index, "proxy_port"),
                f"port {key[1]} on {key[0]} is already used by workload {first.name!r} ({first.origin}){via}",
            )
        else:
            seen[key] = w


def collect_warnings(manifest: Manifest) -> list[ManifestIssue]:
    warnings = [issue for w in manifest.workloads for issue in _profile_warnings(w)] + list(vmcp_warnings(manifest))
    warnings += auth_warnings(manifest)
    warnings += [
        _issue(s.origin, ("secrets", i, "value"), "warning: plaintext secret value in the manifest (insecure: true)")
        for i, s in enumerate(manifest.secrets)
        if s.value_is_inline and s.insecure
    ]
    return positioned(warnings, manifest.positions)


CHECKS: tuple[Callable[[Manifest], Iterator[ManifestIssue]], ...] = (
    check_uniqueness,
    check_names,
    check_references,
    check_ports,
    check_vmcp,
    check_auth,
    check_client_auth,
)


def check_manifest(manifest: Manifest) -> list[ManifestIssue]:
    """Every semantic problem, from every check, each at the field it names."""
    return positioned((issue for check in CHECKS for issue in check(manifest)), manifest.positions)
