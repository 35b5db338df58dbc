"""TOML client files (Codex `[mcp_servers.<name>]` tables, Mistral Vibe `[[mcp_servers]]` items), edited with tomlkit.

tomlkit keeps comments, order and formatting of everything it is not asked to change; entries are updated
in place so their position and header comments survive. Files are checked with the standard library's
strict parser first, which gives positioned errors and matches what the clients themselves accept.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import tomlkit
from tomlkit.container import OutOfOrderTableProxy
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Table, Whitespace

from toolhive_apply.clients.errors import ClientConfigError, ClientFileParseError
from toolhive_apply.errors import Origin, unreadable_value

_POSITION: Final = re.compile(r"\(at line (\d+), column (\d+)\)")
_TABLES: Final = (Table, InlineTable, OutOfOrderTableProxy)


def load(text: str, path: Path) -> tomlkit.TOMLDocument:
    """Parse strictly (positioned errors), then with tomlkit for editing."""
    try:
        tomllib.loads(text)
        return tomlkit.parse(text)
    except tomllib.TOMLDecodeError as exc:
        match = _POSITION.search(str(exc))
        line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
        raise ClientFileParseError(Origin(path, line, column), _POSITION.sub("", str(exc)).strip()) from None
    except TOMLKitError as exc:
        raise ClientFileParseError(Origin(path, 1, 1), str(exc)) from None
    except ValueError as exc:  # int() of a number longer than Python converts, in either parser
        raise ClientFileParseError(Origin(path, 1, 1), unreadable_value(exc)) from None


class TomlDocument:
    """One TOML file; servers are tables under `servers` (by key) or array items (by `name_key`)."""

    def __init__(self, text: str, path: Path, servers: tuple[str, ...], name_key: str | None) -> None:
        self.text, self.path, self.servers, self.name_key = text, path, servers, name_key
        self.doc = load(text, path)

    def entries(self) -> dict[str, object]:
        container = self._container()
        if container is None:
            return {}
        if self.name_key is None:
            return {str(key): _unwrap(value) for key, value in container.items()}
        found: dict[str, object] = {}
        for item in container:
            name = item.get(self.name_key) if isinstance(item, _TABLES) else None
            if isinstance(name, str):
                found.setdefault(name, _unwrap(item))
        return found

    def upsert(self, name: str, entry: Mapping[str, object]) -> None:
        expected = {**self.entries(), name: dict(entry)}
        container = self._container(create=True)
        existing = self._find(container, name)
        if existing:
            _fill(existing[0], entry)
        elif self.name_key is None:
            inline = isinstance(container, InlineTable)
            if not inline:
                _make_room(self.doc, container)
            container[name] = _new_table(entry, inline=inline)
        else:
            inline = isinstance(container, Array)
            if not inline:
                _make_room(self.doc, container)
            container.append(_new_table(entry, inline=inline))
        self._commit(expected)

    def remove(self, name: str) -> bool:
        container = self._container()
        if container is None or not self._find(container, name):
            return False
        expected = {key: value for key, value in self.entries().items() if key != name}
        for table in self._find(container, name):
            _hand_on_comments(self.doc, table)
        if self.name_key is None:
            del container[name]
        else:
            for index in reversed([i for i, item in enumerate(container) if _name(item, self.name_key) == name]):
                del container[index]
            if not container:  # tomlkit would hoist an empty array of tables to `key = []` at the top
                del self._parent()[self.servers[-1]]
        self._commit(expected)
        return True

    def dump(self) -> str:
        return self.text

    # -- internals --------------------------------------------------------------------------------------

    def _parent(self) -> Any:
        node: Any = self.doc
        for segment in self.servers[:-1]:
            if segment not in node:
                node.append(segment, tomlkit.table(is_super_table=True))
            node = node[segment]
        return node

    def _container(self, *, create: bool = False) -> Any:
        """The servers table or array; None when absent; a value of the wrong kind is an error."""
        parent = self._parent() if create else self._walk()
        key = self.servers[-1]
        if parent is None:
            return None
        if key not in parent:
            if not create:
                return None
            if self.name_key and parent is self.doc and self.text.strip() and not self.text.endswith("\n\n"):
                parent.add(tomlkit.nl())  # tomlkit separates new tables from what precedes them, but not arrays
            parent.append(key, tomlkit.aot() if self.name_key else tomlkit.table(is_super_table=True))
        value = parent[key]
        if not isinstance(value, (AoT, Array) if self.name_key else _TABLES):
            kind = "an array of tables" if self.name_key else "a table"
            raise ClientFileParseError(self._origin(key), f"{'.'.join(self.servers)} must be {kind}")
        return value

    def _walk(self) -> Any:
        node: Any = self.doc
        for segment in self.servers[:-1]:
            node = node.get(segment)
            if not isinstance(node, _TABLES):
                return None
        return node

    def _find(self, container: Any, name: str) -> list[Any]:
        if self.name_key is None:
            return [container[name]] if name in container and isinstance(container[name], _TABLES) else []
        return [item for item in container if _name(item, self.name_key) == name]

    def _origin(self, key: str) -> Origin:
        """tomlkit keeps no positions: point at the first line that mentions the key."""
        for number, line in enumerate(self.text.splitlines(), start=1):
            if re.match(rf"\s*\[*\s*{re.escape(key)}\b", line):
                return Origin(self.path, number, 1)
        return Origin(self.path, 1, 1)

    def _commit(self, expected: dict[str, object]) -> None:
        """Take the edited document's text, and check it: the servers hold `expected`, nothing else changed.

        tomlkit's trees cost a hundred times the text, so the old one is dropped before the new text is parsed.
        """
        text = self.doc.as_string()
        if text.endswith("\n\n") and not self.text.endswith("\n\n"):
            text = text[:-1]  # new tables end with a blank line to separate them; not at the end of the file
        self.doc = tomlkit.document()
        before = {k: v for k, v in tomllib.loads(self.text).items() if k != self.servers[0]}
        self.text, self.doc = text, load(text, self.path)
        after = {k: v for k, v in tomllib.loads(text).items() if k != self.servers[0]}
        if self.entries() != expected or before != after:
            raise ClientConfigError(self.path, "internal error: the edited TOML does not hold the intended data")


def _tables_in_order(container: Any) -> list[Table]:
    """Every table with a header under `container`, in the order tomlkit writes them (super tables have none)."""
    found: list[Table] = []
    for _, item in container.body:
        found.extend(_subtree(item))
    return found


def _subtree(item: object) -> list[Table]:
    """The tables with a header that `item` writes, itself first."""
    if isinstance(item, Table):
        return ([] if item.is_super_table() else [item]) + _tables_in_order(item.value)
    if isinstance(item, AoT):
        return [table for element in item.body for table in _subtree(element)]
    return []


def _following(doc: tomlkit.TOMLDocument, tables: list[Table]) -> Table | None:
    """The table written right after the last of `tables` (None at the end of the file or when not found)."""
    if not tables:
        return None
    order = _tables_in_order(doc)
    index = next((i for i, candidate in enumerate(order) if candidate is tables[-1]), None)
    return order[index + 1] if index is not None and index + 1 < len(order) else None


def _detach_comments(tables: list[Table]) -> list[Item]:
    """The comment lines at the end of the last of `tables`, taken out of it: tomlkit keeps the comments above a
    header in the body of the table written before it. Only comments after its last key are taken, with the blank
    lines among and after them; the blank lines before the first of them separate the table from the next."""
    if not tables:
        return []
    body = tables[-1].value.body
    start = len(body)
    while start and body[start - 1][0] is None and isinstance(body[start - 1][1], (Whitespace, Comment)):
        start -= 1
    first = next((i for i in range(start, len(body)) if isinstance(body[i][1], Comment)), None)
    if first is None:
        return []
    block = [item for _, item in body[first:]]
    del body[first:]  # after every key, so the container's key index is unaffected
    return block


def _put_above(doc: tomlkit.TOMLDocument, table: Table | None, block: list[Item]) -> None:
    """Comment lines above `table`'s header, or at the end of the file when there is no table."""
    if not block:
        return
    if table is not None:
        table.trivia.indent = "".join(item.as_string() for item in block) + table.trivia.indent
    else:
        doc.body.extend((None, item) for item in block)


def _hand_on_comments(doc: tomlkit.TOMLDocument, table: Any) -> None:
    """Before `table` is removed, the comments above the header after it move onto that header (or to the end of the
    file), so a user's note directly above their own table survives the removal of ours before it."""
    tables = _subtree(table)
    following = _following(doc, tables)
    _put_above(doc, following, _detach_comments(tables))


def _make_room(doc: tomlkit.TOMLDocument, container: Any) -> None:
    """Before a table is appended to `container`: the comments above the header that follows the container's last
    table move onto that header, so the new table goes between them and the table they were written for."""
    tables = _subtree(container)
    following = _following(doc, tables)
    if following is not None:
        _put_above(doc, following, _detach_comments(tables))


def _name(item: object, key: str) -> object:
    return item.get(key) if isinstance(item, _TABLES) else None


def _unwrap(value: object) -> object:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _fill(table: Any, entry: Mapping[str, object]) -> None:
    """Make an existing table hold exactly `entry`, in place, so its position and header comments stay."""
    for key in [key for key in table if key not in entry]:
        del table[key]
    for key, value in entry.items():
        table[key] = value


def _new_table(entry: Mapping[str, object], *, inline: bool) -> Any:
    table: Any = tomlkit.inline_table() if inline else tomlkit.table()
    table.update(entry)
    if not inline:
        table.add(tomlkit.nl())
    return table
