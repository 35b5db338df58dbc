"""Carry out a Plan: dependency order (not kind phases), bounded parallelism, per-resource outcomes (Ansible's recap).

One failed resource does not stop unrelated ones; its dependents are skipped and named. The
executor emits events and never prints (the compose parallel.py lesson): the CLI draws them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from toolhive_apply.engine.plan import Action, Change, Plan
from toolhive_apply.engine.provider import Event, EventSink, Phase, Provider
from toolhive_apply.engine.resource import KIND_ORDER, Kind, ResourceId
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


def prerequisites(changes: Sequence[Change]) -> dict[ResourceId, frozenset[ResourceId]]:
    """What each change waits for (compose's get_deps): the planned changes its resource depends on, not its kind.

    - toolhive-apply's own records (the stack record, the digest key) go before the changes of later kinds: a run
      that dies half-way has recorded the stack and stored the key its digests are keyed from;
    - a resource waits for those and for the planned changes it `depends_on` (a workload for its secrets, a client
      file for the workloads it lists), and for nothing else: a slow workload holds back only the files that list it;
    - deletions run after everything else, in reverse kind order (a client entry goes before its server), because
      nothing observed says what a deleted resource depended on.

    The plan's own order (kind, then name) always satisfies these waits, so with parallelism 1 changes run in it.
    """
    rank = {kind: index for index, kind in enumerate(KIND_ORDER)}
    kept = [c for c in changes if c.action is not Action.DELETE]
    planned = {c.id for c in kept}
    records = [c.id for c in kept if c.id.internal]
    deletions = [c.id for c in changes if c.action is Action.DELETE]
    waits: dict[ResourceId, frozenset[ResourceId]] = {}
    for change in changes:
        if change.action is Action.DELETE:
            later = {d for d in deletions if rank[d.kind] > rank[change.id.kind]}
            waits[change.id] = frozenset(planned | later)
        else:
            declared = change.desired.depends_on & planned if change.desired else frozenset()
            waits[change.id] = frozenset(r for r in records if rank[r.kind] < rank[change.id.kind]) | declared
    return waits


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
    """Run each change as soon as what it waits for is done, at most `parallelism` at once, the earliest in plan order
    first; a change whose dependency failed or was skipped is skipped. The recap lists outcomes in plan order."""
    waits = prerequisites(plan.changes)
    pending = list(plan.changes)
    finished: set[ResourceId] = set()
    failed: set[ResourceId] = set()
    outcomes: dict[ResourceId, Outcome] = {}
    running: dict[Future[Outcome], Change] = {}
    slots = max(1, parallelism)
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="apply") as pool:
        while pending or running:
            ready = [c for c in pending if waits[c.id] <= finished]
            if not ready and not running:
                ready = pending[:1]  # a dependency cycle: break it in plan order rather than stall
            for change in ready:
                blocked = change.desired.depends_on & failed if change.desired else set()
                if not blocked and len(running) >= slots:
                    continue  # no free slot: it starts when one is
                pending.remove(change)
                if blocked:
                    note = f"skipped: depends on failed {', '.join(sorted(map(str, blocked)))}"
                    emit(Event(str(change.id), Phase.SKIPPED, note))
                    outcomes[change.id] = Outcome(change.id, OutcomeStatus.SKIPPED, note)
                    failed.add(change.id)
                    finished.add(change.id)
                else:
                    running[pool.submit(_run_one, change, providers[change.id.kind], emit)] = change
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                change = running.pop(future)
                outcome = future.result()
                outcomes[change.id] = outcome
                finished.add(change.id)
                if outcome.status is OutcomeStatus.FAILED:
                    failed.add(change.id)
    in_sync = [Outcome(rid, OutcomeStatus.OK, "in sync") for rid in plan.in_sync]
    return Recap(in_sync + [outcomes[c.id] for c in plan.changes])
