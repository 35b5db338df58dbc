"""Saved plans on data: the MAC covers every field, the file is parsed strictly, the carried specs are checked again.

The end-to-end side (a tampered file refused with nothing on the engine, the GitOps flow with every store) is in
tests/e2e/test_saved_plans.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolhive_apply.engine.diff import DiffOptions, make_plan
from toolhive_apply.engine.plan import (
    Action,
    Plan,
    load_plan,
    plan_mac_key,
    plan_to_json,
    read_plan_file,
    save_plan,
    seal,
)
from toolhive_apply.engine.resource import HASH_VERSION, DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import PlanFileError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.providers.docker.labels import LABEL_MANAGED_BY, LABEL_STACK, MANAGED_BY
from toolhive_apply.providers.workload.observe import observe_units
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.registry.formats import RegistryError
from toolhive_apply.registry.resolve import resolve_registries
from toolhive_apply.spec_checks import shown_differs, spec_issues

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = plan_mac_key(b"s" * 32, "s")


def workload_specs(manifest_dir: Path) -> list[DesiredResource]:
    """The specs a plan of this manifest carries (image ids left out: no engine here; a registry that cannot be
    read here leaves its workloads out)."""
    manifest = load_manifest([manifest_dir])
    try:
        manifest = resolve_registries(manifest).manifest
    except RegistryError:
        manifest = dataclasses.replace(manifest, workloads=tuple(w for w in manifest.workloads if not w.registry))
    ports = assign_ports(manifest.settings.stack, ((w.name, w.proxy_port) for w in manifest.workloads))
    return [
        DesiredResource(
            ResourceId(Kind.WORKLOAD, w.name), workload_spec(w, manifest, ports[w.name], None).document(), w.origin
        )
        for w in manifest.workloads
    ]


def write_stack(directory: Path, workload: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    document = {"apiVersion": "toolhive-apply/v1", "settings": {"stack": "s"}, "workloads": [workload]}
    (directory / "stack.yaml").write_text(json.dumps(document), encoding="utf-8")
    return directory


def a_plan(tmp_path: Path) -> Plan:
    """Every kind of change: a create with a secret, a replace, a delete with an observed container."""
    specs = workload_specs(write_stack(tmp_path / "m", {"name": "web", "image": "img:1", "volumes": ["./data:/d:ro"]}))
    new = specs[0]
    old = dataclasses.replace(new, id=ResourceId(Kind.WORKLOAD, "old"), spec={**new.spec, "name": "old"})
    gone = ObservedResource(ResourceId(Kind.WORKLOAD, "gone"), "id-gone", True, "s", "h", HASH_VERSION, "running")
    before = {**old.spec, "image": "img:0"}
    seen_old = ObservedResource(old.id, "id-old", True, "s", "stale-hash", HASH_VERSION, "running", before)
    secret = DesiredResource(ResourceId(Kind.SECRET, "tok"), {"key": "tok", "digest": "hmac-sha256:ab", "source": "x"})
    plan = make_plan([new, old, secret], [gone, seen_old], DiffOptions(stack="s", settings={"docker_host": None}))
    return dataclasses.replace(plan, observed_names=(new.id, old.id, secret.id))


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if value is None:
        return "x"
    return f"{value}x"


def test_the_mac_covers_every_field_of_the_plan_document(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save_plan(a_plan(tmp_path), path, KEY)
    document = json.loads(path.read_text(encoding="utf-8"))
    body = {k: v for k, v in document.items() if k != "mac"}
    paths = list(leaves(body))
    assert len(paths) > 40  # the walk really reached into changes, specs and observed records
    for where in paths:
        edited = copy.deepcopy(document)
        target = edited
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = changed(target[where[-1]])
        path.write_text(json.dumps(edited), encoding="utf-8")
        with pytest.raises(PlanFileError, match=r"MAC does not match|newer than|not a toolhive-apply plan"):
            load_plan(path, KEY)
    for extra in ({"kind_of": 1}, {"privileged": True}):
        edited = copy.deepcopy(document)
        edited["changes"][0]["desired"]["spec"].update(extra)
        path.write_text(json.dumps(edited), encoding="utf-8")
        with pytest.raises(PlanFileError, match="MAC does not match"):
            load_plan(path, KEY)


def test_a_plan_verifies_only_with_its_own_stacks_key_and_not_without_a_mac(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save_plan(a_plan(tmp_path), path, KEY)
    assert load_plan(path, KEY).stack == "s"
    for other in (plan_mac_key(b"s" * 32, "t"), plan_mac_key(b"t" * 32, "s"), b"s" * 32):
        with pytest.raises(PlanFileError, match="MAC does not match"):
            load_plan(path, other)
    document = json.loads(path.read_text(encoding="utf-8"))
    del document["mac"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PlanFileError, match="not signed"):
        load_plan(path, KEY)
    document["mac"] = {"algorithm": "none", "value": ""}
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PlanFileError, match="not an hmac-sha256 MAC"):
        load_plan(path, KEY)


def test_the_plan_mac_key_is_derived_and_not_the_stack_key_itself() -> None:
    stack_key = b"k" * 32
    assert plan_mac_key(stack_key, "a") != stack_key
    assert plan_mac_key(stack_key, "a") != plan_mac_key(stack_key, "b")
    assert len(plan_mac_key(stack_key, "a")) == 32


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"kind": "toolhive-apply-plan", "kind": "x", "format_version": 1, "stack": "s"}', "appears twice"),
        ('{"kind": "toolhive-apply-plan", "format_version": NaN, "stack": "s"}', "NaN is not JSON"),
        ('{"kind": "toolhive-apply-plan", "format_version": 1}', "stack is missing"),
        ('{"kind": "toolhive-apply-plan", "format_version": true, "stack": "s"}', "format_version is missing"),
        ('{"kind": "toolhive-apply-plan", "format_version": 1, "stack": "a/../b"}', "is not a stack name"),
        ("[1]", "not a toolhive-apply plan file"),
        ("\xff", "cannot read plan file"),
    ],
)
def test_a_plan_file_is_parsed_strictly(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(PlanFileError, match=problem):
        read_plan_file(path)


def test_a_duplicate_key_deep_in_a_spec_is_refused_even_under_a_valid_mac(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save_plan(a_plan(tmp_path), path, KEY)
    text = path.read_text(encoding="utf-8").replace('"image": "img:1"', '"image": "img:1", "image": "evil:1"', 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanFileError, match="'image' appears twice"):
        load_plan(path, KEY)


def test_what_a_loaded_plan_shows_is_what_it_applies(tmp_path: Path) -> None:
    plan = a_plan(tmp_path)
    path = tmp_path / "plan.json"
    save_plan(plan, path, KEY)
    loaded = load_plan(path, KEY)
    assert plan_to_json(loaded) == plan_to_json(plan)
    assert [shown_differs(c) for c in loaded.changes] == [None] * len(loaded.changes)
    create = next(c for c in loaded.changes if c.action is Action.CREATE and c.id.kind is Kind.WORKLOAD)
    assert create.desired is not None
    hidden = dataclasses.replace(create.desired, spec={**create.desired.spec, "image": "evil:1"})
    assert shown_differs(dataclasses.replace(create, desired=hidden)) == "image"
    replace = next(c for c in loaded.changes if c.action is Action.REPLACE)
    assert replace.desired is not None
    hidden = dataclasses.replace(replace.desired, spec={**replace.desired.spec, "image": "evil:1"})
    assert shown_differs(dataclasses.replace(replace, desired=hidden)) == "image"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "stack.yaml").exists()))
def test_the_specs_of_every_example_pass_the_manifests_checks(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES / example)
    desired = workload_specs(EXAMPLES / example)
    assert desired, example
    assert spec_issues("example", desired) == []


def _issues_of(tmp_path: Path, workload: dict[str, Any], **spec: Any) -> list[str]:
    (desired,) = workload_specs(write_stack(tmp_path, workload))
    edited = dataclasses.replace(desired, spec={**desired.spec, **spec})
    return [str(issue) for issue in spec_issues("s", [edited])]


def test_a_carried_spec_is_judged_on_what_docker_would_get(tmp_path: Path) -> None:
    base = {"name": "w", "image": "img:1"}
    assert _issues_of(tmp_path, base) == []
    socket = _issues_of(tmp_path, base, volumes=["/var/run/docker.sock:/var/run/docker.sock:rw"])
    assert socket == [
        "workload/w: volumes[0]: mounting the Docker socket would hand the server the whole host"
        " (list it under allow_host_paths to accept this)"
    ]
    root = _issues_of(tmp_path, base, volumes=["/:/host:ro"])
    assert root and "mounting / would expose the host itself" in root[0]
    profile = {"name": "p", "privileged": True, "network": {"outbound": {}}}
    assert _issues_of(tmp_path, base, permission_profile=profile) == [
        "workload/w: permission_profile.privileged: a privileged container needs allow_privileged: true"
    ]
    assert _issues_of(tmp_path, base, permission_profile=profile, allow_privileged=True) == []
    assert any("does not match" in i for i in _issues_of(tmp_path, base, name="../w"))
    assert any("proxy_port" in i for i in _issues_of(tmp_path, base, proxy_port=70000))
    assert any("labels" in i for i in _issues_of(tmp_path, base, labels={"toolhive-apply.stack": "other"}))


def test_the_acknowledgements_a_spec_was_made_with_travel_with_it(tmp_path: Path) -> None:
    workload = {
        "name": "w",
        "image": "img:1",
        "volumes": ["/var/run/docker.sock:/var/run/docker.sock"],
        "allow_host_paths": ["/var/run/docker.sock"],
        "permission_profile": {"privileged": True},
        "allow_privileged": True,
    }
    (desired,) = workload_specs(write_stack(tmp_path, workload))
    assert desired.spec["allow_privileged"] is True
    assert desired.spec["allow_host_paths"] == ["/var/run/docker.sock"]
    assert spec_issues("s", [desired]) == []
    unacknowledged = {**desired.spec, "allow_privileged": False, "allow_host_paths": []}
    problems = spec_issues("s", [dataclasses.replace(desired, spec=unacknowledged)])
    assert sorted(p.field for p in problems) == ["permission_profile.privileged", "volumes[0]"]
    assert all(p.origin == desired.origin for p in problems)  # positioned at the workload's declaration


def _network(name: str, role: str | None = None) -> dict[str, Any]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_STACK: "s"} | ({"toolhive-apply.role": role} if role else {})
    return {"Name": name, "Labels": labels}


def test_the_stack_network_with_nothing_left_on_it_is_an_orphan_unless_a_workload_is_wanted() -> None:
    shared = _network("toolhive-apply.s")
    orphans = observe_units("s", [], [shared], frozenset())
    assert list(orphans) == [ResourceId(Kind.WORKLOAD, "toolhive-apply.s")]
    assert orphans[ResourceId(Kind.WORKLOAD, "toolhive-apply.s")].facts["network"] == "toolhive-apply.s"
    assert observe_units("s", [], [shared], frozenset({"web"})) == {}
    server = {"Id": "c1", "Names": ["/web"], "State": "running", "Labels": {"toolhive": "true"}}
    assert ResourceId(Kind.WORKLOAD, "toolhive-apply.s") not in observe_units("s", [server], [shared], frozenset())
    assert observe_units("s", [], [_network("toolhive-apply.other")], frozenset()) == {}


def test_seal_replaces_an_old_mac(tmp_path: Path) -> None:
    document = plan_to_json(a_plan(tmp_path))
    assert seal(seal(document, b"a" * 32), KEY) == seal(document, KEY)


def test_a_spec_of_an_unknown_shape_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    (desired,) = workload_specs(write_stack(tmp_path, {"name": "w", "image": "img:1"}))
    odd = dataclasses.replace(desired, spec={**desired.spec, "secrets": 3})
    assert [str(i) for i in spec_issues("s", [odd])] == ["a workload spec is not one this version makes (TypeError)"]


def test_a_privileged_profile_filled_in_by_a_registry_needs_the_workloads_acknowledgement(tmp_path: Path) -> None:
    """The manifest's checks ran before the registry filled in the profile; the spec checks judge what runs."""
    registry = json.loads((EXAMPLES / "registry" / "registry.json").read_text(encoding="utf-8"))
    entry = registry["data"]["servers"][1]["_meta"]["io.modelcontextprotocol.registry/publisher-provided"]
    entry["io.github.stacklok"]["toolhive-apply-test/time:latest"]["permissions"] = {"privileged": True}
    (tmp_path / "registry.json").write_text(json.dumps(registry), encoding="utf-8")
    document = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "s"},
        "registries": [{"name": "local", "local_path": "./registry.json"}],
        "workloads": [{"name": "t", "registry": "local", "server": "io.github.toolhive-apply/time"}],
    }
    (tmp_path / "stack.yaml").write_text(json.dumps(document), encoding="utf-8")
    (desired,) = workload_specs(tmp_path)
    assert desired.spec["permission_profile"]["privileged"] is True
    assert [str(i) for i in spec_issues("s", [desired], structure=False)] == [
        "workload/t: permission_profile.privileged: a privileged container needs allow_privileged: true"
    ]
    document["workloads"][0]["allow_privileged"] = True
    (tmp_path / "stack.yaml").write_text(json.dumps(document), encoding="utf-8")
    assert spec_issues("s", workload_specs(tmp_path), structure=False) == []
