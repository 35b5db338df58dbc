"""What a plan does when a workload joins a gateway's group: the new workload is created, the gateway is replaced
for its backend list alone, and no other workload changes (their specs do not depend on their group's members).

The gateway is replaced, not updated in place: its configuration is in its environment and the spec it was made
from is in its labels, neither of which Docker can change on a running container (see providers/gateway.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_vmcp_export import HTTP, specs_of
from toolhive_apply.engine.diff import DiffOptions, make_plan
from toolhive_apply.engine.plan import Action
from toolhive_apply.engine.resource import HASH_VERSION, DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.manifest import load_manifest


def _desired(directory: Path, names: list[str]) -> list[DesiredResource]:
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "gw"},
        "groups": [{"name": "research", "vmcp": {"port": 4483, "name": "lab"}}],
        "workloads": [{"name": n, "image": HTTP, "group": "research"} for n in names],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    specs = specs_of(load_manifest([path]))
    return [DesiredResource(ResourceId(Kind.WORKLOAD, name), spec) for name, spec in specs.items()]


def _running(desired: DesiredResource) -> ObservedResource:
    return ObservedResource(desired.id, f"id-{desired.id.name}", True, "gw", desired.hash, HASH_VERSION, "running",
                            desired.spec)  # fmt: skip


def test_a_workload_joining_the_group_creates_it_and_replaces_the_gateway_for_its_backends_only(
    tmp_path: Path,
) -> None:
    before = [_running(d) for d in _desired(tmp_path / "a", ["alpha"])]
    plan = make_plan(_desired(tmp_path / "b", ["alpha", "beta"]), before, DiffOptions(stack="gw"))
    actions = {c.id.name: c.action for c in plan.changes}
    assert actions == {"beta": Action.CREATE, "lab": Action.REPLACE}  # alpha is left alone
    (gateway,) = [c for c in plan.changes if c.id.name == "lab"]
    assert gateway.fields and all(f.path.startswith("vmcp.backends") for f in gateway.fields)
