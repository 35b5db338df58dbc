"""One interface over the six client file formats: read the servers, upsert or remove one, get the new text.

Each format keeps every byte it is not asked to change as far as the format allows: JSON and JSONC by
splicing text spans (jsonc.py), YAML by splicing lines located with ruamel.yaml (yamldoc.py), TOML through
tomlkit (tomldoc.py). Unparseable text is a ClientFileParseError with the file, line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Protocol, TypeVar

from toolhive_apply.clients.errors import ClientFileParseError
from toolhive_apply.clients.table import ClientSpec, FileFormat
from toolhive_apply.errors import Origin

_T = TypeVar("_T")

# The largest file read per format. Client files hold settings (a few KiB); the limits leave room for the big ones
# (Claude Code keeps project history in ~/.claude.json) while bounding memory: parsing costs a small multiple of the
# size for JSON (our own span parser), but ruamel.yaml and tomlkit build heavy trees, so their limits are lower.
SIZE_LIMITS: Final[Mapping[str, int]] = {"JSON": 10 << 20, "YAML": 128 << 10, "TOML": 128 << 10}


class Document(Protocol):
    """A parsed client file. Entries are plain data (dict/list/str/int/float/bool/None), keyed by server name."""

    def entries(self) -> dict[str, object]: ...

    def upsert(self, name: str, entry: Mapping[str, object]) -> None: ...

    def remove(self, name: str) -> bool: ...

    def dump(self) -> str: ...


class JsonDocument:
    """JSON and JSONC files through the span editor; offsets in its errors become line:column here.

    Plain JSON must stay readable by the client's own parser, which is as strict as Python's: the editor checks
    every edited text again in strict mode (RFC 8259, which json.loads accepts too), without building a tree.
    """

    def __init__(self, text: str, path: Path, client: ClientSpec) -> None:
        from toolhive_apply.clients.jsonc import JsoncDocument

        self.path = path
        self.servers = client.servers
        self.doc = self._guard(text, lambda: JsoncDocument(text, comments=client.format is FileFormat.JSONC))

    def entries(self) -> dict[str, object]:
        return self._guard(self.doc.text, lambda: self.doc.servers(self.servers))

    def upsert(self, name: str, entry: Mapping[str, object]) -> None:
        self._guard(self.doc.text, lambda: self.doc.upsert(self.servers, name, dict(entry)))

    def remove(self, name: str) -> bool:
        return self._guard(self.doc.text, lambda: self.doc.remove(self.servers, name))

    def dump(self) -> str:
        return self.doc.text

    def _guard(self, text: str, action: Callable[[], _T]) -> _T:
        from toolhive_apply.clients.jsonc import JsoncError, position

        try:
            return action()
        except JsoncError as exc:
            line, column = position(text, exc.offset)
            raise ClientFileParseError(Origin(self.path, line, column), exc.message) from None


def parse_document(client: ClientSpec, text: str, path: Path) -> Document:
    """Parse `text` (the content of `path`) as `client`'s format.

    Each parser is imported when a file of its format is first read: ruamel.yaml, tomlkit and the JSONC scanner's
    patterns were a third of a plan's start-up (issue #20), and most runs read no client file, or one format."""
    match client.format:
        case FileFormat.JSON | FileFormat.JSONC:
            return JsonDocument(text, path, client)
        case FileFormat.YAML_MAP | FileFormat.YAML_LIST:
            from toolhive_apply.clients.yamldoc import YamlDocument

            return YamlDocument(text, path, client.servers, client.name_key if client.format.is_list else None)
        case FileFormat.TOML_TABLES | FileFormat.TOML_ARRAY:
            from toolhive_apply.clients.tomldoc import TomlDocument

            return TomlDocument(text, path, client.servers, client.name_key if client.format.is_list else None)


def format_name(client: ClientSpec) -> str:
    """JSON (JSONC included), YAML or TOML: what the size limits and their error name."""
    return client.format.value[:4].upper()


def size_limit(client: ClientSpec) -> int:
    """The largest file of `client`'s format that is read (bytes); a larger one is a ClientFileTooLargeError."""
    return SIZE_LIMITS[format_name(client)]


def empty_text(client: ClientSpec) -> str:
    """What a new file starts as: the client's `new_file` when the table gives one (a file the client accepts), else
    like ToolHive's CreateClientConfig: `{}` for JSON, nothing for YAML and TOML."""
    if client.new_file is not None:
        return client.new_file
    return "{}\n" if client.format in (FileFormat.JSON, FileFormat.JSONC) else ""
