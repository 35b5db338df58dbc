"""The exact entry ToolHive writes for one workload into one client's file (facts §2.2), as plain data.

Observed entries are compared with these, so an entry edited by hand shows up as drift and is put back
whole, just as ToolHive replaces the whole entry on every upsert.
"""

from __future__ import annotations

import hashlib
import json

from toolhive_apply.clients.table import ClientSpec, Transport

Entry = dict[str, object]


def build_entry(client: ClientSpec, name: str, transport: Transport | str, url: str) -> Entry:
    """The entry for workload `name`, reachable at `url`, whose workload transport is `transport`.

    Key order follows ToolHive's JSON output (URL, then type); in YAML and TOML order is not significant.
    A stdio workload gets the streamable label even when its proxy mode is sse: ToolHive keys the label
    by workload transport.
    """
    kind = Transport(transport)
    entry: Entry = {}
    if client.name_key is not None:
        entry[client.name_key] = name
    entry[client.url_keys[kind]] = url
    if client.types is not None:
        entry[client.type_key] = client.types[kind]
    for key, value in client.defaults:
        entry.setdefault(key, value)
    return entry


def same_entry(expected: object, actual: object) -> bool:
    """Equal as a client would read them: key order ignored, but `true` is not `1` and `60` is not `60.0`."""
    return _canonical(expected) == _canonical(actual)


def entry_digest(value: object) -> str:
    """A digest two values share exactly when `same_entry` holds for them, to compare without keeping one (the
    canonical JSON is ASCII: json.dumps escapes the rest)."""
    return hashlib.sha256(_canonical(value).encode("ascii")).hexdigest()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=repr)
