"""Plan and recap -> human text (terraform-plan style) and JSON.

Sensitive fields are rendered here as "(sensitive value)", and nowhere else needs to know: specs
carry only secret references and keyed digests, never values. Every value is scrubbed before it is encoded
(redact.scrubbed_json): JSON escapes would hide a registered value from a scrub of the finished text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolhive_apply.engine.executor import OutcomeStatus, Recap
from toolhive_apply.engine.fields import FieldTable, table_for
from toolhive_apply.engine.plan import Action, Change, FieldChange, Plan
from toolhive_apply.engine.words import counted
from toolhive_apply.redact import scrubbed_json

if TYPE_CHECKING:
    from toolhive_apply.manifest.model import Manifest

__all__ = ["counted", "manifest_counts", "render_plan", "render_recap", "summary_line"]

SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.START: ">",
    Action.DELETE: "-",
}
COLOURS = {
    Action.CREATE: "32",
    Action.UPDATE: "33",
    Action.REPLACE: "35",
    Action.START: "36",
    Action.DELETE: "31",
}
VERBS = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "must be replaced",
    Action.START: "will be started",
    Action.DELETE: "will be deleted",
}


OUTCOME_COLOURS = {
    OutcomeStatus.OK: "32",
    OutcomeStatus.CHANGED: "33",
    OutcomeStatus.FAILED: "31",
    OutcomeStatus.SKIPPED: "35",
}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _value(value: object) -> str:
    if value is None:
        return "null"
    return scrubbed_json(value, sort_keys=True, ensure_ascii=False)


def _field_line(change: Change, item: FieldChange) -> str:
    if item.sensitive:
        if change.action in (Action.CREATE, Action.DELETE):
            return f"      {SYMBOLS[change.action]} {item.path}: (sensitive value)"
        return f"      ~ {item.path}: (sensitive value will change)"
    if change.action is Action.CREATE:
        return f"      + {item.path}: {_value(item.after)}"
    if change.action is Action.DELETE:
        return f"      - {item.path}: {_value(item.before)}"
    if item.before is None:
        return f"      + {item.path}: {_value(item.after)}"
    if item.after is None:
        return f"      - {item.path}: {_value(item.before)}"
    return f"      ~ {item.path}: {_value(item.before)} -> {_value(item.after)}"


def _source(change: Change, path: str) -> str:
    explain = change.desired.explain if change.desired else {}
    for key in (path, path.split(".", 1)[0]):
        if key in explain:
            return f"  # from {explain[key]}"
    return ""


def render_change(change: Change, colour: bool, verbose: bool, explain: bool = False) -> list[str]:
    symbol = _paint(SYMBOLS[change.action].rjust(3), COLOURS[change.action], colour)
    internal = " [internal: toolhive-apply's own record]" if change.id.internal else ""
    lines = [
        f"  # {change.id} {VERBS[change.action]} ({change.reason}){internal}",
        f"{symbol} {change.id.kind} {change.id.name!r}",
    ]
    fields = change.fields
    table = table_for(change.id.kind)
    rows = [(item.path, _field_line(change, item) + (_source(change, item.path) if explain else "")) for item in fields]
    if change.action in (Action.CREATE, Action.DELETE) and not verbose:
        rows = [row for row, item in zip(rows, fields, strict=True) if _headline(table, item)]
        # what a reviewer needs of the environment: the names a server gets, never their values (-v shows those)
        listed: dict[str, list[str]] = {}
        for item in fields:
            if table.rule(item.path).names_only:
                head, _, name = item.path.partition(".")
                listed.setdefault(head, []).append(name)
        for head, names in listed.items():
            rows.append((head, f"      {SYMBOLS[change.action]} {head}: {', '.join(sorted(names))}"))
    lines.extend(line for _, line in sorted(rows, key=lambda row: row[0]))
    source = change.desired or change.observed
    spec = source.spec if source is not None else None
    parts = spec.get(table.parts) if spec and table.parts else None
    if parts and change.action is not Action.START:
        lines.append(f"      # made of: {', '.join(str(p) for p in parts)}")
    return lines


def _headline(table: FieldTable, item: FieldChange) -> bool:
    """A field the short form shows; an empty list (no secrets, no volumes) says nothing and is left out."""
    rule = table.rule(item.path)
    if rule.always_shown:
        return True
    value = item.after if item.after is not None else item.before
    return rule.headline and value != []


def manifest_counts(manifest: Manifest) -> str:
    """What `validate` found: `2 workloads, 1 client, 1 registry, 0 secrets`."""
    return ", ".join(
        [
            counted(len(manifest.workloads), "workload"),
            counted(len(manifest.clients), "client"),
            counted(len(manifest.registries), "registry", "registries"),
            counted(len(manifest.secrets), "secret"),
        ]
    )


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    parts = [
        f"{counts['create']} to create",
        f"{counts['update']} to update",
        f"{counts['replace']} to replace",
        f"{counts['delete']} to delete",
    ]
    if counts["start"]:
        parts.append(f"{counts['start']} to start")
    return "Plan: " + ", ".join(parts) + "."


def render_plan(
    plan: Plan, colour: bool = False, verbose: bool = False, explain: bool = False, destroy: bool = False
) -> str:
    """The plan as text. toolhive-apply's own records (internal) are applied with the rest but shown only with -v:
    they are not what the user declared, and counting them made "1 to create" of a manifest that declares none."""
    detailed = verbose or explain
    lines = [f"Warning: {warning}" for warning in plan.warnings]
    kept = [str(rid) for rid in plan.kept if not rid.internal]
    if kept and destroy:
        lines.append(f"Kept: {', '.join(kept)} (destroy deletes secrets only with --prune-secrets)")
    elif kept:
        lines.append(f"Kept although no longer declared (prune: false): {', '.join(kept)}")
    shown = [c for c in plan.changes if detailed or not c.id.internal]
    if not any(not c.id.internal for c in plan.changes):
        lines.append(_nothing_to_do(plan, destroy, bool(kept)))
        if plan.changes and not detailed:
            lines.append("toolhive-apply will update its own records of the stack (internal; -v shows them).")
        if not shown:
            return "\n".join(lines) + "\n"
    else:
        lines.append(f"toolhive-apply will perform the following actions on stack {plan.stack!r}:")
    lines.append("")
    for change in shown:
        lines.extend(render_change(change, colour, detailed, explain))
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def _nothing_to_do(plan: Plan, destroy: bool, kept: bool) -> str:
    if destroy:
        if kept:
            return f"Nothing else to destroy in stack {plan.stack!r}."
        return f"Nothing to destroy: stack {plan.stack!r} owns no resources."
    in_sync = counted(len(plan.in_sync), "resource")
    return f"No changes. Stack {plan.stack!r} matches the manifest ({in_sync} in sync)."


def render_recap(recap: Recap, colour: bool = False) -> str:
    lines = ["", "RECAP " + "*" * 60]
    for outcome in recap.visible():
        code = OUTCOME_COLOURS[outcome.status]
        lines.append(f"{_paint(outcome.status.ljust(8), code, colour)} {outcome.id}: {outcome.note}")
    lines.append(" ".join(f"{status.value}={recap.count(status)}" for status in OutcomeStatus))
    return "\n".join(lines) + "\n"
