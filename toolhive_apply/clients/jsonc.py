"""A comment-preserving editor for JSON and JSON-with-comments: it changes one member's bytes and no others.

Python has no library that round-trips JSONC comments, and re-serialising a user's VS Code or Zed settings
would drop their comments and reflow their file. So the text is checked by jsonscan.py, which remembers
offsets, and every edit is a splice of one member's span; all other bytes stay as they were.
Plain JSON (strict mode) uses the same editor but rejects comments and trailing commas, as the client would.
Only the objects on the way to the servers are looked into, so memory stays a small multiple of the text.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from toolhive_apply.clients.jsonscan import JsoncError, Layout, Member, Node, parse

__all__ = ["DEFAULT_INDENT", "JsoncDocument", "JsoncError", "Node", "parse", "position"]
DEFAULT_INDENT: Final = "  "


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: str


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, as editors count them."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class JsoncDocument:
    """One JSON/JSONC file's text, with edits that touch only the member being changed.

    An empty file counts as `{}` (ToolHive does the same). After each edit the text is checked again, so
    spans never go stale and a bad splice fails here rather than in the user's editor.
    """

    def __init__(self, text: str, *, comments: bool) -> None:
        self.comments = comments
        self.text = text if text and not text.isspace() else "{}" + text
        self.root = parse(self.text, comments=comments)
        self.newline = "\r\n" if "\r\n" in self.text else "\n"

    def servers(self, path: Sequence[str]) -> dict[str, object]:
        """The members of the object at `path` (empty when the path does not exist yet)."""
        node, found = self._walk(path)
        value = node.value if found == len(path) else {}
        return dict(value) if isinstance(value, dict) else {}

    def upsert(self, path: Sequence[str], name: str, value: object) -> None:
        node, found = self._walk(path)
        if found < len(path):
            for segment in reversed((*path[found + 1 :], name)):
                value = {segment: value}
            self._apply(self._insertion(node, path[found], value))
            return
        member = node.layout(name).winner
        if member is None:
            self._apply(self._insertion(node, name, value))
            return
        compact = self.text.find("\n", member.node.start, member.node.end) < 0
        rendered = self._render(value, self._line_indent(member.start), compact=compact)
        self._apply([_Edit(member.node.start, member.node.end, rendered)])

    def remove(self, path: Sequence[str], name: str) -> bool:
        """Remove every member called `name`; False when there was none."""
        removed = False
        while True:
            node, found = self._walk(path)
            layout = node.layout(name) if found == len(path) else None
            if layout is None or not layout.named:
                return removed
            self._apply(self._removal(node, layout))
            removed = True

    # -- locating ---------------------------------------------------------------------------------------

    def _walk(self, path: Sequence[str]) -> tuple[Node, int]:
        """The deepest existing object along `path`, and how many segments of it exist."""
        node = self.root
        if not node.is_object:
            raise JsoncError(node.start, "the top-level value must be an object")
        for depth, segment in enumerate(path):
            member = node.layout(segment).winner
            if member is None:
                return node, depth
            if not member.node.is_object:
                raise JsoncError(member.node.start, f"{'.'.join(path[: depth + 1])} must be an object")
            node = member.node
        return node, len(path)

    def _line_start(self, offset: int) -> int:
        return self.text.rfind("\n", 0, offset) + 1

    def _line_indent(self, offset: int) -> str:
        start = self._line_start(offset)
        end = start
        while end < len(self.text) and self.text[end] in " \t":
            end += 1
        return self.text[start:end]

    def _own_line(self, offset: int) -> bool:
        """Nothing but spaces and tabs before `offset` on its line (looked at backwards: lines can be long)."""
        text = self.text
        while offset > 0 and text[offset - 1] in " \t":
            offset -= 1
        return offset == 0 or text[offset - 1] == "\n"

    def _unit(self) -> str:
        """The file's indentation step, learnt from the first member (breadth first) that starts its own line."""
        pending = deque([self.root] if self.root.is_object else [])
        while pending:
            obj = pending.popleft()
            if self.text.find("\n", obj.start, obj.end) < 0:
                continue  # one line: neither it nor anything in it has a member on a line of its own
            base: str | None = None
            for member in obj.scanner.members(obj):
                if self._own_line(member.start):
                    indent = self._line_indent(member.start)
                    base = self._line_indent(obj.start) if base is None else base
                    if indent.startswith(base) and len(indent) > len(base):
                        return indent[len(base) :]
                if member.node.is_object:
                    pending.append(member.node)
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
            elif text.startswith("/*", offset) and text.find("\n", offset, text.find("*/", offset)) < 0:
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
        layout = obj.layout(key)
        if layout.first is None or layout.last is None:
            return self._insertion_into_empty(obj, key, value)
        first, last = layout.first, layout.last
        close = obj.end - 1
        key_text = json.dumps(key, ensure_ascii=False) + ": "
        if self.text.find("\n", obj.start, obj.end) < 0:  # a one-line object stays on one line
            return [_Edit(last.node.end, last.node.end, ", " + key_text + json.dumps(value, ensure_ascii=False))]
        if self._own_line(first.start):
            indent = self._line_indent(first.start)
        else:
            indent = self._line_indent(obj.start) + self._unit()
        one_line = self.text.find("\n", last.node.start, last.node.end) < 0
        compact = one_line and last.node.is_object and self._filled(last.node)
        rendered = key_text + self._render(value, indent, compact=compact)
        anchor = last.node.end if last.comma is None else last.comma + 1
        at = self._end_of_line(anchor, close)
        trailing = "" if last.comma is None else ","
        edits = [_Edit(at, at, self.newline + indent + rendered + trailing)]
        if last.comma is None:
            edits.append(_Edit(last.node.end, last.node.end, ","))
        return edits

    def _filled(self, obj: Node) -> bool:
        """The object has a member (comments alone do not count)."""
        return obj.scanner.space(obj.start + 1) < obj.end - 1

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

    def _removal(self, obj: Node, layout: Layout) -> list[_Edit]:
        """Remove the last member called the layout's key."""
        index, member, previous = layout.named[-1]
        if member.comma is None and index > 0:  # the last member: its separator is the previous comma
            assert previous is not None and previous.comma is not None  # a member follows it: the comma was seen
            comma = previous.comma
            if not self.text[comma + 1 : member.start].strip():
                return [_Edit(comma, member.node.end, "")]
            return [_Edit(comma, comma + 1, ""), self._member_span(member, member.node.end)]
        end = member.node.end if member.comma is None else member.comma + 1
        span = self._member_span(member, end)
        if (
            layout.count == 1
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
        """Splice the edits in one pass. Insertions at one offset land in reverse list order (a comma before the
        entry that follows it), as applying them one by one from the end would place them."""
        ordered = [edit for _, edit in sorted(enumerate(edits), key=lambda pair: (pair[1].start, -pair[0]))]
        pieces, cursor = [], 0
        for edit in ordered:
            pieces += [self.text[cursor : edit.start], edit.text]
            cursor = edit.end
        pieces.append(self.text[cursor:])
        text = "".join(pieces)
        self.root = parse(text, comments=self.comments)
        self.text = text
