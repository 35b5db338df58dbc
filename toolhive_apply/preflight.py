"""The checks of a manifest beyond loading that need no Docker: `validate` runs them offline, `plan` online.

Loading checks one manifest on its own; these need what it points to: registry files (offline, remote registries
only from the cache), the servers and variables they define, the host ports they supply. A new user runs `validate`
first, so everything that can be known without Docker is said there, at the field it is about.
"""

from __future__ import annotations

import dataclasses

from toolhive_apply.errors import ManifestError, ManifestIssue
from toolhive_apply.manifest.header_forward import header_forward_issues
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.package_checks import package_findings
from toolhive_apply.manifest.positions import positioned
from toolhive_apply.registry.resolve import Resolved, resolve_registries


def unattended_issues(manifest: Manifest) -> list[ManifestIssue]:
    """OAuth flows that need a browser cannot run in a proxy container: only a bearer token from the store can."""
    return [
        ManifestIssue(
            w.origin,
            format_path(("workloads", w.index, "oauth_config")),
            "only oauth_config.bearer_token is supported: a browser OAuth flow cannot run unattended in a proxy "
            "container (issue a token out of band, store it as a secret and reference it as "
            "oauth_config.bearer_token)",
        )
        for w in manifest.workloads
        if w.oauth_config and set(w.oauth_config) - {"bearer_token"}
    ]


def preflight(manifest: Manifest, offline: bool) -> Resolved:
    """Registries resolved (offline: remote ones from the cache only) and every offline problem raised at once,
    each at its field; the notes of the result say what could not be checked."""
    issues = unattended_issues(manifest)
    try:
        resolved = resolve_registries(manifest, offline=offline)
    except ManifestError as error:
        issues.extend(error.issues)
        raise ManifestError(positioned(issues, manifest.positions)) from None
    packages = package_findings(resolved.manifest, resolved.explain)  # registry-filled images included
    issues.extend(packages.errors)
    issues.extend(header_forward_issues(manifest))
    if issues:
        raise ManifestError(positioned(issues, manifest.positions))
    if packages.warnings:  # validate prints notes, plan prints warnings
        notes = tuple(positioned(packages.warnings, manifest.positions))
        resolved = dataclasses.replace(
            resolved, notes=resolved.notes + notes, warnings=resolved.warnings + tuple(str(n) for n in notes)
        )
    return resolved
