"""Validate the merged manifest against schemas/manifest.schema.json, errors mapped back to positions.

The JSON Schema is the single source of truth for structure; this module only words its findings
for people (one line per problem, by validator kind, with "did you mean" for misspelt keys).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.util
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import FieldPath, Positions, format_path
from toolhive_apply.manifest.schema_passes import open_passes
from toolhive_apply.urls import mask_url

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "manifest.schema.json"


def schema_path() -> Path:
    """The packaged schema, or the repository copy when running from a source checkout."""
    packaged = resources.files("toolhive_apply").joinpath("schemas", SCHEMA_FILE)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas" / SCHEMA_FILE


@cache
def load_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return loaded


@cache
def schema_digest() -> bytes:
    """What a remembered pass holds for: the schema file as shipped and the jsonschema installed to judge by it.

    jsonschema is identified by where it is installed and its validators module's size and mtime (an upgrade
    rewrites it), found without importing it: skipping that import is what schema_passes is for.
    """
    digest = hashlib.sha256(schema_path().read_bytes())
    found = importlib.util.find_spec("jsonschema")
    if found is not None and found.origin:
        validators = Path(found.origin).parent / "validators.py"
        with contextlib.suppress(OSError):
            info = validators.stat()
            digest.update(f"\0{validators}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.digest()


@cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # only when a document is judged: see schema_passes

    return Draft202012Validator(load_schema())


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _word(error: ValidationError) -> tuple[FieldPath, str]:
    """One human line per validator kind; returns the path the message is about."""
    path: FieldPath = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extras = [key for key in error.instance if key not in allowed]
        if extras:
            key = extras[0]
            more = f" (and {len(extras) - 1} more)" if len(extras) > 1 else ""
            return (*path, key), f"unknown key {key!r}{_suggest(key, allowed)}{more}"
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        return path, f"missing required key {missing!r}"
    if kind == "enum":
        choices = [str(v) for v in error.validator_value]  # type: ignore[union-attr]
        options = ", ".join(choices)
        return (
            path,
            f"{error.instance!r} is not one of: {options}{_suggest(str(error.instance), choices)}",
        )
    if kind == "type":
        expected = error.validator_value
        return path, f"expected {_type_words(expected)}, got {_type_of(error.instance)}"
    if kind == "const":
        return path, f"must be {error.validator_value!r}"
    if kind == "pattern":
        shown = (
            mask_url(error.instance) if isinstance(error.instance, str) and "://" in error.instance else error.instance
        )
        return path, f"{shown!r} does not match {error.validator_value}"  # a URL may carry credentials
    if kind in ("minimum", "maximum", "minLength", "maxLength", "minProperties", "maxProperties"):
        return path, error.message
    if kind == "oneOf":
        return path, _one_of(error)
    return path, error.message


def _one_of(error: ValidationError) -> str:
    options = error.schema.get("oneOf", []) if isinstance(error.schema, dict) else []
    required = [opt["required"][0] for opt in options if isinstance(opt, dict) and "required" in opt]
    if required and isinstance(error.instance, dict):
        present = [key for key in required if key in error.instance]
        names = ", ".join(required)
        if not present:
            return f"needs one of: {names}"
        return f"only one of {names} may be given (found {', '.join(present)})"
    best = min(error.context or [], key=lambda e: len(list(e.absolute_path)), default=None)
    if best is not None and isinstance(error.instance, dict):
        return _word(best)[1]
    return f"{error.instance!r} is neither a built-in profile name (none, network, stdio) nor a profile object"


def _type_words(expected: object) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "nothing",
    }
    if isinstance(expected, list):
        return " or ".join(names.get(str(e), str(e)) for e in expected)
    return names.get(str(expected), str(expected))


def _type_of(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"the string {value!r}"


def validate_structure(data: dict[str, Any], positions: Positions) -> list[ManifestIssue]:
    """Every structural problem at once; duplicates of the same line are folded.

    A document this user's runs already found valid against this schema is not judged again (schema_passes).
    """
    passes = open_passes()
    mark = passes.mark(schema_digest(), data)
    if mark is not None and passes.holds(mark):
        return []
    issues: dict[tuple[FieldPath, str], ManifestIssue] = {}
    for error in _validator().iter_errors(data):
        path, message = _word(error)
        issues.setdefault((path, message), ManifestIssue(positions.find(path), format_path(path), message))
    if not issues and mark is not None:
        passes.remember(mark)
    return list(issues.values())
