"""The CLI end to end for input problems: one positioned message per problem, exit 1, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli


def test_validate_accepts_every_example_stack() -> None:
    result = run_cli("validate", str(ROOT / "examples"))
    assert result.code == 0, result
    assert result.stdout.count("Valid:") == len([d for d in (ROOT / "examples").iterdir() if any(d.glob("*.yaml"))])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"apiVersion: toolhive-apply/v1\nworkloads:\n  - name: a\n    imgae: x\n",
            ":4:5: workloads[0].imgae: unknown key",
        ),
        (b"apiVersion: toolhive-apply/v1\nworkloads: {}\n", ":2:1: workloads: expected a list, got a mapping"),
        (b"apiVersion: toolhive-apply/v1\napiVersion: toolhive-apply/v1\n", ":2:1: apiVersion: duplicate key"),
        (b"\xc3\x28", ":1:1: file is not valid UTF-8"),
        (b"", ":1:1: file is empty"),
        (b"[1, 2]\n", ":1:1: the manifest must be a mapping"),
        (
            b"apiVersion: toolhive-apply/v1\nvars: {a: \"{{ ''.__class__ }}\"}\n",
            ":2:8: vars.a: template error: refused by the sandbox",
        ),
    ],
)
def test_bad_input_gets_one_positioned_message_and_exit_1(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "stack.yaml"
    path.write_bytes(content)
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}{expected}"), result.stderr


def test_validate_json_lists_every_problem_for_pipelines(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("apiVersion: toolhive-apply/v1\nworkloads:\n  - name: a\n    transport: tcp\n  - {name: 'b c'}\n")
    result = run_cli("validate", str(path), "--output", "json")
    assert result.code == 1
    problems = json.loads(result.stdout)
    assert [(p["line"], p["field"]) for p in problems] == [(4, "workloads[0].transport"), (5, "workloads[1].name")]
    assert all(p["file"] == str(path) for p in problems)


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("plan", str(tmp_path / "nope.yaml"))
    assert result.code == 1
    assert "no such file or directory" in result.stderr


def test_apply_refuses_to_run_unattended_without_yes(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("apiVersion: toolhive-apply/v1\nsettings: {stack: never-applied}\nworkloads: []\n")
    result = run_cli("apply", str(path), env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.code == 1  # Docker is not even reached: a clear error, never a hang or traceback
    assert result.stderr.startswith("Error: Docker at unix:///nonexistent.sock is not available")


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.code == 0
    for command in ("validate", "plan", "apply", "destroy", "export", "restart", "unlock"):
        assert command in result.stdout


def test_an_unknown_option_is_a_usage_error_with_exit_1() -> None:
    result = run_cli("plan", "--frobnicate")
    assert result.code == 1
    assert "No such option" in result.stderr
