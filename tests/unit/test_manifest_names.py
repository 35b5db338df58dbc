"""Names that collide with toolhive-apply's own objects are refused at validate, positioned at the name."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.docker.labels import (
    MANAGED_BY,
    SET_ASIDE_MARK,
    egress_name,
    isolation_network,
    proxy_name,
    set_aside_name,
    stack_network,
)
from toolhive_apply.providers.docker.lock import lock_name
from toolhive_apply.providers.registry import record_name


def _problems(tmp_path: Path, workloads: str, extra: str = "") -> list[str]:
    path = tmp_path / "stack.yaml"
    path.write_text(f"apiVersion: toolhive-apply/v1\nsettings: {{stack: s}}\n{extra}workloads:\n{workloads}")
    with pytest.raises(ManifestError) as raised:
        load_manifest([path], environ={})
    return raised.value.lines()


def test_every_object_name_we_make_outside_a_workload_s_own_carries_the_reserved_prefix() -> None:
    """The rule below is one prefix because every stack-level object starts with it: keep it so."""
    for name in (lock_name("s"), record_name("s", "r"), stack_network("s"), isolation_network("s", "w")):
        assert name.startswith(MANAGED_BY), name
    assert SET_ASIDE_MARK in set_aside_name(proxy_name("w"), "abc123")


@pytest.mark.parametrize(
    ("names", "owner", "role"),
    [(("x", proxy_name("x")), "x", "proxy"), ((egress_name("x"), "x"), "x", "egress")],
)
def test_a_workload_named_like_another_s_helper_is_refused(
    tmp_path: Path, names: tuple[str, str], owner: str, role: str
) -> None:
    body = "".join(f"  - {{name: {n}, image: img}}\n" for n in names)
    problems = _problems(tmp_path, body)
    [helper] = [n for n in names if n != owner]
    assert len(problems) == 1
    expected = f"workloads[{names.index(helper)}].name: {helper!r} is the name of workload {owner!r}'s {role} container"
    assert expected in problems[0]


@pytest.mark.parametrize(
    "name",
    [lock_name("other"), "toolhive-apply-lock.s", "Toolhive-Apply.s", record_name("s", "r"), "toolhive-applyx"],
)
def test_a_workload_named_with_our_prefix_is_refused(tmp_path: Path, name: str) -> None:
    [problem] = _problems(tmp_path, f"  - {{name: '{name}', image: img}}\n")
    assert "workloads[0].name: names beginning 'toolhive-apply' are toolhive-apply's own" in problem


def test_a_workload_named_like_a_set_aside_container_is_refused(tmp_path: Path) -> None:
    name = set_aside_name("x", "0a1b2c")
    [problem] = _problems(tmp_path, f"  - {{name: '{name}', image: img}}\n")
    assert "is how a replace sets containers aside" in problem


def test_a_secret_key_with_our_prefix_is_refused(tmp_path: Path) -> None:
    extra = "secrets:\n  - {key: toolhive-apply.hmac.s, present: true}\n"
    problems = _problems(tmp_path, "  - {name: a, image: img}\n", extra)
    assert any("secrets[0].key: keys beginning 'toolhive-apply'" in p for p in problems)


def test_ordinary_names_that_merely_resemble_ours_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    names = ["web-proxy", "x", "X-proxy", "toolhive", "egress"]  # Docker compares names exactly: X-proxy is free
    body = "".join(f"  - {{name: {n}, image: img}}\n" for n in names)
    path.write_text(f"apiVersion: toolhive-apply/v1\nworkloads:\n{body}")
    assert [w.name for w in load_manifest([path], environ={}).workloads] == names
