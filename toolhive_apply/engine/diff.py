"""Desired vs observed -> Changes. Pure functions: no I/O, so every rule is testable on data.

Change is detected by the hash of our own desired spec (kept in a label), never by comparing
`docker inspect` output, whose engine and image defaults made peers recreate forever. The spec kept
beside the hash gives the attribute-level "why".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from toolhive_apply.engine.fields import PLAIN_TABLE, FieldTable, Sensitive, Update, table_for
from toolhive_apply.engine.plan import Action, Change, FieldChange, Plan, ReasonCode, fingerprint
from toolhive_apply.engine.resource import (
    DRIFTED,
    HASH_VERSION,
    HEALTHY,
    KIND_ORDER,
    DesiredResource,
    Kind,
    ObservedResource,
    ResourceId,
    Spec,
    Status,
)
from toolhive_apply.engine.words import counted
from toolhive_apply.errors import ConflictError, UsageError


@dataclass(frozen=True, slots=True)
class DiffOptions:
    stack: str
    targets: frozenset[ResourceId] = frozenset()
    replace: frozenset[ResourceId] = frozenset()
    allow_empty: bool = False
    destroy: bool = False
    prune_secrets: bool = False
    manifest_digest: str = ""
    settings: Mapping[str, object] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def flatten(spec: object, prefix: str = "") -> dict[str, object]:
    """Nested mappings become dotted paths; lists stay whole values (they compare as a unit)."""
    if isinstance(spec, Mapping):
        out: dict[str, object] = {}
        for key in sorted(spec):
            out.update(flatten(spec[key], f"{prefix}.{key}" if prefix else str(key)))
        if not spec and prefix:
            out[prefix] = {}
        return out
    return {prefix: spec}


def field_changes(before: Spec | None, after: Spec | None, table: FieldTable = PLAIN_TABLE) -> tuple[FieldChange, ...]:
    """Attribute-level differences of the parts that shape a resource (its table's soft fields left out)."""
    old = flatten(table.hard(before or {}))
    new = flatten(table.hard(after or {}))
    changes = []
    for path in sorted(set(old) | set(new)):
        if old.get(path, _MISSING) != new.get(path, _MISSING):
            sensitive = table.rule(path).sensitive is not Sensitive.NO
            changes.append(FieldChange(path, old.get(path), new.get(path), sensitive))
    return tuple(changes)


_MISSING = object()


def _reason_for(
    table: FieldTable, fields: Sequence[FieldChange], explain: Mapping[str, str] | None = None
) -> tuple[ReasonCode, str]:
    """The code of the first thing that changed (config, then secrets, then the value) and the whole sentence."""
    kinds = {f.path: table.rule(f.path).sensitive for f in fields}
    secret_names = sorted({f.path.split(".", 1)[1] for f in fields if kinds[f.path] is Sensitive.NAMED})
    plain = [f.path for f in fields if not f.sensitive]
    parts = []
    codes = []
    if plain:
        codes.append(ReasonCode.CONFIG_CHANGED)
        shown = ", ".join(plain[:4]) + (f" and {len(plain) - 4} more" if len(plain) > 4 else "")
        sources = sorted({explain[p] for p in plain if explain and p in explain})
        parts.append(f"config changed: {shown}" + (f" (from {', '.join(sources)})" if sources else ""))
    if secret_names:
        codes.append(ReasonCode.SECRET_ROTATED)
        parts.append(f"secret rotated: {', '.join(secret_names)}")
    if any(kinds[f.path] is Sensitive.VALUE for f in fields):
        codes.append(ReasonCode.VALUE_CHANGED)
        parts.append("value changed")
    if not parts:
        return ReasonCode.HASH_CHANGED, "config hash changed"
    return codes[0], "; ".join(parts)


def _compare(desired: DesiredResource, observed: ObservedResource, options: DiffOptions) -> Change | None:
    table = table_for(desired.id.kind)
    if desired.id in options.replace:
        return Change(
            desired.id, Action.REPLACE, "forced by --replace", (), desired, observed, ReasonCode.FORCED_REPLACE
        )
    same_hash = observed.spec_hash == desired.hash and observed.hash_version == HASH_VERSION
    fields: tuple[FieldChange, ...] = ()
    if not same_hash:
        fields = field_changes(observed.spec, desired.spec, table)
        if not fields and observed.spec is not None:
            same_hash = True  # an older hash algorithm over an equal spec: nothing to do
    if observed.status == Status.INVALID:
        why = f"cannot be changed: {observed.facts.get('error', 'cannot be read')}"
        return Change(desired.id, Action.UPDATE, why, (), desired, observed, ReasonCode.UNREADABLE)
    if not same_hash:
        in_place = table.update_for(f.path for f in fields) is Update.IN_PLACE
        action = Action.UPDATE if in_place else Action.REPLACE
        code, why = _reason_for(table, fields, desired.explain)
        return Change(desired.id, action, why, fields, desired, observed, code)
    if observed.status.startswith(DRIFTED):
        return Change(desired.id, Action.REPLACE, observed.status, (), desired, observed, ReasonCode.DRIFTED)
    if observed.status not in HEALTHY:
        what = table.describe_status(observed.status)
        return Change(desired.id, Action.START, what, (), desired, observed, ReasonCode.NOT_RUNNING)
    return None


def _conflicts(desired: Iterable[DesiredResource], observed: Mapping[ResourceId, ObservedResource]) -> list[str]:
    lines = []
    for item in desired:
        seen = observed.get(item.id)
        if seen is not None and not seen.managed:
            owner = f"stack {seen.owner!r}" if seen.owner else "nobody we know (not created by toolhive-apply)"
            lines.append(f"{item.id}: {seen.handle} already exists and is owned by {owner}")
    return lines


def _order(changes: list[Change]) -> tuple[Change, ...]:
    rank = {kind: index for index, kind in enumerate(KIND_ORDER)}

    def key(change: Change) -> tuple[int, int, str]:
        if change.action is Action.DELETE:
            return (1, -rank[change.id.kind], change.id.name)
        return (0, rank[change.id.kind], change.id.name)

    return tuple(sorted(changes, key=key))


def _check_targets(options: DiffOptions, known: set[ResourceId]) -> None:
    unknown = sorted(str(t) for t in (options.targets | options.replace) if t not in known)
    if unknown:
        raise UsageError(f"unknown resource(s): {', '.join(unknown)} (not in the manifest nor owned by this stack)")


def make_plan(desired: Sequence[DesiredResource], observed: Sequence[ObservedResource], options: DiffOptions) -> Plan:
    """The only way to get a Plan: apply executes exactly what this returns."""
    by_id = {o.id: o for o in observed}
    wanted = [] if options.destroy else list(desired)
    conflicts = _conflicts(wanted, by_id)
    if conflicts:
        kinds = {d.id.kind for d in wanted if d.id in by_id and not by_id[d.id].managed}
        hints = {
            Kind.SECRET: "rename the secret key, or declare it with present: true to use it without managing it",
            Kind.WORKLOAD: "rename the workload, or remove the other container if it is really unused",
        }
        fallback = "rename the {}, or remove the other one if it is unused"
        hint = "; ".join(hints.get(k, fallback.format(k.value)) for k in sorted(kinds, key=lambda k: k.value))
        raise ConflictError("; ".join(conflicts), hint=hint)
    owned = [o for o in observed if o.managed]
    _check_targets(options, {d.id for d in desired} | {o.id for o in owned})
    # what the user declared and owns: toolhive-apply's own records (always wanted) do not make a manifest non-empty
    declared = [d for d in wanted if not d.id.internal]
    deletable = [o for o in owned if not o.id.internal and (o.id.kind is not Kind.SECRET or options.prune_secrets)]
    if not declared and deletable and not options.allow_empty and not options.destroy:
        raise UsageError(
            f"the manifest declares nothing, which would delete all {counted(len(deletable), 'resource')} of stack "
            f"{options.stack!r}",
            hint="check the manifest path; use `toolhive-apply destroy` or --allow-empty if that is what you want",
        )
    changes: list[Change] = []
    in_sync: list[ResourceId] = []
    kept: list[ResourceId] = []
    wanted_ids = {d.id for d in wanted}
    for item in wanted:
        seen = by_id.get(item.id)
        if seen is None:
            fields = field_changes(None, item.spec, table_for(item.id.kind))
            change: Change | None = Change(
                item.id, Action.CREATE, "not present", fields, item, None, ReasonCode.NOT_PRESENT
            )
        else:
            change = _compare(item, seen, options)
        if change is None:
            if not item.id.internal:
                in_sync.append(item.id)
        else:
            changes.append(change)
    for seen in owned:
        if seen.id in wanted_ids:
            continue
        keep_secret = seen.id.kind is Kind.SECRET and not options.prune_secrets
        if keep_secret or (seen.spec is not None and seen.spec.get("prune") is False and not options.destroy):
            if not seen.id.internal:
                kept.append(seen.id)
            continue
        code = ReasonCode.DESTROY if options.destroy else ReasonCode.NOT_DECLARED
        reason = "destroy" if options.destroy else "not declared any more"
        fields = field_changes(seen.spec, None, table_for(seen.id.kind))
        changes.append(Change(seen.id, Action.DELETE, reason, fields, None, seen, code))
    if options.targets:
        changes = [c for c in changes if c.id in options.targets]
    return Plan(
        stack=options.stack,
        changes=_order(changes),
        in_sync=tuple(sorted(in_sync)),
        observed_fingerprint=fingerprint(observed),
        manifest_digest=options.manifest_digest,
        kept=tuple(sorted(kept)),
        warnings=options.warnings,
        settings=options.settings,
    )
