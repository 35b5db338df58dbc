"""The executor schedules on dependencies, not on kind phases: on data, with providers that only record calls."""

from __future__ import annotations

import threading
from typing import ClassVar

from toolhive_apply.engine.executor import OutcomeStatus, execute, prerequisites
from toolhive_apply.engine.plan import Action, Change, Plan
from toolhive_apply.engine.provider import Event, EventSink
from toolhive_apply.engine.resource import DesiredResource, Kind, ResourceId
from toolhive_apply.errors import ProviderError

WAIT = 30.0  # a bound on a wait that should end at once, never a measured time


def change(kind: Kind, name: str, *needs: ResourceId, action: Action = Action.CREATE) -> Change:
    rid = ResourceId(kind, name)
    if action is Action.DELETE:
        return Change(rid, action, "not declared any more")
    return Change(rid, action, "not present", (), DesiredResource(rid, {"name": name}, depends_on=frozenset(needs)))


def plan_of(*changes: Change) -> Plan:
    return Plan(stack="s", changes=changes, in_sync=(), observed_fingerprint="f", manifest_digest="d")


class Recorder:
    kind: ClassVar[Kind] = Kind.WORKLOAD

    def __init__(self) -> None:
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}
        self.failing: set[str] = set()

    def apply(self, change: Change, emit: EventSink) -> str:
        gate = self.gates.get(str(change.id))
        if gate is not None:
            assert gate.wait(WAIT), f"{change.id} was held back"
        with self.lock:
            self.order.append(str(change.id))
        if str(change.id) in self.failing:
            raise ProviderError(str(change.id), change.action.value, "broken")
        return "done"


def run(plan: Plan, recorder: Recorder, parallelism: int) -> dict[str, OutcomeStatus]:
    events: list[Event] = []
    recap = execute(plan, dict.fromkeys(Kind, recorder), parallelism, events.append)  # type: ignore[arg-type]
    return {str(o.id): o.status for o in recap.outcomes}


def test_a_slow_workload_does_not_hold_back_a_client_file_that_does_not_list_it() -> None:
    slow = ResourceId(Kind.WORKLOAD, "slow")
    quick = ResourceId(Kind.WORKLOAD, "quick")
    plan = plan_of(
        change(Kind.WORKLOAD, "quick"),
        change(Kind.WORKLOAD, "slow"),
        change(Kind.CLIENT, "listed-slow", slow),
        change(Kind.CLIENT, "listed-quick", quick),
    )
    recorder = Recorder()
    released = threading.Event()
    recorder.gates[str(slow)] = released

    class Releaser(Recorder):
        def apply(self, change: Change, emit: EventSink) -> str:
            note = recorder.apply(change, emit)
            if change.id.name == "listed-quick":
                released.set()  # the slow workload finishes only once the other client file is written
            return note

    outcomes = run(plan, Releaser(), parallelism=2)
    assert set(outcomes.values()) == {OutcomeStatus.CHANGED}
    assert recorder.order.index("client/listed-quick") < recorder.order.index("workload/slow")
    assert recorder.order.index("workload/slow") < recorder.order.index("client/listed-slow")


def test_with_parallelism_one_changes_run_in_plan_order_and_a_failure_skips_only_its_dependents() -> None:
    broken = ResourceId(Kind.WORKLOAD, "broken")
    plan = plan_of(
        change(Kind.STACK, "s"),
        change(Kind.SECRET, "a"),
        change(Kind.WORKLOAD, "broken"),
        change(Kind.WORKLOAD, "fine"),
        change(Kind.CLIENT, "needs-broken", broken),
        change(Kind.CLIENT, "alone"),
        change(Kind.CLIENT, "old", action=Action.DELETE),
        change(Kind.WORKLOAD, "old", action=Action.DELETE),
    )
    recorder = Recorder()
    recorder.failing.add(str(broken))
    outcomes = run(plan, recorder, parallelism=1)
    assert recorder.order == [
        "stack/s",
        "secret/a",
        "workload/broken",
        "workload/fine",
        "client/alone",
        "client/old",
        "workload/old",
    ]
    assert outcomes["workload/broken"] is OutcomeStatus.FAILED
    assert outcomes["client/needs-broken"] is OutcomeStatus.SKIPPED
    assert outcomes["client/alone"] is OutcomeStatus.CHANGED


def test_internal_records_go_before_later_kinds_and_deletions_after_everything() -> None:
    record = change(Kind.STACK, "s")
    key = change(Kind.SECRET, "toolhive-apply.hmac.s")
    user = change(Kind.SECRET, "a")
    workload = change(Kind.WORKLOAD, "w")
    gone_client = change(Kind.CLIENT, "c", action=Action.DELETE)
    gone_workload = change(Kind.WORKLOAD, "g", action=Action.DELETE)
    waits = prerequisites([record, key, user, workload, gone_client, gone_workload])
    assert waits[key.id] == {record.id}
    assert waits[user.id] == {record.id}  # the same kind as the key: they run side by side, as before
    assert waits[workload.id] == {record.id, key.id}
    assert waits[gone_client.id] == {record.id, key.id, user.id, workload.id}
    assert waits[gone_workload.id] == {record.id, key.id, user.id, workload.id, gone_client.id}
