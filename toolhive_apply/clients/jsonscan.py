"""The JSON/JSONC reader under the span editor: it checks a whole document and keeps almost nothing of it.

Client files can be large (Claude Code keeps project history in ~/.claude.json) and a tree of Python objects costs
tens of times the text. So parsing only validates and returns the top node; an object's members, and a value, are
read from the text when the editor asks for them (the servers object and the objects on the way to it), and the
scan over everything else allocates nothing it keeps. Flat runs of scalars are matched by one regular expression.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

_STRING_PATTERN: Final = r'"[^"\\\x00-\x1f]*+(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*+)*+"'
_NUMBER_PATTERN: Final = r"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?"
_STRING: Final = re.compile(_STRING_PATTERN)
_NUMBER: Final = re.compile(_NUMBER_PATTERN)
_SCALAR: Final = rf"(?:{_STRING_PATTERN}|{_NUMBER_PATTERN}|true|false|null)"
_WS: Final = re.compile(r"[ \t\r\n]*+")
_SPACE: Final = r"[ \t\r\n]*+"


def _nest(inner: str) -> str:
    """A scalar, or an array or object of `inner` values: one more level of nesting, as a regular expression."""
    array = rf"\[{_SPACE}(?:{inner}(?:{_SPACE},{_SPACE}{inner})*+{_SPACE})?\]"
    member = rf"{_STRING_PATTERN}{_SPACE}:{_SPACE}{inner}"
    return rf"(?:{_SCALAR}|{array}|\{{{_SPACE}(?:{member}(?:{_SPACE},{_SPACE}{member})*+{_SPACE})?\}})"


# Values nested up to FLAT_DEPTH levels, in strict JSON with whitespace only: exactly what the step-by-step scan
# accepts there, matched at C speed. Anything else (deeper, a comment, an error) is left to the steps.
FLAT_DEPTH: Final = 2  # three: a 20 kB expression, 90 ms to compile, for little more speed
_VALUE = _SCALAR
for _ in range(FLAT_DEPTH):
    _VALUE = _nest(_VALUE)
_FLAT: Final = re.compile(_VALUE)
_ARRAY_RUN: Final = re.compile(rf"(?:{_SPACE},{_SPACE}{_VALUE})*+")
_OBJECT_RUN: Final = re.compile(rf"(?:{_SPACE},{_SPACE}{_STRING_PATTERN}{_SPACE}:{_SPACE}{_VALUE})*+")
# In checked text: anything but brackets and comment starts, and whole strings (which may hold both).
_PLAIN: Final = re.compile(r'(?:[^"{}\[\]/]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+')
_LITERALS: Final[dict[str, object]] = {"true": True, "false": False, "null": None}
MAX_DEPTH: Final = 256


class JsoncError(Exception):
    """A syntax or structure problem at a character offset; the caller turns it into line:column."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(slots=True, eq=False)
class Node:
    """A value's span [start, end) in a checked text; `kind` is its first character (`{`, `[`, `"`, or 0 for
    numbers and literals). Its members and value are read on demand; layouts are cached per key."""

    start: int
    end: int
    kind: str
    scanner: Scanner
    layouts: dict[str, Layout] | None = None

    @property
    def is_object(self) -> bool:
        return self.kind == "{"

    @property
    def value(self) -> object:
        """The value as json.loads reads it (with duplicate keys, the last one wins); built afresh on each call.

        Checked strict JSON is what json.loads reads, and it reads it fastest; comments, trailing commas and
        integers longer than its limit are left to our own reader.
        """
        try:
            return json.loads(self.scanner.text[self.start : self.end])
        except ValueError:
            return self.scanner.build(self.start)[0]

    def layout(self, key: str) -> Layout:
        """What the editor needs of this object's members, with those called `key` singled out."""
        if self.layouts is None:
            self.layouts = {}
        found = self.layouts.get(key)
        if found is None:
            found = self.layouts[key] = self.scanner.layout(self, key)
        return found


@dataclass(slots=True, eq=False)
class Member:
    key: str
    start: int  # offset of the key's opening quote
    node: Node
    comma: int | None = None  # offset of the comma that follows the value, if any


@dataclass(frozen=True, slots=True)
class Layout:
    """An object's member count, first and last member, and each member called the key: (index, it, the one before)."""

    count: int
    first: Member | None
    last: Member | None
    named: tuple[tuple[int, Member, Member | None], ...]

    @property
    def winner(self) -> Member | None:
        """The member a JSON reader sees for the key: with duplicates, the last one."""
        return self.named[-1][1] if self.named else None


class Scanner:
    """One text: `check` validates (strict is RFC 8259; lenient adds comments and trailing commas); the other
    methods read text that was checked, so they do not check again."""

    def __init__(self, text: str, *, comments: bool) -> None:
        self.text = text
        self.comments = comments

    # -- checking ---------------------------------------------------------------------------------------

    def document(self) -> Node:
        """Check the whole text; the top-level value's node."""
        text = self.text
        start = self.space(1 if self.comments and text.startswith("\ufeff") else 0)
        end = self.check(start)
        trailing = self.space(end)
        if trailing < len(text):
            raise JsoncError(trailing, "unexpected content after the top-level value")
        return Node(start, end, _kind(text[start]), self)

    def space(self, pos: int) -> int:
        """Past whitespace and comments (an error in strict mode)."""
        text = self.text
        while True:
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string
            if not text.startswith(("//", "/*"), pos):
                return pos
            pos = self.comment(pos)

    def comment(self, pos: int) -> int:
        if not self.comments:
            raise JsoncError(pos, "comments are not allowed in this client's plain JSON file")
        if self.text.startswith("//", pos):
            end = self.text.find("\n", pos)
            return len(self.text) if end < 0 else end
        end = self.text.find("*/", pos + 2)
        if end < 0:
            raise JsoncError(pos, "unterminated /* comment")
        return end + 2

    def check(self, pos: int) -> int:
        """Validate the value at `pos` (after space) and return where it ends. Iterative: depth is bounded by
        MAX_DEPTH, not by Python's recursion limit. Errors come in text order, as a recursive parser finds them."""
        text, after = self.text, False
        closers: list[str] = []
        while True:
            if not after:
                pos = self.space(pos)
                char = text[pos : pos + 1]
                if char not in ("{", "["):
                    pos, after = self.scalar(pos, char), True
                    continue
                flat = _FLAT.match(text, pos) if len(closers) + FLAT_DEPTH <= MAX_DEPTH else None
                if flat:
                    pos, after = flat.end(), True
                    continue
                if len(closers) >= MAX_DEPTH:
                    raise JsoncError(pos, f"nested deeper than {MAX_DEPTH} levels")
                close = "}" if char == "{" else "]"
                pos = self.space(pos + 1)
                if text.startswith(close, pos):
                    pos, after = pos + 1, True
                    continue
                closers.append(close)
                if close == "}":
                    pos = self.key(pos)
                continue
            if not closers:
                return pos
            pos, after = self.separator(pos, closers)

    def separator(self, pos: int, closers: list[str]) -> tuple[int, bool]:
        """After an item of the innermost container: (where the scan goes on, whether a value ended there)."""
        text, close = self.text, closers[-1]
        pos = (_OBJECT_RUN if close == "}" else _ARRAY_RUN).match(text, pos).end()  # type: ignore[union-attr]
        pos = self.space(pos)
        if text.startswith(close, pos):
            closers.pop()
            return pos + 1, True
        if not text.startswith(",", pos):
            what = "an object member" if close == "}" else "an array item"
            raise JsoncError(pos, f"expected ',' or '{close}' after {what}")
        comma, pos = pos, self.space(pos + 1)
        if text.startswith(close, pos):
            if not self.comments:
                raise JsoncError(comma, "trailing comma is not allowed in this client's plain JSON file")
            closers.pop()
            return pos + 1, True
        return (self.key(pos) if close == "}" else pos), False

    def key(self, pos: int) -> int:
        """A member's key and colon; where its value starts (before space)."""
        if not self.text.startswith('"', pos):
            raise JsoncError(pos, "expected a quoted key")
        pos = self.space(self.string(pos))
        if not self.text.startswith(":", pos):
            raise JsoncError(pos, "expected ':' after the key")
        return pos + 1

    def string(self, pos: int) -> int:
        match = _STRING.match(self.text, pos)
        if not match:
            raise JsoncError(pos, "invalid string (unterminated, bad escape or raw control character)")
        return match.end()

    def scalar(self, pos: int, char: str) -> int:
        if char == '"':
            return self.string(pos)
        match = _NUMBER.match(self.text, pos)
        if match:
            return match.end()
        for word in _LITERALS:
            if self.text.startswith(word, pos):
                return pos + len(word)
        raise JsoncError(pos, f"unexpected character {char!r}" if char else "unexpected end of file, expected a value")

    # -- reading checked text ---------------------------------------------------------------------------

    def skip(self, pos: int) -> int:
        """The end of the checked value at `pos`."""
        text = self.text
        if text[pos] not in "{[":
            return self.scalar(pos, text[pos])
        depth = 0
        while True:
            pos = _PLAIN.match(text, pos).end()  # type: ignore[union-attr]
            char = text[pos]
            if char in "{[":
                depth, pos = depth + 1, pos + 1
            elif char in "}]":
                depth, pos = depth - 1, pos + 1
                if depth == 0:
                    return pos
            else:
                pos = self.comment(pos)  # outside strings, a checked `/` starts a comment

    def members(self, node: Node) -> Iterator[Member]:
        """The members of a checked object, one at a time (nothing kept between them)."""
        text = self.text
        pos = self.space(node.start + 1)
        while text[pos] != "}":
            key_end = self.string(pos)
            key, key_start = _decode(text, pos, key_end), pos
            start = self.space(self.space(key_end) + 1)
            end = self.skip(start)
            pos, comma = self.space(end), None
            if text[pos] == ",":
                comma, pos = pos, self.space(pos + 1)
            yield Member(key, key_start, Node(start, end, _kind(text[start]), self), comma)

    def layout(self, node: Node, key: str) -> Layout:
        count, first, previous = 0, None, None
        named: list[tuple[int, Member, Member | None]] = []
        for member in self.members(node):
            if first is None:
                first = member
            if member.key == key:
                named.append((count, member, previous))
            count, previous = count + 1, member
        return Layout(count, first, previous, tuple(named))

    def build(self, pos: int) -> tuple[object, int]:
        """The value at `pos` (checked text) and where it ends."""
        text = self.text
        pos = self.space(pos)
        char = text[pos]
        if char == "{" or char == "[":
            closing = "}" if char == "{" else "]"
            items: list[object] = []
            members: dict[str, object] = {}
            pos = self.space(pos + 1)
            while text[pos] != closing:
                if closing == "}":
                    key_end = self.string(pos)
                    key = _decode(text, pos, key_end)
                    members[key], pos = self.build(self.space(key_end) + 1)
                else:
                    item, pos = self.build(pos)
                    items.append(item)
                pos = self.space(pos)
                if text[pos] == ",":
                    pos = self.space(pos + 1)
            return (members if closing == "}" else items), pos + 1
        end = self.scalar(pos, char)
        if char == '"':
            return _decode(text, pos, end), end
        word = text[pos:end]
        return (_LITERALS[word] if word in _LITERALS else _number(word)), end


def _kind(char: str) -> str:
    return char if char in '{["' else "0"


def _decode(text: str, start: int, end: int) -> str:
    """A checked JSON string's value; most have no escapes and are their own content."""
    if text.find("\\", start, end) < 0:
        return text[start + 1 : end - 1]
    return str(json.loads(text[start:end]))


def _number(word: str) -> object:
    if "." in word or "e" in word or "E" in word:
        return float(word)
    try:
        return int(word)
    except ValueError:  # longer than Python's int parsing limit: read it as JavaScript would, a float
        return float(word)


def parse(text: str, *, comments: bool) -> Node:
    """Check a whole document; raises JsoncError with the offset of the first problem."""
    return Scanner(text, comments=comments).document()
