"""YAML client files (Goose's map of extensions, Continue's list of servers), edited without reflowing the rest.

ruamel.yaml in round-trip mode parses the file and tells where every key and item starts; the edit then
splices only the lines of the one entry, so other entries, comments, quoting and indentation stay byte for
byte. Whatever the splice cannot express (flow-style containers, odd layouts) falls back to ruamel's own
round-trip dump, which still keeps comments and order. Every result is re-parsed and checked against the
data it must hold, so a wrong splice is never written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from toolhive_apply.clients.errors import ClientConfigError, ClientFileParseError
from toolhive_apply.errors import Origin, unreadable_value

_EMPTY_FLOW: Final = re.compile(r"\{\s*\}|\[\s*\]")
_OTHER_BREAKS: Final = re.compile("\r(?!\n)|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
"""Characters Python's splitlines() breaks at and ruamel's line marks do not count the same way (a NEL in a quoted
key shifted every mark below it by one, found by test_fuzz_client_files): a text holding one is not spliced."""
_Edit = Callable[[Any], None]  # applies one change to loaded data (plain or ruamel)


def load(text: str, path: Path) -> CommentedMap:
    """Parse with positions; an empty document is an empty map, anything but a map is an error."""
    try:
        data = _yaml(text).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ClientFileParseError(Origin(path, line, column), str(exc.problem or exc)) from None
    except YAMLError as exc:
        raise ClientFileParseError(Origin(path, 1, 1), str(exc)) from None
    except ValueError as exc:  # int() of a number longer than Python converts: the file is not ours to read
        raise ClientFileParseError(Origin(path, 1, 1), unreadable_value(exc)) from None
    if data is None:
        return CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ClientFileParseError(Origin(path, 1, 1), "the top-level value must be a mapping")
    return data


def plain(value: object) -> object:
    """ruamel's annotated values as the plain data a reader compares (ScalarString is a str, and so on)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def _indents(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as the file already uses them; ruamel's defaults otherwise."""
    mapping, offset = 0, -1
    previous: tuple[int, str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        column = len(line) - len(line.lstrip(" "))
        if previous and previous[1].endswith(":") and column >= previous[0]:
            step = column - previous[0]
            if stripped.startswith("- ") and offset < 0:
                offset = step
            elif not stripped.startswith("- ") and step and not mapping:
                mapping = step
        previous = (column, stripped.split(" #")[0].rstrip())
    offset = 2 if offset < 0 else offset  # no list yet: the common `  - item` style
    return mapping or 2, offset + 2, offset


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long URL
    mapping, sequence, offset = _indents(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


class YamlDocument:
    """One YAML file's text, its servers found at `servers` (a map keyed by name, or a list keyed by name_key)."""

    def __init__(self, text: str, path: Path, servers: tuple[str, ...], name_key: str | None) -> None:
        self.text, self.path, self.servers, self.name_key = text, path, servers, name_key
        self.data = load(text, path)
        self.newline = "\r\n" if "\r\n" in text else "\n"

    # -- reading ----------------------------------------------------------------------------------------

    def entries(self) -> dict[str, object]:
        container = self._container(self.data)
        if container is None:
            return {}
        if self.name_key is None:
            return {str(key): plain(value) for key, value in container.items()}
        found: dict[str, object] = {}
        for item in container:
            name = item.get(self.name_key) if isinstance(item, Mapping) else None
            if isinstance(name, str):
                found.setdefault(name, plain(item))
        return found

    def _container(self, data: Any) -> Any:
        """The servers map/list, None when absent or null; a value of the wrong kind is a positioned error."""
        node = data
        for depth, segment in enumerate(self.servers):
            child = node.get(segment)
            last = depth == len(self.servers) - 1
            if child is None:
                return None
            wanted = (list if self.name_key else Mapping) if last else Mapping
            if not isinstance(child, wanted):
                line, column = node.lc.key(segment) if isinstance(node, CommentedMap) else (0, 0)
                kind = "a list" if wanted is list else "a mapping"
                where = Origin(self.path, line + 1, column + 1)
                raise ClientFileParseError(where, f"{'.'.join(self.servers[: depth + 1])} must be {kind}")
            node = child
        return node

    def _index(self, container: Any, name: str) -> list[Any]:
        """Keys (map) or indexes (list) of the entries called `name`."""
        if self.name_key is None:
            return [key for key in container if str(key) == name]
        key = self.name_key
        return [i for i, item in enumerate(container) if isinstance(item, Mapping) and item.get(key) == name]

    # -- writing ----------------------------------------------------------------------------------------

    def upsert(self, name: str, entry: Mapping[str, object]) -> None:
        self._container(self.data)  # a servers value of the wrong kind is an error, not something to replace
        self._change(lambda data: self._upsert_data(data, name, entry), lambda: self._upsert_text(name, entry))

    def remove(self, name: str) -> bool:
        container = self._container(self.data)
        if container is None or not self._index(container, name):
            return False
        self._change(lambda data: self._remove_data(data, name), lambda: self._remove_text(name))
        return True

    def dump(self) -> str:
        return self.text

    def _change(self, edit: _Edit, splice: Callable[[], str | None]) -> None:
        """Apply `edit` by splicing lines; fall back to ruamel's round trip when splicing is not possible or wrong.

        ruamel's trees cost a hundred times the text or more, so at most one is alive besides the plain data: the
        tree of the old text is dropped once the splice is made, and the one checked is the one kept.
        """
        expected = plain(self.data)
        edit(expected)
        candidate = None if _OTHER_BREAKS.search(self.text) else splice()
        self.data = CommentedMap()  # the old tree is not needed any more: the fallback loads the text afresh
        loaded = None if candidate is None else self._holding(candidate, expected)
        if candidate is None or loaded is None:
            data = load(self.text, self.path)
            edit(data)
            stream = io.StringIO()
            _yaml(self.text).dump(data, stream)
            del data
            candidate = stream.getvalue()
            loaded = self._holding(candidate, expected)
            if loaded is None:
                raise ClientConfigError(self.path, "internal error: the edited YAML does not hold the intended data")
        self.text, self.data = candidate, loaded

    def _holding(self, candidate: str, expected: object) -> CommentedMap | None:
        """The candidate's tree when it parses and holds exactly the intended data, else None (a bad splice is
        not the user's parse error)."""
        try:
            loaded = load(candidate, self.path)
        except ClientFileParseError:
            return None
        return loaded if plain(loaded) == expected else None

    def _upsert_data(self, data: Any, name: str, entry: Mapping[str, object]) -> None:
        """The change on loaded data (plain or ruamel), creating missing levels as ToolHive does."""
        for depth, segment in enumerate(self.servers):
            if data.get(segment) is None:
                data[segment] = [] if self.name_key and depth == len(self.servers) - 1 else {}
            data = data[segment]
        container = data
        if self.name_key is None:
            container[name] = dict(entry)
            return
        found = self._index(container, name)
        if found:
            container[found[0]] = dict(entry)
        else:
            container.append(dict(entry))

    def _remove_data(self, data: Any, name: str) -> None:
        container = data
        for segment in self.servers:
            container = container[segment]
        for key in reversed(self._index(container, name)):
            del container[key]

    # -- splicing ---------------------------------------------------------------------------------------

    def _lines(self) -> list[str]:
        return self.text.splitlines(keepends=True)

    def _chain(self) -> list[tuple[Any, Any]]:
        """(container, key) from the root down to the servers container, as far as it exists."""
        chain: list[tuple[Any, Any]] = []
        node = self.data
        for segment in self.servers:
            if not isinstance(node, CommentedMap) or segment not in node:
                break
            chain.append((node, segment))
            node = node[segment]
        return chain

    def _start(self, container: Any, key: Any) -> tuple[int, int]:
        """Line and column where an entry begins: its key, or the dash of a list item."""
        if isinstance(container, CommentedMap):
            line, column = container.lc.key(key)
            return line, column
        line, column = container.lc.item(key)
        return line, self._lines()[line].rfind("-", 0, column)

    def _pad(self, container: Any) -> int:
        """Columns from a list item's dash to its content, as the first item has it."""
        if isinstance(container, CommentedMap) or not container:
            return 2
        _, column = self._start(container, 0)
        return max(container.lc.item(0)[1] - column, 2) if column >= 0 else 2

    def _end(self, chain: Sequence[tuple[Any, Any]]) -> int:
        """The line after an entry's last content line: up to the next sibling at any level, less trailing comments."""
        end = len(self._lines())
        for container, key in reversed(chain):
            keys = list(container) if isinstance(container, CommentedMap) else list(range(len(container)))
            position = keys.index(key)
            if position + 1 < len(keys):
                end = self._start(container, keys[position + 1])[0]
                break
        start = self._start(*chain[-1])[0]
        lines = self._lines()
        while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        return end

    def _render(self, value: object, key: object, column: int, pad: int = 2) -> list[str]:
        """Block YAML for `key: value` (or a list item when key is None), indented to `column`."""
        stream = io.StringIO()
        _yaml(self.text).dump({"k": value} if key is None else {key: value}, stream)
        lines = stream.getvalue().splitlines()
        if key is None:  # the mapping's own lines, one level in; make them a list item
            mapping, _, _ = _indents(self.text)
            body = [line[mapping:] for line in lines[1:]]
            lines = ["-" + " " * (pad - 1) + body[0], *(" " * pad + line for line in body[1:])]
        return [" " * column + line + self.newline for line in lines]

    def _splice(self, start: int, end: int, new: list[str]) -> str:
        lines = self._lines()
        if start == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += self.newline
        return "".join(lines[:start] + new + lines[end:])

    def _upsert_text(self, name: str, entry: Mapping[str, object]) -> str | None:
        chain = self._chain()
        if len(chain) < len(self.servers):  # a missing level: add it, with the entry, to the last level present
            value: object = [dict(entry)] if self.name_key else {name: dict(entry)}
            for segment in reversed(self.servers[len(chain) + 1 :]):
                value = {segment: value}
            parent = self.data if not chain else chain[-1][0][chain[-1][1]]
            return self._insert(chain, parent, self.servers[len(chain)], value)
        container = chain[-1][0][chain[-1][1]]
        if container is None or (container.fa.flow_style() and container):
            return None
        found = self._index(container, name)
        key = None if self.name_key else name
        if not found:
            return self._insert(chain, container, key, dict(entry))
        line, column = self._start(container, found[0])
        new = self._render(dict(entry), key, column, self._pad(container))
        return self._splice(line, self._end([*chain, (container, found[0])]), new)

    def _insert(self, chain: list[tuple[Any, Any]], container: Any, key: object, value: object) -> str | None:
        """Add after the container's last entry (before comments that trail it), indented like its entries."""
        if not container:
            if container is not self.data:
                return self._fill_empty(chain[-1], key, value)
            return self._splice(len(self._lines()), len(self._lines()), self._render(value, key, 0))
        keys = list(container) if isinstance(container, CommentedMap) else list(range(len(container)))
        if container.fa.flow_style():
            return None
        column = self._start(container, keys[0])[1]
        end = self._end([*chain, (container, keys[-1])])
        return self._splice(end, end, self._render(value, key, column, self._pad(container)))

    def _fill_empty(self, link: tuple[Any, Any], key: object, value: object) -> str | None:
        """`servers: {}` (or `[]`) becomes `servers:` with the entry in block style under it; comments stay put."""
        parent, segment = link
        line, column = parent.lc.value(segment)
        lines = self._lines()
        match = _EMPTY_FLOW.match(lines[line], column)
        if match is None:
            return None
        lines[line] = lines[line][:column].rstrip(" ") + lines[line][match.end() :]
        mapping, _, offset = _indents(self.text)
        indent = parent.lc.key(segment)[1] + (offset if self.name_key else mapping)
        return "".join([*lines[: line + 1], *self._render(value, key, indent), *lines[line + 1 :]])

    def _remove_text(self, name: str) -> str | None:
        chain = self._chain()
        container = chain[-1][0][chain[-1][1]]
        if container.fa.flow_style():
            return None
        keys = self._index(container, name)
        lines = self._lines()
        for key in reversed(keys):  # spans come from one parse and do not overlap: delete from the bottom up
            del lines[self._start(container, key)[0] : self._end([*chain, (container, key)])]
        return self._mark_empty(chain[-1], lines) if len(keys) == len(container) else "".join(lines)

    def _mark_empty(self, link: tuple[Any, Any], lines: list[str]) -> str | None:
        """`servers:` with nothing under it is null, which clients reject: write `{}` or `[]` as ToolHive does."""
        parent, key = link
        line, column = parent.lc.key(key)
        if not lines[line][column:].startswith(f"{key}:"):
            return None  # a quoted or complex key: leave it to the round trip
        at = column + len(str(key)) + 1
        lines[line] = lines[line][:at] + (" []" if self.name_key else " {}") + lines[line][at:]
        return "".join(lines)
