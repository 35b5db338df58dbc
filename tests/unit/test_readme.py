"""README promises that must stay true: the schema-generated reference and the quick-start commands."""

from __future__ import annotations

from pathlib import Path

from toolhive_apply.manifest.reference import END, START, render_reference

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_manifest_reference_in_the_readme_is_generated_from_the_schema() -> None:
    start = README.index(START)
    end = README.index(END) + len(END)
    assert README[start:end] + "\n" == render_reference(), "run: python -m toolhive_apply.manifest.reference and paste"


def test_the_readme_names_the_two_newcomer_commands_and_ci_runs_the_same_test_command() -> None:
    assert (
        'pip install -e ".[dev]" && python tests/images/build_images.py && toolhive-apply apply examples/minimal --yes'
        in README
    )
    assert "\npython -m pytest\n" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\npython -m pytest\n" in ci and "build_images.py" in ci and "pip install -q -e" in ci
