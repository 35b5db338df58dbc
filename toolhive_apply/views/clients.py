"""ToolHive API-shaped views of client registrations, read from the client state files (no manifest, no Docker).

`export clients` prints these so tools written against `thv serve` (`GET /api/v1beta/clients` and
`GET /api/v1beta/discovery/clients`) can read what toolhive-apply registered.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypedDict

from toolhive_apply.clients import UnsupportedPlatformError, client_table, is_installed
from toolhive_apply.providers.client.state import ClientRecord, ClientState, load_all


class RegisteredClient(TypedDict):
    """One item of `GET /api/v1beta/clients`."""

    name: str
    groups: list[str]


class ClientStatus(TypedDict):
    """One item of `GET /api/v1beta/discovery/clients`."""

    client_type: str
    installed: bool
    registered: bool


class Discovery(TypedDict):
    clients: list[ClientStatus]


def _records(state_dir: Path | None, stack: str | None) -> list[dict[str, ClientRecord]]:
    if stack is not None:
        return [ClientState(stack, state_dir).load()]
    return list(load_all(state_dir).values())


def clients_listing(state_dir: Path | None, stack: str | None) -> list[RegisteredClient]:
    """Registered clients with the union of their groups over the stacks asked for, in ToolHive's client order."""
    groups: dict[str, set[str]] = {}
    for records in _records(state_dir, stack):
        for name, record in records.items():
            groups.setdefault(name, set()).update(record.groups)
    return [{"name": name, "groups": sorted(groups[name])} for name in client_table().names() if name in groups]


def _installed(name: str, home: Path, platform: str) -> bool:
    try:
        return is_installed(client_table().get(name), home, platform)
    except UnsupportedPlatformError:
        return False


def clients_discovery(home: Path, state_dir: Path | None, platform: str = sys.platform) -> Discovery:
    """Every client type ToolHive knows: installed (ToolHive's rule, default locations) and registered by any stack."""
    registered = {name for records in _records(state_dir, None) for name in records}
    return {
        "clients": [
            {"client_type": name, "installed": _installed(name, home, platform), "registered": name in registered}
            for name in client_table().names()
        ]
    }
