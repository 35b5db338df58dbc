"""`export --as-manifest`'s `client_auth` blocks, from this machine's client records (issue #16).

A token's secret is not part of a workload's spec (changing it must not recreate the workload), so it is read back
from what the client provider recorded: the name of the secret each of our entries carries, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolhive_apply.providers.client.state import ClientRecord


def bearer_secrets(records: Mapping[str, ClientRecord]) -> dict[str, str]:
    """Entry (workload or gateway) name -> the secret its clients' tokens come from; clients in name order."""
    found: dict[str, str] = {}
    for name in sorted(records):
        for entry, secret in records[name].bearer:
            found.setdefault(entry, secret)
    return found


def with_client_auth(
    workloads: list[dict[str, Any]], groups: list[dict[str, Any]], tokens: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Workload entries and group entries (their `vmcp` blocks) with `client_auth` where a token was recorded."""
    out_workloads = [
        {**w, "client_auth": {"bearer_secret": tokens[w["name"]]}} if w["name"] in tokens else w for w in workloads
    ]
    out_groups = []
    for group in groups:
        vmcp = group.get("vmcp")
        gateway = str(vmcp.get("name") or group["name"]) if isinstance(vmcp, dict) else ""
        if isinstance(vmcp, dict) and gateway in tokens:
            group = {**group, "vmcp": {**vmcp, "client_auth": {"bearer_secret": tokens[gateway]}}}
        out_groups.append(group)
    return out_workloads, out_groups
