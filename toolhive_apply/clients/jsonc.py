"""A comment-preserving editor for JSON and JSON-with-comments: it changes one member's bytes and no others.

Python has no library that round-trips JSONC comments, and re-serialising a user's VS Code or Zed settings
would drop their comments and reflow their file. So this module parses the text into nodes that remember
their offsets, and every edit is a splice of one member's span; all other bytes stay as they were.
Plain JSON (strict mode) uses the same editor but rejects comments and trailing commas, as the client would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

_STRING: Final = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS: Final[dict[str, object]] = {"true": True, "false": False, "null": None}
_SPACE: Final = " \t\r\n"
_MAX_DEPTH: Final = 256
DEFAULT_INDENT: Final = "  "


class JsoncError(Exception):
    """A syntax or structure problem at a character offset; the caller turns it into line:column."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(slots=True)
class Node:
    """A value and its span [start, end); objects also keep their members in text order."""

    start: int
    end: int
    value: object
    members: list[Member] | None = None


@dataclass(slots=True)
class Member:
    key: str
    start: int  # offset of the key's opening quote
    node: Node
    comma: int | None = None  # offset of the comma that follows the value, if any


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: str


class _Parser:
    """Recursive descent over the raw text; strict mode is RFC 8259, lenient mode adds comments and trailing commas."""

    def __init__(self, text: str, *, comments: bool) -> None:
        self.text = text
        self.comments = comments
        self.pos = 1 if comments and text.startswith("\ufeff") else 0
        self.depth = 0

    def document(self) -> Node:
        root = self.value()
        self.skip()
        if self.pos < len(self.text):
            raise JsoncError(self.pos, "unexpected content after the top-level value")
        return root

    def skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            if text[self.pos] in _SPACE:
                self.pos += 1
            elif text.startswith(("//", "/*"), self.pos):
                self.comment()
            else:
                return

    def comment(self) -> None:
        if not self.comments:
            raise JsoncError(self.pos, "comments are not allowed in this client's plain JSON file")
        if self.text.startswith("//", self.pos):
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end
            return
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            raise JsoncError(self.pos, "unterminated /* comment")
        self.pos = end + 2

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self) -> Node:
        self.skip()
        char = self.peek()
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if char == '"':
            text, start, self.pos = self.string()
            return Node(start, self.pos, text)
        return self.scalar(char)

    def scalar(self, char: str) -> Node:
        start = self.pos
        match = _NUMBER.match(self.text, start)
        if match:
            self.pos = match.end()
            return Node(start, self.pos, json.loads(match.group()))
        for word, value in _LITERALS.items():
            if self.text.startswith(word, start):
                self.pos = start + len(word)
                return Node(start, self.pos, value)
        raise JsoncError(
            start, f"unexpected character {char!r}" if char else "unexpected end of file, expected a value"
        )

    def string(self) -> tuple[str, int, int]:
        match = _STRING.match(self.text, self.pos)
        if not match:
            raise JsoncError(self.pos, "invalid string (unterminated, bad escape or raw control character)")
        return str(json.loads(match.group())), match.start(), match.end()

    def enter(self) -> int:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise JsoncError(self.pos, f"nested deeper than {_MAX_DEPTH} levels")
        start = self.pos
        self.pos += 1
        return start

    def separator(self, close: str, what: str) -> tuple[bool, int | None]:
        """After an item: (closed, offset of the comma). Trailing commas only in lenient mode."""
        self.skip()
        if self.peek() == close:
            self.pos += 1
            return True, None
        if self.peek() != ",":
            raise JsoncError(self.pos, f"expected ',' or '{close}' after {what}")
        comma = self.pos
        self.pos += 1
        self.skip()
        if self.peek() != close:
            return False, comma
        if not self.comments:
            raise JsoncError(comma, "trailing comma is not allowed in this client's plain JSON file")
        self.pos += 1
        return True, comma

    def object(self) -> Node:
        start = self.enter()
        members: list[Member] = []
        value: dict[str, object] = {}
        self.skip()
        closed = self.peek() == "}"
        self.pos += closed
        while not closed:
            self.skip()
            if self.peek() != '"':
                raise JsoncError(self.pos, "expected a quoted key")
            key, key_start, self.pos = self.string()
            self.skip()
            if self.peek() != ":":
                raise JsoncError(self.pos, "expected ':' after the key")
            self.pos += 1
            member = Member(key, key_start, self.value())
            members.append(member)
            value[key] = member.node.value
            closed, member.comma = self.separator("}", "an object member")
        self.depth -= 1
        return Node(start, self.pos, value, members)

    def array(self) -> Node:
        start = self.enter()
        items: list[object] = []
        self.skip()
        closed = self.peek() == "]"
        self.pos += closed
        while not closed:
            items.append(self.value().value)
            closed, _ = self.separator("]", "an array item")
        self.depth -= 1
        return Node(start, self.pos, items)


def parse(text: str, *, comments: bool) -> Node:
    """Parse a whole document; raises JsoncError with the offset of the first problem."""
    return _Parser(text, comments=comments).document()


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, as editors count them."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class JsoncDocument:
    """One JSON/JSONC file's text, with edits that touch only the member being changed.

    An empty file counts as `{}` (ToolHive does the same). After each edit the text is parsed again, so
    spans never go stale and a bad splice fails here rather than in the user's editor.
    """

    def __init__(self, text: str, *, comments: bool) -> None:
        self.comments = comments
        self.text = text if text.strip() else "{}" + text
        self.root = parse(self.text, comments=comments)
        self.newline = "\r\n" if "\r\n" in self.text else "\n"

    def servers(self, path: Sequence[str]) -> dict[str, object]:
        """The members of the object at `path` (empty when the path does not exist yet)."""
        node, found = self._walk(path)
        return dict(node.value) if found == len(path) and isinstance(node.value, dict) else {}

    def upsert(self, path: Sequence[str], name: str, value: object) -> None:
        node, found = self._walk(path)
        if found < len(path):
            for segment in reversed((*path[found + 1 :], name)):
                value = {segment: value}
            self._apply(self._insertion(node, path[found], value))
            return
        member = _last_member(node, name)
        if member is None:
            self._apply(self._insertion(node, name, value))
            return
        old = self.text[member.node.start : member.node.end]
        rendered = self._render(value, self._line_indent(member.start), compact="\n" not in old)
        self._apply([_Edit(member.node.start, member.node.end, rendered)])

    def remove(self, path: Sequence[str], name: str) -> bool:
        """Remove every member called `name`; False when there was none."""
        removed = False
        while True:
            node, found = self._walk(path)
            members = node.members or []
            indexes = [i for i, member in enumerate(members) if member.key == name] if found == len(path) else []
            if not indexes:
                return removed
            self._apply(self._removal(node, indexes[-1]))
            removed = True

    # -- locating ---------------------------------------------------------------------------------------

    def _walk(self, path: Sequence[str]) -> tuple[Node, int]:
        """The deepest existing object along `path`, and how many segments of it exist."""
        node = self.root
        if node.members is None:
            raise JsoncError(node.start, "the top-level value must be an object")
        for depth, segment in enumerate(path):
            member = _last_member(node, segment)
            if member is None:
                return node, depth
            if member.node.members is None:
                raise JsoncError(member.node.start, f"{'.'.join(path[: depth + 1])} must be an object")
            node = member.node
        return node, len(path)

    def _objects(self) -> Iterator[Node]:
        pending = [self.root]
        while pending:
            node = pending.pop(0)
            yield node
            pending.extend(m.node for m in node.members or () if m.node.members is not None)

    def _line_start(self, offset: int) -> int:
        return self.text.rfind("\n", 0, offset) + 1

    def _line_indent(self, offset: int) -> str:
        line = self.text[self._line_start(offset) :]
        return line[: len(line) - len(line.lstrip(" \t"))]

    def _own_line(self, offset: int) -> bool:
        return not self.text[self._line_start(offset) : offset].strip(" \t")

    def _unit(self) -> str:
        """The file's indentation step, learnt from the first member that starts its own line."""
        for obj in self._objects():
            base = self._line_indent(obj.start)
            for member in obj.members or ():
                indent = self._line_indent(member.start)
                if self._own_line(member.start) and indent.startswith(base) and len(indent) > len(base):
                    return indent[len(base) :]
        return DEFAULT_INDENT

    def _end_of_line(self, offset: int, limit: int) -> int:
        """Where to add text after `offset` without capturing a same-line comment: before the newline or `limit`."""
        text = self.text
        while offset < limit:
            if text[offset] in " \t":
                offset += 1
            elif text.startswith("//", offset):
                newline = text.find("\n", offset)  # the closing brace comes later, so there is one
                return newline - 1 if text[newline - 1] == "\r" else newline
            elif text.startswith("/*", offset) and "\n" not in text[offset : text.find("*/", offset)]:
                offset = text.find("*/", offset) + 2
            else:
                return offset
        return limit

    # -- editing ----------------------------------------------------------------------------------------

    def _render(self, value: object, indent: str, *, compact: bool) -> str:
        if compact:
            return json.dumps(value, ensure_ascii=False)
        return json.dumps(value, indent=self._unit(), ensure_ascii=False).replace("\n", self.newline + indent)

    def _insertion(self, obj: Node, key: str, value: object) -> list[_Edit]:
        members = obj.members or []
        close = obj.end - 1
        if not members:
            return self._insertion_into_empty(obj, key, value)
        last = members[-1]
        key_text = json.dumps(key, ensure_ascii=False) + ": "
        if "\n" not in self.text[obj.start : obj.end]:  # a one-line object stays on one line
            return [_Edit(last.node.end, last.node.end, ", " + key_text + json.dumps(value, ensure_ascii=False))]
        if self._own_line(members[0].start):
            indent = self._line_indent(members[0].start)
        else:
            indent = self._line_indent(obj.start) + self._unit()
        last_text = self.text[last.node.start : last.node.end]
        compact = "\n" not in last_text and last.node.members is not None and bool(last.node.members)
        rendered = key_text + self._render(value, indent, compact=compact)
        anchor = last.node.end if last.comma is None else last.comma + 1
        at = self._end_of_line(anchor, close)
        trailing = "" if last.comma is None else ","
        edits = [_Edit(at, at, self.newline + indent + rendered + trailing)]
        if last.comma is None:
            edits.append(_Edit(last.node.end, last.node.end, ","))
        return edits

    def _insertion_into_empty(self, obj: Node, key: str, value: object) -> list[_Edit]:
        base = self._line_indent(obj.start)
        indent = base + self._unit()
        rendered = json.dumps(key, ensure_ascii=False) + ": " + self._render(value, indent, compact=False)
        inner_start, close = obj.start + 1, obj.end - 1
        if not self.text[inner_start:close].strip():
            return [_Edit(inner_start, close, self.newline + indent + rendered + self.newline + base)]
        at = self._end_of_line(inner_start, close)  # only comments inside: keep them, add after the first line
        suffix = self.newline + base if at == close else ""
        return [_Edit(at, at, self.newline + indent + rendered + suffix)]

    def _removal(self, obj: Node, index: int) -> list[_Edit]:
        members = obj.members or []
        member = members[index]
        if member.comma is None and index > 0:  # the last member: its separator is the previous comma
            comma = members[index - 1].comma
            assert comma is not None  # a member follows it, so the parser recorded the comma
            if not self.text[comma + 1 : member.start].strip():
                return [_Edit(comma, member.node.end, "")]
            return [_Edit(comma, comma + 1, ""), self._member_span(member, member.node.end)]
        end = member.node.end if member.comma is None else member.comma + 1
        span = self._member_span(member, end)
        if (
            len(members) == 1
            and not (self.text[obj.start + 1 : span.start] + self.text[span.end : obj.end - 1]).strip()
        ):
            return [_Edit(obj.start + 1, obj.end - 1, "")]  # nothing else inside: back to `{}`, as it was created
        return [span]

    def _member_span(self, member: Member, end: int) -> _Edit:
        """The member through `end`, plus its whole line when nothing else (a comment, a brace) shares it."""
        while end < len(self.text) and self.text[end] in " \t":
            end += 1
        for newline in ("\r\n", "\n"):
            if self._own_line(member.start) and self.text.startswith(newline, end):
                return _Edit(self._line_start(member.start), end + len(newline), "")
        return _Edit(member.start, end, "")

    def _apply(self, edits: list[_Edit]) -> None:
        text = self.text
        for edit in sorted(edits, key=lambda e: e.start, reverse=True):
            text = text[: edit.start] + edit.text + text[edit.end :]
        self.root = parse(text, comments=self.comments)
        self.text = text


def _last_member(obj: Node, key: str) -> Member | None:
    """The member a JSON reader sees for `key`: with duplicates, the last one wins."""
    found = [member for member in obj.members or () if member.key == key]
    return found[-1] if found else None
