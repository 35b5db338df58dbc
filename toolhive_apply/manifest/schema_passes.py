"""Which rendered manifests this user's runs already found valid against the schema, so a re-plan skips jsonschema.

Why: importing jsonschema and compiling the manifest schema is about a sixth of a no-op plan's wall time (issue
#20), and a GitOps pipeline plans the same manifest over and over. Only passes are remembered; a document that
fails is judged, and worded, every time.

What is kept, and why it cannot be abused:
- a *mark* per pass: HMAC-SHA256 of the schema file's digest and the canonical JSON of the rendered document,
  under a random key. A rendered manifest can hold values from the environment (templates), so a plain hash of it
  would let anyone who reads the file test guesses of those values; the mark says nothing without the key.
- the key and the marks live in one file, `$XDG_STATE_HOME/toolhive-apply/schema-passes`, 0600 and read only
  when it is this user's, not a link and not open to others (fileio.read_private): nobody else can add a mark
  or learn the key. A file that fails those checks is neither trusted nor replaced.
- a mark holds for one schema: an upgrade that changes the schema file judges everything again.

Any trouble with the file (unwritable state directory, damaged content) means validating as if nothing were
remembered; it never fails a run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from toolhive_apply.fileio import UnsafePathError, private_dir, read_private, replace_atomically, state_dir

FILE_NAME: Final = "schema-passes"
KEEP: Final = 64
"""Marks kept, newest last: enough for every manifest one machine plans, small enough to read in microseconds."""
_KEY_BYTES: Final = 32


@dataclass(slots=True)
class SchemaPasses:
    """The key and the remembered marks of one state directory (`path` None: remember nothing)."""

    path: Path | None
    key: bytes
    marks: list[str] = field(default_factory=list)

    def mark(self, schema_digest: bytes, document: Any) -> str | None:
        """The mark of `document` under the schema with `schema_digest`; None for what JSON cannot spell exactly.

        Two documents the schema may judge differently must never share a mark, so only plain JSON values are
        marked: json.dumps would spell a YAML integer key `1` and the string key `"1"` alike, and a tuple like a
        list, though jsonschema treats them differently.
        """
        try:
            if not _plain(document):
                return None
            canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError):  # a float NaN, or nesting deeper than Python recurses
            return None
        return hmac.new(self.key, schema_digest + canonical.encode(), hashlib.sha256).hexdigest()

    def holds(self, mark: str) -> bool:
        return any(hmac.compare_digest(mark, known) for known in self.marks)

    def remember(self, mark: str) -> None:
        """Add `mark` and write the file; a failed write is ignored (next time it is judged again)."""
        if self.path is None or mark in self.marks:
            return
        self.marks = [*self.marks, mark][-KEEP:]
        content = json.dumps({"key": self.key.hex(), "marks": self.marks}).encode()
        try:
            private_dir(self.path.parent)
            replace_atomically(self.path, content)
        except OSError:
            self.path = None


def _plain(value: Any) -> bool:
    """Only dicts with string keys, lists, strings, numbers, booleans and None, all the way down."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, str | int | float | bool)


def open_passes(directory: Path | None = None) -> SchemaPasses:
    """The passes remembered in `directory` (default: the state directory), or an empty set with a fresh key."""
    path = (directory or state_dir()) / FILE_NAME
    try:
        raw = read_private(path)
    except (UnsafePathError, OSError):
        return SchemaPasses(None, os.urandom(_KEY_BYTES))  # not ours to trust or to replace
    if raw is not None:
        loaded = _parse(raw)
        if loaded is not None:
            return SchemaPasses(path, *loaded)
    return SchemaPasses(path, os.urandom(_KEY_BYTES))


def _parse(raw: bytes) -> tuple[bytes, list[str]] | None:
    try:
        content = json.loads(raw)
        key = bytes.fromhex(content["key"])
        marks = [str(mark) for mark in content["marks"]]
    except (ValueError, KeyError, TypeError):
        return None
    return (key, marks[-KEEP:]) if len(key) == _KEY_BYTES else None
