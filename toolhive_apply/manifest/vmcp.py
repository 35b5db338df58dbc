"""A group's virtual MCP server (``groups[].vmcp``) as the manifest declares it.

The aggregation block is parsed by the gateway's own parser (``proxy/vmcp_config.py``), so the manifest, the
gateway's configuration and ``export --vmcp-config`` share one vocabulary and one reading of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from toolhive_apply.manifest.client_auth import ClientAuth, parse_client_auth
from toolhive_apply.proxy.vmcp_config import Aggregation, parse_aggregation

VMCP_ONLY: Final = "vmcp-only"


@dataclass(frozen=True, slots=True)
class Vmcp:
    port: int
    host: str | None = None
    name: str | None = None
    aggregation: Aggregation = field(default_factory=Aggregation)
    raw_aggregation: Mapping[str, Any] = field(default_factory=dict)
    """The aggregation block as written, for the gateway's configuration document and exports."""
    incoming_auth: Mapping[str, Any] | None = None
    """ToolHive vMCP's incomingAuth as written: a workload's endpoint blocks (manifest/vmcp_auth.py reads them)."""
    client_auth: ClientAuth | None = None
    """What the stack's client files send to the gateway, as a workload's `client_auth`."""


def vmcp_of(raw: Mapping[str, Any] | None) -> Vmcp | None:
    """The model of a schema-valid ``vmcp`` block (problems the schema cannot see are reported by the checks)."""
    if raw is None:
        return None
    block = dict(raw.get("aggregation") or {})
    aggregation = parse_aggregation(block, [], "aggregation") or Aggregation()
    return Vmcp(
        int(raw["port"]),
        raw.get("host"),
        raw.get("name"),
        aggregation,
        block,
        raw.get("incoming_auth"),
        parse_client_auth(raw.get("client_auth")),
    )
