"""Which rendered manifests this user's runs already found valid against the schema, so a re-plan skips jsonschema.

Why: importing jsonschema and compiling the manifest schema is about a sixth of a no-op plan's wall time (issue
#20), and a GitOps pipeline plans the same manifest over and over. Only passes are remembered; a document that
fails is judged, and worded, every time.

What is kept, and what it protects against:
- a *mark* per pass: HMAC-SHA256 of the schema's digest (schema.schema_digest: the schema file and the installed
  jsonschema) and the canonical JSON of the rendered document, under a random key.
- the key and the marks live in one file, `$XDG_STATE_HOME/toolhive-apply/schema-passes`, 0600 and read only
  when it is this user's, not a link, not open to others and a regular file (fileio.read_private): nobody else
  can add a mark. A file that fails those checks is neither trusted nor replaced.
- what the 0600 mode protects: a rendered manifest can hold values from the environment (templates), and whoever
  can read this file has the key beside the marks, so could test guesses of such values against a manifest they
  know, as they could by reading that environment. The mode is the protection, as for the stores' key files; the
  HMAC only keeps a copied-out mark from meaning anything without the file.
- a mark holds for one schema and one jsonschema installation: an upgrade of either judges everything again.
- two documents the validator may judge differently never share a mark: only plain JSON values are marked, spelt
  exactly (see SchemaPasses.mark).

Any trouble with the file (unwritable state directory, damaged or oversized content, a FIFO or link at its name)
means validating as if nothing were remembered; it never fails a run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from toolhive_apply.fileio import private_dir, read_private, replace_atomically, state_dir

FILE_NAME: Final = "schema-passes"
KEEP: Final = 64
"""Marks kept, newest last: enough for every manifest one machine plans, small enough to read in microseconds."""
_KEY_BYTES: Final = 32
_MARK: Final = re.compile(r"[0-9a-f]{64}")
_MAX_FILE_BYTES: Final = 16 * 1024  # what remember() writes is under 5 KiB


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
        list, though jsonschema treats them differently. Strings are written as they are, not escaped, with lone
        surrogates kept: escaped, one astral character and the pair of lone surrogates that spell it would read alike.
        """
        try:
            if not _plain(document):
                return None
            canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # a float NaN, a huge int, or nesting deeper than recursion
            return None
        spelt = canonical.encode("utf-8", "surrogatepass")
        return hmac.new(self.key, schema_digest + spelt, hashlib.sha256).hexdigest()

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
    except OSError:  # UnsafePathError included
        return SchemaPasses(None, os.urandom(_KEY_BYTES))  # not ours to trust or to replace
    if raw is not None:
        loaded = _parse(raw)
        if loaded is not None:
            return SchemaPasses(path, *loaded)
    return SchemaPasses(path, os.urandom(_KEY_BYTES))


def _parse(raw: bytes) -> tuple[bytes, list[str]] | None:
    """Key and marks, or None for anything but the file remember() writes (damaged, oversized, edited)."""
    if len(raw) > _MAX_FILE_BYTES:
        return None
    try:
        content = json.loads(raw)
        key = bytes.fromhex(content["key"])
        marks = content["marks"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if len(key) != _KEY_BYTES or not isinstance(marks, list) or not all(_is_mark(mark) for mark in marks):
        return None
    return key, marks[-KEEP:]


def _is_mark(value: object) -> bool:
    return isinstance(value, str) and _MARK.fullmatch(value) is not None
