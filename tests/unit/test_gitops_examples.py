"""The GitOps examples stay runnable: their manifest validates and every toolhive-apply flag they use exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from toolhive_apply.cli.app import app
from toolhive_apply.manifest import load_manifest

GITOPS = Path(__file__).resolve().parents[2] / "examples" / "gitops"
PIPELINES = [GITOPS / ".github" / "workflows" / "toolhive-apply.yml", GITOPS / ".gitlab-ci.yml"]


def _commands() -> list[list[str]]:
    found = []
    for pipeline in PIPELINES:
        text = pipeline.read_text(encoding="utf-8")
        yaml.safe_load(text)  # the pipeline file itself parses
        for line in re.findall(r"toolhive-apply (?:plan|apply)[^\n|>]*", text):
            found.append(shlex.split(line.split("||")[0]))
    return found


def test_the_gitops_manifest_validates_with_jwt_login() -> None:
    manifest = load_manifest([GITOPS], environ={})
    assert manifest.settings.secret_provider == "vault"
    assert manifest.settings.vault["auth"]["method"] == "jwt"


def test_every_command_the_pipelines_run_uses_real_flags() -> None:
    commands = _commands()
    assert {c[1] for c in commands} == {"plan", "apply"}
    runner = CliRunner()
    for command in commands:
        help_text = runner.invoke(app, [command[1], "--help"]).output
        for word in command[2:]:
            if word.startswith("--"):
                assert word in help_text, f"{word} is not an option of `toolhive-apply {command[1]}`"
