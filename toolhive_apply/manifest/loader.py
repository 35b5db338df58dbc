"""Read manifest YAML into plain data while remembering where every value came from.

PyYAML's constructor forgets node positions and silently keeps the last of two duplicate keys, so we
walk the composed node graph ourselves: positions survive to every later error message, duplicate keys
are errors, and alias expansion is bounded (a "billion laughs" file is refused, not expanded).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from toolhive_apply.errors import ManifestError, ManifestIssue, Origin, unreadable_value
from toolhive_apply.fileio import InputFileError, read_input

API_VERSION = "toolhive-apply/v1"
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
SECTIONS_MERGED_AS_MAPS = ("settings", "vars")
SECTIONS_MERGED_AS_LISTS = ("groups", "registries", "secrets", "clients", "workloads")

FieldPath = tuple[str | int, ...]
# libyaml's composer when available: same nodes and marks, several times faster on large manifests
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: FieldPath) -> str:
    """`("workloads", 0, "env_vars", "TZ")` -> `workloads[0].env_vars.TZ`, the form every message uses."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(slots=True)
class Positions:
    """Field path -> origin of the key (for mapping entries) or the item (for list entries)."""

    by_path: dict[FieldPath, Origin] = field(default_factory=dict)

    def find(self, path: FieldPath) -> Origin | None:
        """The origin of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            origin = self.by_path.get(path[:end])
            if origin is not None:
                return origin
        return None

    def issue(self, path: FieldPath, message: str) -> ManifestIssue:
        return ManifestIssue(self.find(path), format_path(path), message)


@dataclass(slots=True)
class LoadedManifest:
    """The merged documents as plain data plus where each value was written."""

    data: dict[str, Any]
    positions: Positions
    files: tuple[Path, ...]


def _origin(file: Path, mark: yaml.Mark | None) -> Origin:
    if mark is None:
        return Origin(file, 1, 1)
    return Origin(file, mark.line + 1, mark.column + 1)


class _NodeReader:
    """Turns one composed YAML document into plain data, recording positions and refusing abuse."""

    def __init__(self, file: Path, positions: Positions, issues: list[ManifestIssue]) -> None:
        self.file = file
        self.positions = positions
        self.issues = issues
        self.nodes = 0
        self.scalars = SafeConstructor()

    def read(self, node: yaml.Node, path: FieldPath, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBigError(f"more than {MAX_NODES} YAML nodes (after expanding aliases)")
        if depth > MAX_DEPTH:
            raise _TooBigError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                self.positions.by_path.setdefault((*path, index), _origin(self.file, item.start_mark))
                result.append(self.read(item, (*path, index), depth + 1))
            return result
        try:
            return self._scalar(node)
        except _UnreadableValueError as exc:
            exc.field = format_path(path)
            raise

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return str(node.value)  # a date-like string stays the string the user wrote
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.issues.append(ManifestIssue(_origin(self.file, node.start_mark), "", f"bad value: {exc}"))
            return None
        except ValueError as exc:  # int(): more digits than Python converts (sys.get_int_max_str_digits)
            raise _UnreadableValueError(_origin(self.file, node.start_mark), unreadable_value(exc)) from None

    def _entries(self, node: yaml.MappingNode, depth: int) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """Mapping entries with YAML merge keys (`<<: *base`) expanded; explicit keys come first and win."""
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self.issues.append(
                            ManifestIssue(_origin(self.file, source.start_mark), "", "a merge key (<<) needs a mapping")
                        )
                        continue
                    merged.extend(self._entries(source, depth + 1))
            else:
                yield key_node, value_node
        yield from merged

    def _mapping(self, node: yaml.MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        explicit: dict[str, Origin] = {}
        merged_keys: set[str] = set()
        in_merge = False
        own_keys = {id(k) for k, _ in node.value}
        for key_node, value_node in self._entries(node, depth):
            in_merge = id(key_node) not in own_keys
            raw_key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            origin = _origin(self.file, key_node.start_mark)
            if raw_key is None or isinstance(raw_key, (list, dict)):
                self.issues.append(ManifestIssue(origin, format_path(path), "keys must be plain scalars"))
                continue
            key = str(raw_key)
            if in_merge:
                if key in result or key in merged_keys:
                    continue
                merged_keys.add(key)
            elif key in explicit:
                self.issues.append(
                    ManifestIssue(
                        origin,
                        format_path((*path, key)),
                        f"duplicate key {key!r} (first defined at {explicit[key].line}:{explicit[key].column})",
                    )
                )
                continue
            else:
                explicit[key] = origin
            self.positions.by_path.setdefault((*path, key), origin)
            result[key] = self.read(value_node, (*path, key), depth + 1)
        return result


class _TooBigError(Exception):
    """Internal: the document exceeds the node or depth budget."""


class _UnreadableValueError(Exception):
    """Internal: a scalar the YAML constructor cannot make (an integer with more digits than Python converts); the
    file is refused (a null in its place would only add a second, misleading error at the same spot)."""

    def __init__(self, origin: Origin, reason: str) -> None:
        super().__init__(origin, reason)
        self.origin = origin
        self.reason = reason
        self.field = ""


def _decode(file: Path, raw: bytes) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise ManifestError.single(Origin(file, 1, 1), "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ManifestError.single(
            Origin(file, line, column), "", f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        ) from None


def load_file(file: Path, positions: Positions, issues: list[ManifestIssue]) -> dict[str, Any] | None:
    """Parse one file; returns its mapping, or None after recording why it cannot be used."""
    try:
        raw = read_input(file, MAX_FILE_BYTES)
    except InputFileError as exc:
        issues.append(ManifestIssue(Origin(file, 1, 1), "", f"cannot read file: {exc.reason}"))
        return None
    text = _decode(file, raw)
    try:
        documents = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        issues.append(ManifestIssue(_origin(file, mark), "", f"YAML syntax error: {exc.problem or exc}"))
        return None
    except yaml.YAMLError as exc:
        issues.append(ManifestIssue(Origin(file, 1, 1), "", f"YAML error: {exc}"))
        return None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        issues.append(ManifestIssue(Origin(file, 1, 1), "", "file is empty: expected a manifest mapping"))
        return None
    if len(documents) > 1:
        issues.append(ManifestIssue(_origin(file, documents[1].start_mark), "", "one YAML document per file, please"))
        return None
    root = documents[0]
    if not isinstance(root, yaml.MappingNode):
        issues.append(ManifestIssue(_origin(file, root.start_mark), "", "the manifest must be a mapping of sections"))
        return None
    reader = _NodeReader(file, positions, issues)
    try:
        data: dict[str, Any] = reader.read(root, ())
    except _TooBigError as exc:
        issues.append(ManifestIssue(Origin(file, 1, 1), "", f"refused: {exc}"))
        return None
    except RecursionError:
        issues.append(ManifestIssue(Origin(file, 1, 1), "", "refused: recursive aliases"))
        return None
    except _UnreadableValueError as exc:
        issues.append(ManifestIssue(exc.origin, exc.field, exc.reason))
        return None
    return data


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories become their `*.yaml`/`*.yml` files (not hidden ones), sorted, not recursive."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith(".")  # .gitlab-ci.yml
            )
            if not found:
                raise ManifestError.single(Origin(path, 1, 1), "", "no *.yaml or *.yml manifest in directory")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise ManifestError.single(Origin(path, 1, 1), "", "no such file or directory")
    return files


def _merge_map(
    into: dict[str, Any],
    value: dict[str, Any],
    path: FieldPath,
    maps: tuple[Positions, Positions],
    issues: list[ManifestIssue],
) -> None:
    """Deep-merge a settings/vars mapping from another file; the same leaf set twice is an error."""
    first, second = maps
    for key, item in value.items():
        sub = (*path, key)
        if key in into and isinstance(into[key], dict) and isinstance(item, dict):
            _merge_map(into[key], item, sub, maps, issues)
        elif key in into:
            issues.append(
                ManifestIssue(
                    second.find(sub),
                    format_path(sub),
                    f"set in more than one file (first at {first.find(sub)})",
                )
            )
        else:
            into[key] = item


def merge_documents(docs: list[tuple[Path, dict[str, Any], Positions]], issues: list[ManifestIssue]) -> LoadedManifest:
    """Merge several files into one manifest, re-indexing list positions so errors still point home."""
    merged: dict[str, Any] = {}
    positions = Positions()
    for file, data, local in docs:
        if data.get("apiVersion") != API_VERSION:
            where = local.find(("apiVersion",)) or Origin(file, 1, 1)
            found = data.get("apiVersion")
            message = (
                f"apiVersion: {API_VERSION} is required"
                if found is None
                else f"unsupported apiVersion {found!r}; expected {API_VERSION}"
            )
            issues.append(ManifestIssue(where, "apiVersion", message))
        for key, value in data.items():
            if key == "apiVersion":  # checked per file above; every file carries it
                merged.setdefault(key, value)
                positions.by_path.setdefault((key,), local.find((key,)) or Origin(file, 1, 1))
                continue
            _merge_section(key, value, merged, (local, positions), issues)
    return LoadedManifest(merged, positions, tuple(file for file, _, _ in docs))


def _merge_section(
    key: str,
    value: Any,
    merged: dict[str, Any],
    maps: tuple[Positions, Positions],
    issues: list[ManifestIssue],
) -> None:
    local, positions = maps
    if key in SECTIONS_MERGED_AS_LISTS and isinstance(value, list):
        target = merged.setdefault(key, [])
        offset = len(target) if isinstance(target, list) else 0
        for path, origin in local.by_path.items():
            if path[:1] == (key,):
                moved = path if len(path) < 2 else (key, int(path[1]) + offset, *path[2:])
                positions.by_path.setdefault(moved, origin)
        if isinstance(target, list):
            target.extend(value)
        return
    if key in SECTIONS_MERGED_AS_MAPS and isinstance(value, dict) and isinstance(merged.get(key), dict):
        _merge_map(merged[key], value, (key,), (positions, local), issues)
    elif key in merged:
        issues.append(
            ManifestIssue(local.find((key,)), key, f"set in more than one file (first at {positions.find((key,))})")
        )
    else:
        merged[key] = value
    for path, origin in local.by_path.items():
        if path[:1] == (key,):
            positions.by_path.setdefault(path, origin)


def load_manifest_files(paths: Iterable[Path]) -> tuple[LoadedManifest, list[ManifestIssue]]:
    """Load and merge manifest files.

    A file that cannot be read at all raises ManifestError at once; problems that still leave usable
    data (a duplicate key, a file merged twice) are returned, so later phases can report theirs too.
    """
    issues: list[ManifestIssue] = []
    docs: list[tuple[Path, dict[str, Any], Positions]] = []
    files = expand_paths(paths)
    for file in files:
        local = Positions()
        data = load_file(file, local, issues)
        if data is not None:
            docs.append((file, data, local))
    if len(docs) < len(files):
        raise ManifestError(issues)
    loaded = merge_documents(docs, issues)
    return loaded, issues
