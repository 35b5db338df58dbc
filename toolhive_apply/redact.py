"""Secret values as a type whose str/repr never shows them, and a process-wide scrubber.

Every value read from a secret store (and every credential of the tool itself) is registered here, so any
text or structure that leaves the process can be scrubbed of it in one call. Scrubbing happens BEFORE
encoding: `scrub()` deep-cleans a JSON-able structure (keys too) and every serialiser (JSON output, saved
plans, spec labels, error JSON) receives its result. `redact()` on already-encoded text is the fallback, and
it knows the usual spellings of each value: JSON and Python string escapes, CRLF/LF variants, URL and base64
encodings, and each line of a multi-line value (a log tail may show only some lines of a PEM key).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final, overload

REDACTED: Final = "(sensitive value)"
MIN_SCRUB_LENGTH: Final = 4

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


class SecretValue:
    """Holds a secret; printing, formatting or logging it shows only REDACTED."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        """The only way to the plaintext: call it at the one place that must hand it over."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))


def _escapes(value: str) -> set[str]:
    """How `value` reads once embedded in JSON, a Python repr, a URL or base64 text."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        ascii(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        base64.b64encode(value.encode("utf-8")).decode("ascii"),
    }


def spellings(value: str) -> frozenset[str]:
    """Every form of `value` the scrubber looks for (and the secret-in-field check refuses), each at least
    MIN_SCRUB_LENGTH long: the value and its encodings, with CRLF and LF line ends, and each line of it.

    Lines are split as str.splitlines() splits (LF, CR, U+2028, ...), as a log reader would, and also
    stripped, because a log tail is re-indented.
    """
    parts = {value, value.replace("\r\n", "\n"), value.replace("\r\n", "\n").replace("\n", "\r\n")}
    lines = value.splitlines()
    if len(lines) > 1:
        parts |= {form for line in lines for form in (line, line.strip())}
    forms: set[str] = set()
    for part in parts:
        if len(part) >= MIN_SCRUB_LENGTH:  # a short line ("}") is no secret, nor is its base64
            forms |= _escapes(part)
    return frozenset(form for form in forms if len(form) >= MIN_SCRUB_LENGTH)


def register(value: str) -> None:
    """Scrub `value` (in all its spellings) from every output of this process from now on."""
    global _pattern
    if len(value) < MIN_SCRUB_LENGTH:
        return
    forms = spellings(value)
    with _lock:
        if forms <= _known:
            return
        _known.update(forms)
        _pattern = None


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _known:
            # longest first: at any position the whole value wins over one of its lines or a shorter secret
            _pattern = re.compile("|".join(re.escape(form) for form in sorted(_known, key=len, reverse=True)))
        return _pattern


def redact(text: str) -> str:
    """Replace every registered secret value, in any of its spellings, in `text`."""
    pattern = _compiled()
    return text if pattern is None else pattern.sub(REDACTED, text)


@overload
def scrub(data: str) -> str: ...
@overload
def scrub(data: dict[str, Any]) -> dict[str, Any]: ...
@overload
def scrub(data: list[Any]) -> list[Any]: ...
@overload
def scrub(data: object) -> object: ...


def scrub(data: object) -> object:
    """A copy of a JSON-able structure with every string (mapping keys included) redacted.

    Call it on what a serialiser is about to encode, never on the encoded text: json.dumps turns `"`, `\\` and
    non-ASCII characters into escapes the plain value no longer matches. A SecretValue becomes REDACTED; tuples
    become lists (as json.dumps would write them); other values are returned as they are.
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, SecretValue):
        return REDACTED
    if isinstance(data, Mapping):
        return {scrub(key): scrub(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub(item) for item in data]
    return data


def secret_paths(data: object, path: str = "") -> list[str]:
    """Where in a JSON-able structure a registered value sits (`changes[0].desired.spec.env_vars.X`): for
    artefacts that must not be altered by scrubbing, a saved plan above all, and so are refused instead."""
    pattern = _compiled()
    if pattern is None:
        return []
    if isinstance(data, str):
        return [path or "(value)"] if pattern.search(data) else []
    if isinstance(data, SecretValue):
        return [path or "(value)"]
    found = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            inner = f"{path}.{key}" if path else str(key)
            found += [inner] if isinstance(key, str) and pattern.search(key) else []
            found += secret_paths(value, inner)
    elif isinstance(data, (list, tuple)):
        for index, item in enumerate(data):
            found += secret_paths(item, f"{path}[{index}]")
    return found


def scrubbed_json(data: Any, **options: Any) -> str:
    """json.dumps of the scrubbed structure, then the text fallback: the one way to encode for output."""
    return redact(json.dumps(scrub(data), **options))
