"""The Plan: ordered Changes plus the fingerprint of the state they were computed from.

A plan is a first-class artefact (Terraform's lesson): shown, saved, loaded, and refused when the
live state moved. Its JSON only grows additively; `format_version` says which shape a reader has.
A saved plan carries a MAC over its whole document, keyed from the stack's secret key: a plan file is applied
only as it was made, and only what was verified is ever read from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource, ResourceId, canonical_json
from toolhive_apply.errors import PlanFileError
from toolhive_apply.fileio import replace_atomically

FORMAT_VERSION = 1
PLAN_MARKER = "toolhive-apply-plan"
MAC_FIELD = "mac"
MAC_ALGORITHM = "hmac-sha256"
# The label that makes the plan MAC key a key of its own: no secret digest is ever computed under it.
MAC_KEY_LABEL = b"toolhive-apply/saved-plan-mac/v1"
MAX_PLAN_BYTES = 64 * 1024 * 1024
_SAFE_STACK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # as the client state's: a name, never a path


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    START = "start"
    DELETE = "delete"


class ReasonCode(StrEnum):
    """Why a change is planned, for machines (Terraform's ResourceInstanceChangeActionReason); `reason` says it to
    people. Plan JSON carries it as `reason_code` beside `reason`; a reader must accept codes it does not know."""

    NOT_PRESENT = "not_present"
    FORCED_REPLACE = "forced_replace"
    CONFIG_CHANGED = "config_changed"
    SECRET_ROTATED = "secret_rotated"
    VALUE_CHANGED = "value_changed"
    HASH_CHANGED = "hash_changed"  # the recorded hash differs and no recorded spec says which field
    UNREADABLE = "unreadable"  # the live resource cannot be read or changed (a broken client file, say)
    DRIFTED = "drifted"  # changed outside toolhive-apply in a way a start cannot undo
    NOT_RUNNING = "not_running"
    NOT_DECLARED = "not_declared"
    DESTROY = "destroy"


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
    reason_code: ReasonCode | None = None  # None only in a plan saved before reason codes existed


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
    # The names the observation asked about (besides what the stack owns): the staleness check repeats exactly it.
    observed_names: tuple[ResourceId, ...] = ()

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
        **({"reason_code": change.reason_code.value} if change.reason_code is not None else {}),
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
        "observed_names": [str(r) for r in sorted(plan.observed_names)],
    }


# ---------------------------------------------------------------------------------------------
# saved plans: a MAC over the whole document, checked before anything in it is used
# ---------------------------------------------------------------------------------------------
def plan_mac_key(stack_key: bytes, stack: str) -> bytes:
    """The MAC key of the stack's saved plans: derived from its secret key (HMAC as a PRF under a label of its
    own, bound to the stack name), so the secret key itself never keys anything but its digests."""
    return hmac.new(stack_key, MAC_KEY_LABEL + b"\x00" + stack.encode("utf-8"), hashlib.sha256).digest()


def _mac(document: Mapping[str, Any], mac_key: bytes) -> str:
    """HMAC-SHA256 of the canonical JSON of every field (the MAC field itself excepted)."""
    body = {key: value for key, value in document.items() if key != MAC_FIELD}
    return hmac.new(mac_key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


def seal(document: Mapping[str, Any], mac_key: bytes) -> dict[str, Any]:
    """The document with its MAC field (replacing any it had)."""
    return {**document, MAC_FIELD: {"algorithm": MAC_ALGORITHM, "value": _mac(document, mac_key)}}


def save_plan(plan: Plan, path: Path, mac_key: bytes) -> None:
    """Write the plan, MAC included, through the atomic writer (a fresh 0600 temp file, renamed into place)."""
    document = seal(plan_to_json(plan), mac_key)
    data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        replace_atomically(path, data)
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot write the plan: {exc.strerror or exc}") from None


def is_plan_file(path: Path) -> bool:
    """A saved plan is a JSON object with our marker; manifests are YAML files (or directories)."""
    if not path.is_file() or path.suffix in (".yaml", ".yml"):
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == PLAN_MARKER


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key written twice would let a reader of the file see one value while the parser keeps the other."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            msg = f"the key {key!r} appears twice in one object"
            raise ValueError(msg)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class PlanFile:
    """A saved plan as read from disk, before its MAC is checked.

    Invariant: nothing but `stack` and `settings` is read from an unverified document, and those only to find the
    key that verifies it (which store, which stack); `verify` returns the Plan built from the verified document.
    """

    path: Path
    document: Mapping[str, Any]
    mac: str | None

    @property
    def stack(self) -> str:
        return str(self.document["stack"])

    @property
    def settings(self) -> Mapping[str, Any]:
        settings = self.document.get("settings")
        return settings if isinstance(settings, Mapping) else {}

    def verify(self, mac_key: bytes) -> Plan:
        if self.mac is None:
            raise PlanFileError(
                f"{self.path}: the plan is not signed (no MAC); refusing to apply it",
                hint="make the plan again with `toolhive-apply plan --out FILE`",
            )
        if not hmac.compare_digest(_mac(self.document, mac_key), self.mac):
            raise PlanFileError(
                f"{self.path}: the plan's MAC does not match: the file was changed after it was made, or it was made "
                f"with another key than the one stack {self.stack!r} has in this secret store; nothing was applied",
                hint="make the plan again with `toolhive-apply plan --out FILE` and apply that file unchanged",
            )
        try:
            return _plan_from_json(self.document)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PlanFileError(f"{self.path}: cannot read plan file: {exc}") from None


def read_plan_file(path: Path) -> PlanFile:
    """Parse strictly (no duplicate keys, no NaN) and check the envelope; the content is not trusted yet."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
        if len(raw) > MAX_PLAN_BYTES:
            raise PlanFileError(f"{path}: a plan file is at most {MAX_PLAN_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot read plan file: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PlanFileError(f"{path}: cannot read plan file: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != PLAN_MARKER:
        raise PlanFileError(f"{path}: not a toolhive-apply plan file")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PlanFileError(f"{path}: cannot read plan file: format_version is missing")
    if version > FORMAT_VERSION:
        raise PlanFileError(f"{path}: plan format {version} is newer than this toolhive-apply understands")
    if not isinstance(data.get("stack"), str):
        raise PlanFileError(f"{path}: cannot read plan file: stack is missing")
    if not _SAFE_STACK.fullmatch(data["stack"]):  # it names the key to verify with: no path games before that
        raise PlanFileError(f"{path}: cannot read plan file: {data['stack']!r} is not a stack name")
    mac = data.pop(MAC_FIELD, None)
    if mac is not None and (
        not isinstance(mac, dict) or mac.get("algorithm") != MAC_ALGORITHM or not isinstance(mac.get("value"), str)
    ):
        raise PlanFileError(f"{path}: the plan's MAC is not an {MAC_ALGORITHM} MAC; refusing to apply it")
    return PlanFile(path, data, mac["value"] if mac else None)


def load_plan(path: Path, mac_key: bytes) -> Plan:
    """Read and verify a saved plan whose key is already known."""
    return read_plan_file(path).verify(mac_key)


def _change_from_json(item: Mapping[str, Any]) -> Change:
    rid = ResourceId(Kind(item["kind"]), str(item["name"]))
    if item.get("address", str(rid)) != str(rid):
        msg = f"change {item['address']!r} names {rid} in its kind and name"
        raise ValueError(msg)
    desired = None
    if "desired" in item:
        spec = item["desired"]["spec"]
        if not isinstance(spec, dict):
            msg = f"{rid}: desired.spec is not an object"
            raise TypeError(msg)
        desired = DesiredResource(
            rid,
            spec,
            depends_on=frozenset(ResourceId.parse(d) for d in item["desired"].get("depends_on", ())),
            explain=item["desired"].get("sources", {}),
        )
    observed = None
    if "observed" in item:
        observed = ObservedResource(
            rid, str(item["observed"]["handle"]), True, None, None, None, str(item["observed"]["status"])
        )
    fields = tuple(
        FieldChange(str(f["path"]), f.get("before"), f.get("after"), bool(f.get("sensitive"))) for f in item["fields"]
    )
    code = ReasonCode(item["reason_code"]) if "reason_code" in item else None
    return Change(rid, Action(item["action"]), str(item["reason"]), fields, desired, observed, code)


def _plan_from_json(data: Mapping[str, Any]) -> Plan:
    return Plan(
        stack=data["stack"],
        changes=tuple(_change_from_json(c) for c in data["changes"]),
        in_sync=tuple(ResourceId.parse(r) for r in data["in_sync"]),
        observed_fingerprint=str(data["observed_fingerprint"]),
        manifest_digest=str(data["manifest_digest"]),
        kept=tuple(ResourceId.parse(r) for r in data.get("kept", ())),
        warnings=tuple(str(w) for w in data.get("warnings", ())),
        settings=dict(data.get("settings", {})),
        format_version=int(data["format_version"]),
        observed_names=tuple(ResourceId.parse(r) for r in data.get("observed_names", ())),
    )
