"""Secret values as a type whose str/repr never shows them, and a process-wide scrubber.

Every value read from a secret store is registered here, so any text that leaves the process
(errors, logs, debug tracebacks, container log tails) can be scrubbed of it in one call.
"""

from __future__ import annotations

import threading
from typing import Final

REDACTED: Final = "(sensitive value)"
MIN_SCRUB_LENGTH: Final = 4

_known: set[str] = set()
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


def register(value: str) -> None:
    if len(value) >= MIN_SCRUB_LENGTH:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Replace every registered secret value in `text` (longest first, so overlaps scrub whole)."""
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
