"""JSON as the most permissive decoder behind the proxy would read it, or a refusal.

The proxy decides on a message (the tool allow-list, id rewriting) and then a server decodes it again. When the two
decoders disagree, the decision is about a message the server never sees. Python's ``json`` keeps the last of two
duplicate keys, accepts ``NaN``/``Infinity``, lone ``\\udc00`` surrogates and numbers no float holds, and recurses
until it raises ``RecursionError``; Go's ``encoding/json`` matches object keys to struct fields case-insensitively
(``Name`` and ``NAME`` fill ``name``, and so do keys with U+212A KELVIN SIGN for ``k`` and U+017F LONG S for ``s``,
which Unicode simple folding maps onto ASCII), with the last match winning; JavaScript's ``JSON.parse`` turns big
numbers into ``Infinity``. So a body is accepted only when every such reader agrees on it: strict UTF-8 without a BOM,
no duplicate keys, no non-finite or out-of-range numbers, no lone surrogates, bounded nesting, nothing after the value.
``go_fold`` is Go's own key folding, for the callers that check which keys a Go server would take for which.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, Final

MAX_DEPTH: Final = 64
"""Nesting limit for arrays and objects. MCP messages nest a handful of levels (JSON Schemas in tools/list a dozen
or two); Python's own decoder gives up near 1,000 with a RecursionError, which must never reach a handler."""
MAX_NUMBER_DIGITS: Final = 300
"""Longer integers are beyond float64 (about 1.8e308), which is what JavaScript and Go's ``interface{}`` decode to."""
_BOM: Final = b"\xef\xbb\xbf"
_FOLD_SPECIAL: Final = {"\u212a": "K", "\u017f": "S"}
"""The two non-ASCII characters whose Unicode simple-fold orbit contains an ASCII letter (k/K/KELVIN SIGN and
s/S/LONG S); Go's foldName maps each orbit to its smallest member, so these become ASCII."""


class StrictJsonError(ValueError):
    """The body is not JSON that every decoder downstream reads the same way."""


def go_fold(key: str) -> str:
    """The key as Go's ``encoding/json`` folds it before matching struct fields (``foldName``): ASCII upper-cased,
    the Kelvin sign and long s mapped onto K and S. Other non-ASCII characters fold to themselves for our purpose:
    no MCP field name contains one, so they can only make a key match nothing."""
    return "".join(_FOLD_SPECIAL.get(c, c.upper() if c.isascii() else c) for c in key)


def loads(body: bytes | str) -> Any:
    """The decoded value, or StrictJsonError saying why the body is refused (never RecursionError)."""
    if isinstance(body, bytes):
        if body.startswith(_BOM):
            raise StrictJsonError("a byte-order mark before the JSON value")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StrictJsonError(f"not UTF-8 at byte {error.start}") from None
    else:
        text = body
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except RecursionError:
        raise StrictJsonError(f"nested deeper than {MAX_DEPTH} levels") from None
    except StrictJsonError:
        raise
    except ValueError as error:
        raise StrictJsonError(f"not JSON: {error}") from None
    _check_tree(value)
    return value


def dumps(value: object) -> bytes:
    """The canonical encoding the proxy forwards after deciding: ASCII only, no whitespace, keys as decoded."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(f"duplicate key {key[:40]!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise StrictJsonError(f"integer of {len(text)} digits is out of range")
    return int(text)


def _check_tree(value: object) -> None:
    """Depth and lone surrogates, walked without recursion (the value may be as deep as json allowed)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        children: Iterable[object]
        if isinstance(item, dict):
            for key in item:
                _check_text(key)
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise StrictJsonError(f"nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise StrictJsonError(f"lone surrogate \\u{ord(text[error.start]):04x} in a string") from None
