"""Remembered schema passes (manifest/schema_passes.py): a re-plan of the same manifest skips jsonschema, and the
memory can neither let a bad manifest through nor tell anyone what a manifest held."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest, schema
from toolhive_apply.manifest.schema_passes import FILE_NAME, KEEP, open_passes

VALID = (
    "apiVersion: toolhive-apply/v1\nsettings: {stack: passes}\n"
    "workloads:\n  - name: time\n    image: mcp/time:latest\n    env_vars: {TOKEN_HINT: hunter2-not-a-secret}\n"
)
UNKNOWN_KEY = VALID + "    imagee: typo\n"  # structurally wrong only: the model ignores the stray key


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "toolhive-apply"


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the JSON Schema validator was asked for (once per document actually judged)."""
    calls: list[int] = []
    real = schema._validator

    def counting() -> object:
        calls.append(1)
        return real()

    monkeypatch.setattr(schema, "_validator", counting)
    return calls


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_manifest_that_passed_is_not_judged_again(tmp_path: Path, state: Path, judged: list[int]) -> None:
    path = write(tmp_path, VALID)
    load_manifest([path])
    load_manifest([path])
    assert judged == [1]
    assert (state / FILE_NAME).stat().st_mode & 0o777 == 0o600
    changed = write(tmp_path, VALID.replace("latest", "2025.1"))
    load_manifest([changed])
    assert judged == [1, 1]  # another document: judged


def test_a_failure_is_judged_and_worded_every_time(tmp_path: Path, state: Path, judged: list[int]) -> None:
    path = write(tmp_path, UNKNOWN_KEY)
    for _ in range(2):
        with pytest.raises(ManifestError) as caught:
            load_manifest([path])
        assert "unknown key 'imagee'" in caught.value.lines()[0]
    assert judged == [1, 1]
    assert not (state / FILE_NAME).exists()


def _plant(state: Path, document: object, mode: int) -> None:
    """A passes file holding a mark for `document`, as someone who could write the file would make it."""
    key = os.urandom(32)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    mark = hmac.new(key, schema.schema_digest() + canonical, hashlib.sha256).hexdigest()
    state.mkdir(parents=True, exist_ok=True)
    path = state / FILE_NAME
    path.write_text(json.dumps({"key": key.hex(), "marks": [mark]}), encoding="utf-8")
    path.chmod(mode)


def test_a_passes_file_others_could_write_is_not_trusted(tmp_path: Path, state: Path) -> None:
    import yaml

    path = write(tmp_path, UNKNOWN_KEY)
    _plant(state, yaml.safe_load(UNKNOWN_KEY), 0o644)
    with pytest.raises(ManifestError):
        load_manifest([path])
    assert (state / FILE_NAME).stat().st_mode & 0o777 == 0o644  # neither trusted nor replaced
    # the same file made private is trusted: the mode check, not luck, is what refused the planted mark
    (state / FILE_NAME).chmod(0o600)
    load_manifest([path])


def test_a_plain_hash_of_the_document_is_no_mark(tmp_path: Path, state: Path) -> None:
    """Without the key nobody can make a mark: a sha256 of the document (the obvious forgery) does not hold."""
    import yaml

    path = write(tmp_path, VALID)
    load_manifest([path])  # makes the file and its key
    content = json.loads((state / FILE_NAME).read_text(encoding="utf-8"))
    bad = yaml.safe_load(UNKNOWN_KEY)
    canonical = json.dumps(bad, sort_keys=True, separators=(",", ":")).encode()
    content["marks"].append(hashlib.sha256(schema.schema_digest() + canonical).hexdigest())
    (state / FILE_NAME).write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(ManifestError):
        load_manifest([write(tmp_path, UNKNOWN_KEY)])


def test_the_file_tells_nothing_of_the_manifest(tmp_path: Path, state: Path) -> None:
    import yaml

    load_manifest([write(tmp_path, VALID)])
    raw = (state / FILE_NAME).read_bytes()
    assert b"hunter2" not in raw
    canonical = json.dumps(yaml.safe_load(VALID), sort_keys=True, separators=(",", ":")).encode()
    for digest in (hashlib.sha256(canonical), hashlib.sha256(schema.schema_digest() + canonical)):
        assert digest.hexdigest().encode() not in raw


def test_a_mark_holds_for_one_schema_only(state: Path) -> None:
    passes = open_passes()
    document = {"apiVersion": "toolhive-apply/v1"}
    assert passes.mark(b"a" * 32, document) != passes.mark(b"b" * 32, document)
    # what JSON cannot spell exactly, or would spell like something the schema judges differently: never marked
    assert passes.mark(b"a" * 32, {"when": float("nan")}) is None
    assert passes.mark(b"a" * 32, {"env_vars": {1: "x"}}) is None  # json.dumps would write the key as "1"
    assert passes.mark(b"a" * 32, {"cmd_arguments": ("a", "b")}) is None  # and a tuple as a list
    assert passes.mark(b"a" * 32, {"env_vars": {"1": "x"}}) is not None


def test_the_memory_is_bounded(state: Path) -> None:
    passes = open_passes()
    for number in range(KEEP + 10):
        passes.remember(f"{number:064x}")
    kept = open_passes().marks
    assert len(kept) == KEEP
    assert kept[-1] == f"{KEEP + 9:064x}"


def test_an_unusable_state_directory_only_costs_the_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judged: list[int]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    path = write(tmp_path, VALID)
    load_manifest([path])
    load_manifest([path])
    assert judged == [1, 1]
    damaged = tmp_path / "state" / "toolhive-apply" / FILE_NAME
    damaged.parent.mkdir(parents=True)
    damaged.write_text("{damaged", encoding="utf-8")
    damaged.chmod(0o600)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    load_manifest([path])  # a damaged file is ignored and replaced, never an error
    load_manifest([path])
    assert judged == [1, 1, 1]


def test_a_re_plan_does_not_import_jsonschema(tmp_path: Path) -> None:
    """The point of it (issue #20): the second load of the same manifest never imports jsonschema."""
    path = write(tmp_path, VALID)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    probe = (
        "import sys\nfrom pathlib import Path\nfrom toolhive_apply.manifest import load_manifest\n"
        f"load_manifest([Path({str(path)!r})])\nprint('jsonschema' in sys.modules)\n"
    )
    seen = [
        subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert seen == ["True\n", "False\n"]


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"key": "00" * 32, "marks": ["\u00e9"]}).encode(),  # hmac.compare_digest refuses non-ASCII
        b"[" * 200_000 + b"]" * 200_000,  # deeper than json.loads recurses
        json.dumps({"key": "00" * 32, "marks": ["0" * 64] * 1000}).encode(),  # far larger than remember() writes
        json.dumps({"key": "00" * 32, "marks": "0" * 64}).encode(),
        b"\xff\xfe",
    ],
    ids=["non-ascii-mark", "deep", "oversized", "marks-not-a-list", "not-utf8"],
)
def test_a_damaged_passes_file_is_only_forgotten(
    tmp_path: Path, state: Path, judged: list[int], content: bytes
) -> None:
    state.mkdir(parents=True)
    (state / FILE_NAME).write_bytes(content)
    (state / FILE_NAME).chmod(0o600)
    path = write(tmp_path, VALID)
    load_manifest([path])
    load_manifest([path])
    assert judged == [1]  # judged once, then the rewritten file holds its pass


def test_a_fifo_at_the_name_does_not_hang_the_run(state: Path) -> None:
    import threading

    state.mkdir(parents=True)
    os.mkfifo(state / FILE_NAME, 0o600)
    opened: list[object] = []
    reader = threading.Thread(target=lambda: opened.append(open_passes()), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "open_passes blocked on a FIFO"
    assert opened and opened[0].path is None  # type: ignore[attr-defined]  # refused: nothing remembered there


def test_strings_are_marked_as_they_are_spelt(state: Path) -> None:
    """Escaped, one astral character and the two lone surrogates that spell it in UTF-16 would read alike."""
    passes = open_passes()
    astral = passes.mark(b"a" * 32, {"name": "\U0001f600"})
    surrogates = passes.mark(b"a" * 32, {"name": "\ud83d\ude00"})
    assert astral is not None and surrogates is not None
    assert astral != surrogates
