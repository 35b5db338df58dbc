"""Plan and recap -> human text (terraform-plan style) and JSON.

Sensitive fields are rendered here as "(sensitive value)", and nowhere else needs to know: specs
carry only secret references and keyed digests, never values. Every value is scrubbed before it is encoded
(redact.scrubbed_json): JSON escapes would hide a registered value from a scrub of the finished text.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolhive_apply.engine.executor import Recap
from toolhive_apply.engine.plan import Action, Change, FieldChange, Plan
from toolhive_apply.redact import scrubbed_json

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


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _value(value: object) -> str:
    if value is None:
        return "null"
    return scrubbed_json(value, sort_keys=True, ensure_ascii=False)


def _field_line(change: Change, item: FieldChange) -> str:
    if item.sensitive:
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
    lines = [
        f"  # {change.id} {VERBS[change.action]} ({change.reason})",
        f"{symbol} {change.id.kind} {change.id.name!r}",
    ]
    fields = change.fields
    if change.action in (Action.CREATE, Action.DELETE) and not verbose:
        fields = tuple(f for f in fields if f.path in _HEADLINE_FIELDS or f.path.startswith(_HEADLINE_PREFIXES))
    lines.extend(_field_line(change, item) + (_source(change, item.path) if explain else "") for item in fields)
    source = change.desired or change.observed
    spec = source.spec if source is not None else None
    if spec and spec.get("parts") and change.action is not Action.START:
        lines.append(f"      # made of: {', '.join(str(p) for p in spec['parts'])}")
    return lines


_HEADLINE_FIELDS = frozenset(
    {"image", "transport", "proxy_mode", "proxy_port", "group", "url", "key", "path", "network_isolation"}
)
# what a workload may touch is always shown, even in the short form: it is what a reviewer has to see
_HEADLINE_PREFIXES = ("permission_profile.",)


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


def render_plan(plan: Plan, colour: bool = False, verbose: bool = False, explain: bool = False) -> str:
    lines: list[str] = []
    for warning in plan.warnings:
        lines.append(f"Warning: {warning}")
    if plan.kept:
        lines.append(f"Kept although no longer declared (prune: false): {', '.join(map(str, plan.kept))}")
    if not plan.changes:
        lines.append(f"No changes. Stack {plan.stack!r} matches the manifest ({len(plan.in_sync)} resources in sync).")
        return "\n".join(lines) + "\n"
    lines.append(f"toolhive-apply will perform the following actions on stack {plan.stack!r}:")
    lines.append("")
    for change in plan.changes:
        lines.extend(render_change(change, colour, verbose or explain, explain))
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_recap(recap: Recap, colour: bool = False) -> str:
    lines = ["", "RECAP " + "*" * 60]
    for outcome in recap.outcomes:
        code = {"ok": "32", "changed": "33", "failed": "31", "skipped": "35"}[outcome.status]
        lines.append(f"{_paint(outcome.status.ljust(8), code, colour)} {outcome.id}: {outcome.note}")
    lines.append(
        f"ok={recap.count('ok')} changed={recap.count('changed')} "
        f"failed={recap.count('failed')} skipped={recap.count('skipped')}"
    )
    return "\n".join(lines) + "\n"


def render_issues_json(issues: Iterable[dict[str, object]]) -> str:
    return scrubbed_json(list(issues), indent=2) + "\n"
