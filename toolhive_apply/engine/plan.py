"""The Plan: ordered Changes plus the fingerprint of the state they were computed from.

A plan is a first-class artefact (Terraform's lesson): shown, saved, loaded, and refused when the
live state moved. Its JSON only grows additively; `format_version` says which shape a reader has.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import PlanFileError

FORMAT_VERSION = 1
PLAN_MARKER = "toolhive-apply-plan"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    START = "start"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    before: object
    after: object
    sensitive: bool = False

    def as_json(self) -> dict[str, object]:
        if self.sensitive:
            return {"path": self.path, "sensitive": True}
        return {"path": self.path, "before": self.before, "after": self.after, "sensitive": False}


@dataclass(frozen=True, slots=True)
class Change:
    id: ResourceId
    action: Action
    reason: str
    fields: tuple[FieldChange, ...] = ()
    desired: DesiredResource | None = None
    observed: ObservedResource | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    stack: str
    changes: tuple[Change, ...]
    in_sync: tuple[ResourceId, ...]
    observed_fingerprint: str
    manifest_digest: str
    kept: tuple[ResourceId, ...] = ()
    warnings: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        """Counts per action of the user's resources; toolhive-apply's own records are never counted."""
        counts = {action.value: 0 for action in Action}
        for change in self.changes:
            if not change.id.internal:
                counts[change.action.value] += 1
        return counts


def fingerprint(observed: Iterable[ObservedResource]) -> str:
    """Hash of what was observed; the empty state has a fingerprint too, so "already applied" is caught."""
    rows = sorted(resource.fingerprint_row() for resource in observed)
    return hashlib.sha256("\n".join(["v1", *rows]).encode()).hexdigest()


def _change_json(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": str(change.id),
        "kind": change.id.kind.value,
        "name": change.id.name,
        "action": change.action.value,
        "reason": change.reason,
        "fields": [f.as_json() for f in change.fields],
    }
    if change.id.internal:
        out["internal"] = True  # toolhive-apply's own record: applied, but not counted in `summary`
    if change.desired is not None:
        out["desired"] = {
            "spec": change.desired.spec,
            "depends_on": sorted(str(d) for d in change.desired.depends_on),
            "sources": dict(change.desired.explain),
        }
    if change.observed is not None:
        out["observed"] = {"handle": change.observed.handle, "status": change.observed.status}
    return out


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The documented, stable JSON shape (README: "JSON plan format")."""
    return {
        "format_version": plan.format_version,
        "kind": PLAN_MARKER,
        "stack": plan.stack,
        "changes": [_change_json(c) for c in plan.changes],
        "in_sync": [str(r) for r in plan.in_sync],
        "kept": [str(r) for r in plan.kept],
        "warnings": list(plan.warnings),
        "summary": plan.summary(),
        "observed_fingerprint": plan.observed_fingerprint,
        "manifest_digest": plan.manifest_digest,
        "settings": dict(plan.settings),
    }


def save_plan(plan: Plan, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(plan_to_json(plan), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def is_plan_file(path: Path) -> bool:
    """A saved plan is a JSON object with our marker; manifests are YAML files (or directories)."""
    if not path.is_file() or path.suffix in (".yaml", ".yml"):
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == PLAN_MARKER


def _change_from_json(item: Mapping[str, Any]) -> Change:
    rid = ResourceId(Kind(item["kind"]), item["name"])
    desired = None
    if "desired" in item:
        desired = DesiredResource(
            rid,
            item["desired"]["spec"],
            depends_on=frozenset(ResourceId.parse(d) for d in item["desired"].get("depends_on", ())),
            explain=item["desired"].get("sources", {}),
        )
    observed = None
    if "observed" in item:
        observed = ObservedResource(rid, item["observed"]["handle"], True, None, None, None, item["observed"]["status"])
    fields = tuple(
        FieldChange(f["path"], f.get("before"), f.get("after"), bool(f.get("sensitive"))) for f in item["fields"]
    )
    return Change(rid, Action(item["action"]), item["reason"], fields, desired, observed)


def load_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != PLAN_MARKER:
            raise PlanFileError(f"{path}: not a toolhive-apply plan file")
        if int(data["format_version"]) > FORMAT_VERSION:
            raise PlanFileError(
                f"{path}: plan format {data['format_version']} is newer than this toolhive-apply understands"
            )
        return Plan(
            stack=data["stack"],
            changes=tuple(_change_from_json(c) for c in data["changes"]),
            in_sync=tuple(ResourceId.parse(r) for r in data["in_sync"]),
            observed_fingerprint=data["observed_fingerprint"],
            manifest_digest=data["manifest_digest"],
            kept=tuple(ResourceId.parse(r) for r in data.get("kept", ())),
            warnings=tuple(data.get("warnings", ())),
            settings=data.get("settings", {}),
            format_version=int(data["format_version"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanFileError(f"{path}: cannot read plan file: {exc}") from None
