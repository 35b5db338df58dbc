"""Every planned change carries a typed reason code beside its sentence, in the plan and in its JSON."""

from __future__ import annotations

from toolhive_apply.engine.diff import DiffOptions, make_plan
from toolhive_apply.engine.plan import ReasonCode, plan_to_json
from toolhive_apply.engine.resource import HASH_VERSION, DesiredResource, Kind, ObservedResource, ResourceId


def workload(name: str, **spec: object) -> DesiredResource:
    return DesiredResource(ResourceId(Kind.WORKLOAD, name), {"name": name, "image": "img:1", **spec})


def seen(item: DesiredResource, status: str = "running") -> ObservedResource:
    return ObservedResource(item.id, "h", True, "s", item.hash, HASH_VERSION, status, dict(item.spec))


def codes(desired: list[DesiredResource], observed: list[ObservedResource], **options: object) -> dict[str, str]:
    plan = make_plan(desired, observed, DiffOptions(stack="s", **options))  # type: ignore[arg-type]
    return {change["name"]: change["reason_code"] for change in plan_to_json(plan)["changes"]}


def test_each_kind_of_reason_has_its_code() -> None:
    new, gone = workload("new"), workload("gone")
    config = workload("config", image="img:1")
    rotated = workload("rotated", secret_digests={"token": "hmac-sha256:aa"})
    stopped, drifted = workload("stopped"), workload("drifted")
    desired = [
        new,
        workload("config", image="img:2"),
        workload("rotated", secret_digests={"token": "hmac-sha256:bb"}),
        stopped,
        drifted,
    ]
    observed = [seen(gone), seen(config), seen(rotated), seen(stopped, "exited"), seen(drifted, "drifted: moved")]
    assert codes(desired, observed) == {
        "new": ReasonCode.NOT_PRESENT,
        "config": ReasonCode.CONFIG_CHANGED,
        "rotated": ReasonCode.SECRET_ROTATED,
        "stopped": ReasonCode.NOT_RUNNING,
        "drifted": ReasonCode.DRIFTED,
        "gone": ReasonCode.NOT_DECLARED,
    }
    assert codes([stopped], [seen(stopped)], replace=frozenset({stopped.id})) == {"stopped": ReasonCode.FORCED_REPLACE}
    assert codes([], [seen(gone)], destroy=True) == {"gone": ReasonCode.DESTROY}
