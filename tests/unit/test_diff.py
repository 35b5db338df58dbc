"""The pure core: desired vs observed -> Plan, on data only (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolhive_apply.engine.diff import DiffOptions, field_changes, make_plan
from toolhive_apply.engine.plan import Action, load_plan, plan_to_json, save_plan
from toolhive_apply.engine.resource import (
    HASH_VERSION,
    DesiredResource,
    Kind,
    ObservedResource,
    ResourceId,
    spec_hash,
)
from toolhive_apply.errors import ConflictError, PlanFileError, UsageError


def rid(name: str) -> ResourceId:
    return ResourceId(Kind.WORKLOAD, name)


def desired(name: str, **spec: object) -> DesiredResource:
    return DesiredResource(rid(name), {"name": name, "image": "img:1", "prune": True, **spec})


def observed_from(item: DesiredResource, status: str = "running", **overrides: object) -> ObservedResource:
    values: dict[str, object] = {
        "handle": f"id-{item.id.name}",
        "managed": True,
        "owner": "s",
        "spec_hash": item.hash,
        "hash_version": HASH_VERSION,
        "status": status,
        "spec": dict(item.spec),
    }
    values.update(overrides)
    return ObservedResource(item.id, **values)  # type: ignore[arg-type]


OPTIONS = DiffOptions(stack="s")
MAC_KEY = b"k" * 32


def test_nothing_observed_means_every_resource_is_created() -> None:
    plan = make_plan([desired("a"), desired("b")], [], OPTIONS)
    assert [(c.id.name, c.action) for c in plan.changes] == [("a", Action.CREATE), ("b", Action.CREATE)]
    assert plan.changes[0].reason == "not present"


def test_equal_hash_and_running_is_in_sync() -> None:
    item = desired("a")
    plan = make_plan([item], [observed_from(item)], OPTIONS)
    assert plan.changes == ()
    assert plan.in_sync == (rid("a"),)


def test_drift_a_start_cannot_undo_replaces_with_the_drift_as_the_reason() -> None:
    item = desired("a")
    plan = make_plan([item], [observed_from(item, "drifted: attached to bridge")], OPTIONS)
    assert [(c.action, c.reason, c.fields) for c in plan.changes] == [
        (Action.REPLACE, "drifted: attached to bridge", ())
    ]


def test_a_stopped_container_with_the_right_spec_is_started_not_replaced() -> None:
    item = desired("a")
    plan = make_plan([item], [observed_from(item, status="exited")], OPTIONS)
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.START, "container exited")]


def test_a_changed_field_replaces_and_names_the_attribute() -> None:
    old = desired("a", env_vars={"TZ": "UTC", "X": "1"})
    new = desired("a", env_vars={"TZ": "Europe/Paris", "X": "1"})
    plan = make_plan([new], [observed_from(old)], OPTIONS)
    (change,) = plan.changes
    assert change.action is Action.REPLACE
    assert change.reason == "config changed: env_vars.TZ"
    assert [(f.path, f.before, f.after) for f in change.fields] == [("env_vars.TZ", "UTC", "Europe/Paris")]


def test_a_rotated_secret_digest_is_sensitive_and_says_which_secret() -> None:
    old = desired("a", secret_digests={"token": "aaa"})
    new = desired("a", secret_digests={"token": "bbb"})
    (change,) = make_plan([new], [observed_from(old)], OPTIONS).changes
    assert change.reason == "secret rotated: token"
    assert change.fields[0].sensitive
    assert "aaa" not in str(plan_to_json(make_plan([new], [observed_from(old)], OPTIONS)))


def test_soft_fields_do_not_replace() -> None:
    old = desired("a", description="one", ready_timeout=10)
    new = desired("a", description="two", ready_timeout=99)
    assert old.hash == new.hash
    assert make_plan([new], [observed_from(old)], OPTIONS).changes == ()


def test_an_older_hash_version_over_an_equal_spec_recreates_nothing() -> None:
    item = desired("a")
    seen = observed_from(item, spec_hash="legacy-hash", hash_version="0")
    assert make_plan([item], [seen], OPTIONS).changes == ()


def test_an_owned_resource_no_longer_declared_is_deleted_last() -> None:
    keep, gone = desired("a"), desired("z-gone")
    plan = make_plan([keep, desired("new")], [observed_from(keep), observed_from(gone)], OPTIONS)
    assert [(c.id.name, c.action) for c in plan.changes] == [("new", Action.CREATE), ("z-gone", Action.DELETE)]
    assert plan.changes[1].reason == "not declared any more"


def test_prune_false_keeps_a_resource_that_left_the_manifest() -> None:
    kept = desired("a", prune=False)
    plan = make_plan([desired("b")], [observed_from(kept)], OPTIONS)
    assert [c.action for c in plan.changes] == [Action.CREATE]
    assert plan.kept == (rid("a"),)


def test_a_foreign_resource_under_a_wanted_name_is_a_conflict() -> None:
    item = desired("a")
    foreign = observed_from(item, managed=False, owner=None, handle="container 'a'")
    with pytest.raises(ConflictError, match="workload/a: container 'a' already exists and is owned by nobody"):
        make_plan([item], [foreign], OPTIONS)


def test_an_empty_manifest_that_would_delete_everything_is_refused() -> None:
    seen = observed_from(desired("a"))
    with pytest.raises(UsageError, match="would delete all 1 resource of stack"):
        make_plan([], [seen], OPTIONS)
    allowed = make_plan([], [seen], DiffOptions(stack="s", allow_empty=True))
    assert [c.action for c in allowed.changes] == [Action.DELETE]


def test_destroy_deletes_even_prune_false() -> None:
    seen = observed_from(desired("a", prune=False))
    plan = make_plan([desired("a", prune=False)], [seen], DiffOptions(stack="s", destroy=True))
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.DELETE, "destroy")]


def test_target_limits_the_plan_and_an_unknown_target_is_an_error() -> None:
    plan = make_plan([desired("a"), desired("b")], [], DiffOptions(stack="s", targets=frozenset({rid("b")})))
    assert [c.id.name for c in plan.changes] == ["b"]
    with pytest.raises(UsageError, match="unknown resource"):
        make_plan([desired("a")], [], DiffOptions(stack="s", targets=frozenset({rid("typo")})))


def test_replace_forces_a_recreate_of_an_in_sync_resource() -> None:
    item = desired("a")
    plan = make_plan([item], [observed_from(item)], DiffOptions(stack="s", replace=frozenset({rid("a")})))
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.REPLACE, "forced by --replace")]


def test_the_fingerprint_changes_with_the_observed_state_and_exists_for_the_empty_state() -> None:
    item = desired("a")
    empty = make_plan([item], [], OPTIONS).observed_fingerprint
    running = make_plan([item], [observed_from(item)], OPTIONS).observed_fingerprint
    stopped = make_plan([item], [observed_from(item, status="exited")], OPTIONS).observed_fingerprint
    assert len({empty, running, stopped}) == 3


def test_field_changes_flatten_nested_mappings_and_compare_lists_whole() -> None:
    changes = field_changes({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": [1, 2]}, "d": True})
    assert [(c.path, c.before, c.after) for c in changes] == [("a.b", 1, 2), ("d", None, True)]


def test_a_saved_plan_round_trips(tmp_path: Path) -> None:
    plan = make_plan([desired("a", env_vars={"A": "1"})], [observed_from(desired("gone"))], OPTIONS)
    path = tmp_path / "plan.json"
    save_plan(plan, path, MAC_KEY)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = load_plan(path, MAC_KEY)
    assert plan_to_json(loaded) == plan_to_json(plan)
    assert loaded.changes[0].desired is not None
    assert spec_hash(loaded.changes[0].desired.spec) == plan.changes[0].desired.hash  # type: ignore[union-attr]


def test_a_damaged_plan_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"kind": "toolhive-apply-plan", "format_version": 1}')
    with pytest.raises(PlanFileError, match="cannot read plan file"):
        load_plan(path, MAC_KEY)
    path.write_text('{"kind": "toolhive-apply-plan", "format_version": 99}')
    with pytest.raises(PlanFileError, match="newer than this toolhive-apply"):
        load_plan(path, MAC_KEY)


def test_derived_ports_are_stable_distinct_and_below_the_ephemeral_range() -> None:
    from toolhive_apply.manifest.ports import assign_ports

    names = [f"w{i}" for i in range(500)]
    first = assign_ports("stack", ((n, None) for n in names))
    again = assign_ports("stack", ((n, None) for n in names))
    assert first == again
    assert len(set(first.values())) == len(names)
    assert all(20000 <= port < 32768 for port in first.values())
    assert assign_ports("stack", [("a", 25000), ("b", None)])["a"] == 25000


def test_a_registry_moved_to_another_source_is_a_planned_change(tmp_path: Path) -> None:
    """`source` is soft for secrets (it only describes); for a registry the location is what it is."""
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.providers.registry import RegistryProvider

    def registry_spec(local_path: str) -> DesiredResource:
        path = tmp_path / "stack.yaml"
        path.write_text(
            "apiVersion: toolhive-apply/v1\nsettings: {stack: s}\n"
            f"registries: [{{name: cat, local_path: {local_path}}}]\n"
        )
        provider = RegistryProvider.__new__(RegistryProvider)  # desired() touches no engine: none is made
        return provider.desired(load_manifest([path]))[0]

    before, after = registry_spec("./one.json"), registry_spec("./two.json")
    plan = make_plan([after], [observed_from(before, "present")], OPTIONS)
    assert [c.action for c in plan.changes] == [Action.REPLACE]
    assert [f.path for f in plan.changes[0].fields] == ["location"]
