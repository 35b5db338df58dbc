"""A group gateway's endpoint security (``groups[].vmcp.incoming_auth``), read as a workload's endpoint blocks.

The gateway is one more endpoint of the stack, so it is judged and configured by the workloads' own code: this
module makes the endpoint carrier (a ``Workload`` with only the endpoint fields, named like the gateway) that
``auth_checks`` validates and ``providers/workload/endpoint.py`` turns into spec and proxy configuration. Without
``incoming_auth``, ``settings.auth`` applies to the gateway as to every workload. Problems the workload checks name
at ``workloads[...]`` are moved to the gateway's own fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.auth import parse_oidc
from toolhive_apply.manifest.auth_checks import _workload_issues
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Group, Manifest, Workload

CARRIER_INDEX: Final = -1
"""The carrier is no manifest workload: its paths (``workloads[-1]...``) are rewritten to the group's."""
_CARRIER_PATH: Final = format_path(("workloads", CARRIER_INDEX))


def gateway_endpoint(manifest: Manifest, group: Group) -> Workload:
    """The endpoint carrier of ``group``'s gateway: its name, host and ``incoming_auth`` blocks."""
    assert group.vmcp is not None
    index = manifest.groups.index(group)
    origin = manifest.positions.find(("groups", index, "vmcp", "incoming_auth")) or group.origin
    raw = group.vmcp.incoming_auth or {}
    origins = raw.get("allowed_origins")
    return Workload(
        name=group.vmcp.name or group.name,
        index=CARRIER_INDEX,
        origin=origin,
        base_dir=origin.file.resolve().parent if origin else Path.cwd(),
        host=group.vmcp.host,
        group=group.name,
        oidc=parse_oidc(raw.get("oidc")),
        authz_config=raw.get("authz_config"),
        auth=raw.get("auth"),
        allowed_origins=tuple(origins) if origins is not None else None,
    )


def gateway_auth_issues(manifest: Manifest, index: int, group: Group) -> Iterator[ManifestIssue]:
    """The workload endpoint checks run on the gateway, each problem at the gateway's field."""
    secrets = {s.key for s in manifest.secrets}
    own = format_path(("groups", index, "vmcp", "incoming_auth"))
    for issue in _workload_issues(gateway_endpoint(manifest, group), manifest, secrets):
        where = issue.field
        if where == f"{_CARRIER_PATH}.host":
            where = format_path(("groups", index, "vmcp", "host"))
        elif where.startswith(_CARRIER_PATH):
            where = own + where.removeprefix(_CARRIER_PATH)
        yield dataclasses.replace(issue, field=where)
