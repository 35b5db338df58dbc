"""validate's judgement of every endpoint's security settings: each problem at the field (or policy) it is about.

A non-loopback endpoint without authentication is refused unless `auth: anonymous` says so; URLs must be URLs
(https but on loopback); a JWKS file must be a public JWKS; authz needs OIDC and policies the proxy can evaluate.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.auth import OidcConfig
from toolhive_apply.manifest.auth_files import is_url, loopback_host, read_authz, read_jwks, url_problem
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import DEFAULT_HOST, Manifest, Workload

_ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}|\*))?$")


@dataclass(frozen=True, slots=True)
class EffectiveOidc:
    """The OIDC block that applies to a workload, where it was written and what its relative paths are against."""

    config: OidcConfig
    path: tuple[str | int, ...]
    base_dir: Path


def effective_oidc(workload: Workload, manifest: Manifest) -> EffectiveOidc | None:
    """The workload's own `oidc` wins over settings.auth; None when the endpoint is anonymous."""
    if workload.auth == "anonymous":
        return None
    if workload.oidc is not None:
        return EffectiveOidc(workload.oidc, ("workloads", workload.index, "oidc"), workload.base_dir)
    stack = manifest.settings.auth
    if stack is not None and stack.oidc is not None:
        origin = manifest.positions.find(("settings", "auth"))
        base = origin.file.resolve().parent if origin else workload.base_dir
        return EffectiveOidc(stack.oidc, ("settings", "auth", "oidc"), base)
    return None


def explicitly_anonymous(workload: Workload, manifest: Manifest) -> bool:
    stack = manifest.settings.auth
    return workload.auth == "anonymous" or (workload.oidc is None and stack is not None and stack.anonymous)


def _issue(workload: Workload, path: tuple[str | int, ...], message: str) -> ManifestIssue:
    return ManifestIssue(workload.origin, format_path(path), message)


def _oidc_issues(workload: Workload, effective: EffectiveOidc, secrets: set[str]) -> Iterator[ManifestIssue]:
    oidc, where = effective.config, effective.path
    problem = url_problem(oidc.issuer, "issuer")
    if problem:
        yield _issue(workload, (*where, "issuer"), problem)
    if oidc.jwks_url is None and oidc.introspection_url is None:
        yield _issue(workload, where, "needs jwks_url (a URL or a local JWKS file) or introspection_url")
    if oidc.jwks_url is not None:
        if is_url(oidc.jwks_url):
            problem = url_problem(oidc.jwks_url, "jwks_url")
        else:
            problem = read_jwks(effective.base_dir / oidc.jwks_url)[1]
        if problem:
            yield _issue(workload, (*where, "jwks_url"), problem)
    if oidc.introspection_url is not None:
        problem = url_problem(oidc.introspection_url, "introspection_url")
        if problem:
            yield _issue(workload, (*where, "introspection_url"), problem)
        if not oidc.client_id:
            yield _issue(workload, where, "introspection_url needs client_id (and usually client_secret)")
    if oidc.client_secret is not None and oidc.client_secret not in secrets:
        yield _issue(
            workload,
            (*where, "client_secret"),
            f"unknown secret {oidc.client_secret!r}: declare it under secrets (present: true for one kept elsewhere)",
        )
    if oidc.audience is None:
        yield _issue(workload, where, "needs audience: without it a token for any resource of the issuer would pass")


def _workload_issues(workload: Workload, manifest: Manifest, secrets: set[str]) -> Iterator[ManifestIssue]:
    path = ("workloads", workload.index)
    oidc = effective_oidc(workload, manifest)
    host = workload.host or manifest.settings.default_host or DEFAULT_HOST
    if oidc is None and not loopback_host(host) and not explicitly_anonymous(workload, manifest):
        yield _issue(
            workload,
            (*path, "host"),
            f"{host!r} is not a loopback address, and this endpoint has no authentication: set oidc (or "
            "settings.auth), or write auth: anonymous to publish it without",
        )
    if workload.auth == "anonymous" and workload.oidc is not None:
        yield _issue(workload, (*path, "auth"), "auth: anonymous and oidc contradict each other; keep one")
    if oidc is not None:
        yield from _oidc_issues(workload, oidc, secrets)
    if workload.authz_config is not None:
        if oidc is None:
            yield _issue(
                workload,
                (*path, "authz_config"),
                "authz_config needs oidc: Cedar policies judge the token's subject and claims",
            )
        field = format_path((*path, "authz_config"))
        _doc, issues = read_authz(workload.authz_config, workload.base_dir, workload.origin, field)
        for found in issues:
            if not found.field.startswith(field):  # a problem inside the authz file: say whose file it is
                found = dataclasses.replace(
                    found, message=f"{found.message} (authz_config of workload {workload.name!r})"
                )
            yield found
    for index, origin in enumerate(workload.allowed_origins or ()):
        if not _ORIGIN.match(origin.rstrip("/")):
            yield _issue(
                workload,
                (*path, "allowed_origins", index),
                f"{origin!r} is not an origin: scheme://host[:port] (http or https, port a number or *), no path",
            )


def check_auth(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Every endpoint-security problem of the manifest (see the module docstring)."""
    secrets = {s.key for s in manifest.secrets}
    for workload in manifest.workloads:
        yield from _workload_issues(workload, manifest, secrets)


def auth_warnings(manifest: Manifest) -> Iterator[ManifestIssue]:
    """A client that sees an endpoint with OIDC but is not known to follow the MCP authorization flow (the client
    table's `endpoint_auth`): its entry is written, but whether it gets through is the user's to check."""
    from toolhive_apply.clients.table import client_table

    table = {spec.name: spec for spec in client_table()}
    for index, client in enumerate(manifest.clients):
        spec = table.get(client.name)
        if spec is None or spec.endpoint_auth == "oauth":
            continue
        guarded = [w.name for w in manifest.workloads if w.group in client.groups and effective_oidc(w, manifest)]
        if guarded:
            yield ManifestIssue(
                client.origin,
                format_path(("clients", index, "name")),
                f"warning: {client.name} sees {', '.join(map(repr, guarded))}, which need(s) an OIDC token, and is "
                "not known to follow the MCP authorization flow from the 401 (claude-code, vscode, gemini-cli and "
                "cursor do)",
            )
