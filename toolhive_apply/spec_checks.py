"""The manifest's checks, run again on the workload specs a plan will apply: what reaches Docker is what is judged.

A saved plan is applied without its manifest, and a registry fills in fields after the manifest was checked, so
each workload spec is turned back into the manifest entry that makes exactly that container (mounts as they will
be bound, the profile as it will be enforced, the acknowledgements the spec was made with) and goes through the
same JSON Schema and semantic checks as a manifest. Export's spec-to-entry mapping does not fit: it rebuilds the
declaration (registry references, implied acknowledgements), this one rebuilds what will run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolhive_apply.engine.diff import field_changes, flatten
from toolhive_apply.engine.fields import table_for
from toolhive_apply.engine.plan import Action, Change, FieldChange
from toolhive_apply.engine.resource import DesiredResource, Kind, ResourceId, Spec
from toolhive_apply.errors import ManifestIssue, Origin
from toolhive_apply.manifest.checks import check_manifest
from toolhive_apply.manifest.loader import API_VERSION, LoadedManifest, Positions
from toolhive_apply.manifest.model import DEFAULT_GROUP, build_manifest
from toolhive_apply.manifest.schema import validate_structure
from toolhive_apply.providers.workload.endpoint import proxy_secret_refs
from toolhive_apply.providers.workload.observability import manifest_fields as observe_manifest_fields
from toolhive_apply.providers.workload.spec_model import WorkloadSpec

_WORKLOAD_FIELD = re.compile(r"^workloads\[(\d+)\]\.?(.*)$")
# Spec fields copied as they are: they have the same name and meaning in a manifest workload.
_SAME = (
    "description",
    "cmd_arguments",
    "transport",
    "proxy_port",
    "host",
    "env_vars",
    "volumes",
    "network_isolation",
    "group",
    "tools",
    "tools_override",
    "trust_proxy_headers",
    "labels",
    "prune",
    "ready_timeout",
)


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem of one carried spec: `field` is relative to the resource (`permission_profile.privileged`)."""

    id: ResourceId | None
    origin: Origin | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.id}: " if self.id else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"

    def as_manifest_issue(self) -> ManifestIssue:
        where = f"{self.id} (as resolved)" if self.id else "(as resolved)"
        return ManifestIssue(self.origin, f"{where}.{self.field}" if self.field else where, self.message)


def manifest_entry(spec: Spec) -> dict[str, Any]:
    """The manifest workload whose container is exactly the one `spec` makes."""
    entry: dict[str, Any] = {key: spec[key] for key in _SAME if key in spec and spec[key] is not None}
    entry["name"] = spec["name"]
    profile = dict(spec.get("permission_profile") or {})
    # Every mount Docker binds is in `volumes` (read/write of the profile resolved into it): judge those, once.
    entry["permission_profile"] = {key: value for key, value in profile.items() if key not in ("read", "write")}
    entry["allow_privileged"] = bool(spec.get("allow_privileged", False))
    entry["allow_host_paths"] = [str(p) for p in spec.get("allow_host_paths") or ()]
    entry["secrets"] = [{"name": s["name"], "target": s["target"], "as": s["as"]} for s in spec.get("secrets") or ()]
    if spec.get("remote"):
        entry["url"] = spec["url"]
        entry["headers"] = [{"name": h["name"], "value": h["value"]} for h in spec.get("headers") or () if "value" in h]
    else:
        entry["image"] = spec["image"]
    if spec.get("transport") == "stdio":
        entry["proxy_mode"] = spec["proxy_mode"]
    elif not spec.get("remote") and spec.get("target_port"):
        entry["target_port"] = spec["target_port"]
    entry.update(
        observe_manifest_fields(WorkloadSpec.from_document(spec))
    )  # the audit directory is judged again as the mount it becomes
    return entry


def _document(stack: str, workloads: Sequence[DesiredResource]) -> dict[str, Any]:
    entries = [manifest_entry(w.spec) for w in workloads]
    groups = sorted({str(e.get("group", DEFAULT_GROUP)) for e in entries} - {DEFAULT_GROUP})
    secrets = sorted(
        {s["name"] for e in entries for s in e["secrets"]}
        | {s.name for w in workloads for s in proxy_secret_refs(WorkloadSpec.from_document(w.spec))}
    )
    return {
        "apiVersion": API_VERSION,
        "settings": {"stack": stack},
        "groups": [{"name": g} for g in groups],
        "secrets": [{"key": name, "present": True} for name in secrets],
        "workloads": entries,
    }


def _locate(issue: ManifestIssue, workloads: Sequence[DesiredResource]) -> SpecIssue:
    match = _WORKLOAD_FIELD.match(issue.field)
    if match and int(match.group(1)) < len(workloads):
        resource = workloads[int(match.group(1))]
        return SpecIssue(resource.id, resource.origin, match.group(2), issue.message)
    return SpecIssue(None, None, issue.field, issue.message)


def spec_issues(stack: str, desired: Sequence[DesiredResource], *, structure: bool = True) -> list[SpecIssue]:
    """Every problem the manifest's schema and checks find in the workload specs that will be applied.

    `structure=False` skips the JSON Schema (the costly part, about 1.5 ms a workload) for specs this run made
    itself from a manifest that passed it; a spec read from a file always gets it.
    """
    # a vMCP gateway's spec is made by gateways.py alone (no user image, mount or profile): not a manifest entry
    workloads = [d for d in desired if d.id.kind is Kind.WORKLOAD and not d.spec.get("vmcp")]
    try:
        document = _document(stack, workloads)
    except (KeyError, TypeError, AttributeError) as exc:
        return [SpecIssue(None, None, "", f"a workload spec is not one this version makes ({type(exc).__name__})")]
    issues = validate_structure(document, Positions()) if structure else []
    if not issues:
        manifest = build_manifest(document, LoadedManifest(document, Positions(), ()))
        issues = check_manifest(manifest)
    return [_locate(issue, workloads) for issue in issues]


def _shown(item: FieldChange) -> tuple[str, bool, str | None]:
    return (item.path, item.sensitive, None if item.sensitive else repr(item.after))


def shown_differs(change: Change) -> str | None:
    """The first attribute a plan shows with another value than its spec applies (None when they agree).

    The recorded attribute lines are what a reviewer read; the spec is what the provider gets. A create shows every
    attribute; an update or replace shows the changed ones, whose new values must be the spec's.
    """
    if change.desired is None:
        return None
    if change.action is Action.CREATE:
        expected = {_shown(f) for f in field_changes(None, change.desired.spec, table_for(change.id.kind))}
        different = sorted(path for path, _, _ in expected ^ {_shown(f) for f in change.fields})
        return different[0] if different else None
    after: Mapping[str, object] = flatten(table_for(change.id.kind).hard(change.desired.spec))
    for item in change.fields:
        if not item.sensitive and after.get(item.path) != item.after:
            return item.path
    return None
