"""Carry out a Plan: dependency order, bounded parallelism, per-resource outcomes (Ansible's recap).

One failed resource does not stop unrelated ones; its dependents are skipped and named. The
executor emits events and never prints (the compose parallel.py lesson): the CLI draws them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from typing import Final

from toolhive_apply.engine.plan import Action, Change, Plan
from toolhive_apply.engine.provider import Event, EventSink, Phase, Provider
from toolhive_apply.engine.resource import Kind, ResourceId
from toolhive_apply.errors import ProviderError, ToolhiveApplyError


class OutcomeStatus(StrEnum):
    """How one resource ended in an apply, as the recap counts it (Ansible's)."""

    OK = "ok"  # in sync: nothing done
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not tried: it depends on one that failed


UNSUCCESSFUL: Final = frozenset({OutcomeStatus.FAILED, OutcomeStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class Outcome:
    id: ResourceId
    status: OutcomeStatus
    note: str
    seconds: float = 0.0


@dataclass(slots=True)
class Recap:
    outcomes: list[Outcome] = field(default_factory=list)

    def visible(self) -> list[Outcome]:
        """What the recap shows and counts: toolhive-apply's own records only when they did not succeed."""
        return [o for o in self.outcomes if not o.id.internal or o.status in UNSUCCESSFUL]

    def count(self, status: OutcomeStatus | str) -> int:
        return sum(1 for o in self.visible() if o.status == status)

    @property
    def failed(self) -> bool:
        return any(o.status in UNSUCCESSFUL for o in self.outcomes)

    def as_json(self) -> dict[str, object]:
        return {
            **{status.value: self.count(status) for status in OutcomeStatus},
            "resources": [
                {"address": str(o.id), "status": str(o.status), "note": o.note, "seconds": round(o.seconds, 2)}
                for o in self.visible()
            ],
        }


def phases(changes: Sequence[Change]) -> list[list[Change]]:
    """Consecutive changes of one kind and direction run together; the plan is already ordered."""
    return [list(group) for _, group in groupby(changes, key=lambda c: (c.action is Action.DELETE, c.id.kind))]


def _run_one(change: Change, provider: Provider, emit: EventSink) -> Outcome:
    address = str(change.id)
    emit(Event(address, Phase.START, f"{change.action.value} ({change.reason})"))
    started = time.monotonic()
    try:
        note = provider.apply(change, emit)
    except ToolhiveApplyError as exc:
        # the hint (what to do about it) belongs with the failure: the recap is all a CI log reader sees; the event
        # and the recap line already name the resource, so a provider's message does not name it again
        text = f"{exc.action} failed: {exc.cause}" if isinstance(exc, ProviderError) else exc.message
        message = f"{text} (hint: {exc.hint})" if exc.hint else text
        emit(Event(address, Phase.FAILED, message))
        return Outcome(change.id, OutcomeStatus.FAILED, message, time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - one broken resource must not stop the others
        message = f"{address}: {change.action.value} failed unexpectedly: {type(exc).__name__}: {exc}"
        emit(Event(address, Phase.FAILED, message))
        return Outcome(change.id, OutcomeStatus.FAILED, message, time.monotonic() - started)
    elapsed = time.monotonic() - started
    emit(Event(address, Phase.DONE, f"{note} ({elapsed:.1f}s)"))
    return Outcome(change.id, OutcomeStatus.CHANGED, note, elapsed)


def execute(plan: Plan, providers: Mapping[Kind, Provider], parallelism: int, emit: EventSink) -> Recap:
    recap = Recap([Outcome(rid, OutcomeStatus.OK, "in sync") for rid in plan.in_sync])
    failed: set[ResourceId] = set()
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="apply") as pool:
        for phase in phases(plan.changes):
            runnable = []
            for change in phase:
                blocked = change.desired.depends_on & failed if change.desired else set()
                if blocked:
                    note = f"skipped: depends on failed {', '.join(sorted(map(str, blocked)))}"
                    emit(Event(str(change.id), Phase.SKIPPED, note))
                    recap.outcomes.append(Outcome(change.id, OutcomeStatus.SKIPPED, note))
                    failed.add(change.id)
                else:
                    runnable.append(change)
            futures = [pool.submit(_run_one, c, providers[c.id.kind], emit) for c in runnable]
            for future in futures:
                outcome = future.result()
                recap.outcomes.append(outcome)
                if outcome.status is OutcomeStatus.FAILED:
                    failed.add(outcome.id)
    return recap
