"""Manifest pipeline: load (positions kept) -> render templates -> schema -> model -> semantic checks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from toolhive_apply.credentials import manifest_credential_names, register_credentials
from toolhive_apply.errors import ManifestError, ManifestIssue, Origin
from toolhive_apply.manifest.checks import check_manifest, collect_warnings
from toolhive_apply.manifest.loader import Positions, load_file, load_manifest_files
from toolhive_apply.manifest.markers import copy_tree, has_template
from toolhive_apply.manifest.model import Manifest, build_manifest
from toolhive_apply.manifest.schema import validate_structure

__all__ = ["Manifest", "load_manifest", "parse_var_options"]


def parse_var_options(pairs: Sequence[str], var_files: Sequence[Path]) -> dict[str, Any]:
    """`--var-file` mappings first, then `--var KEY=VALUE` (later wins, as in Ansible)."""
    result: dict[str, Any] = {}
    issues: list[ManifestIssue] = []
    for file in var_files:
        data = load_file(file, Positions(), issues) if file.exists() else None
        if not file.exists():
            issues.append(ManifestIssue(Origin(file, 1, 1), "", "var file not found"))
        elif data is not None:
            result.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            issues.append(ManifestIssue(None, "--var", f"expected KEY=VALUE, got {pair!r}"))
            continue
        result[key.strip()] = value
    if issues:
        raise ManifestError(issues)
    return result


def _render(
    data: dict[str, Any], positions: Positions, extra_vars: Mapping[str, Any], environ: Mapping[str, str] | None
) -> tuple[dict[str, Any], list[ManifestIssue]]:
    """Templates rendered; a manifest with no template and no --var is its own rendering, without jinja2 (the
    credentials it names are registered for scrubbing all the same, as rendering does)."""
    if extra_vars or has_template(data):
        from toolhive_apply.manifest.template import render_manifest

        return render_manifest(data, positions, extra_vars, environ)
    register_credentials(os.environ if environ is None else environ, manifest_credential_names(data))
    return copy_tree(data), []


def load_manifest(
    paths: Iterable[Path],
    extra_vars: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Manifest:
    """The whole pipeline; raises ManifestError listing every problem, sorted by position."""
    loaded, issues = load_manifest_files(paths)
    rendered, template_issues = _render(loaded.data, loaded.positions, extra_vars or {}, environ)
    issues += template_issues
    failed_fields = {issue.field for issue in template_issues}
    issues += [i for i in validate_structure(rendered, loaded.positions) if i.field not in failed_fields]
    if issues:
        raise ManifestError(issues)
    manifest = build_manifest(rendered, loaded)
    issues = check_manifest(manifest)
    if issues:
        raise ManifestError(issues)
    return dataclasses.replace(manifest, warnings=tuple(collect_warnings(manifest)))
