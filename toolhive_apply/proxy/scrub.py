"""The proxy's own secret scrubber: the values it was given through its environment, in every spelling a recorded
message may carry them (raw, JSON-escaped, URL-encoded, base64, each line of a multi-line value).

The host-side scrubber (toolhive_apply/redact.py) is not in the proxy image; this one follows its rules for the few
values a proxy knows, and is applied to audit data and span attributes before they are serialised.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any, Final

REDACTED: Final = "(sensitive value)"
MIN_LENGTH: Final = 4
"""Shorter values are not scrubbed (they would blot out ordinary text); the host side refuses none shorter either."""


def spellings(value: str) -> set[str]:
    forms = {value, value.replace("\r\n", "\n")}
    forms.update(line.strip() for line in value.splitlines())
    encoded = set()
    for form in forms:
        encoded.update(
            {
                json.dumps(form)[1:-1],
                json.dumps(form, ensure_ascii=False)[1:-1],
                urllib.parse.quote(form, safe=""),
                urllib.parse.quote_plus(form, safe=""),
                base64.b64encode(form.encode()).decode(),
            }
        )
    return {f for f in forms | encoded if len(f) >= MIN_LENGTH}


class Scrubber:
    """Replaces every spelling of the given values; longest first, so a value's prefix never shows through."""

    def __init__(self, values: Iterable[str]) -> None:
        forms = sorted({f for v in values for f in spellings(v)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, forms))) if forms else None

    def text(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def value(self, data: Any) -> Any:
        """A JSON-able structure with every string (keys too) scrubbed."""
        if self._pattern is None:
            return data
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list):
            return [self.value(item) for item in data]
        if isinstance(data, dict):
            return {self.text(str(k)): self.value(v) for k, v in data.items()}
        return data
