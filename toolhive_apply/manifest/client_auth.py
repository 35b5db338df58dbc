"""`client_auth`: what the stack's own client files send to an endpoint that wants a token (issue #16).

```yaml
workloads:
  - name: github
    oidc: {...}                       # the endpoint checks tokens
    client_auth: {bearer_secret: github-token}
groups:
  - name: team
    vmcp: {port: 4483, client_auth: {bearer_secret: team-token}}
```

Why on the endpoint (the workload, or the group's `vmcp` block) and not on the `clients` entry: the token is what
*that endpoint* accepts (its audience, its issuer), so every client listing the endpoint needs the same one, and it
is declared once, beside the `oidc` it answers. A client entry lists groups, not endpoints: a token there would
have to be told which of its workloads it is for. Why a secret and never a literal: the value ends up in clear in
the client's file, which is the point, but nowhere else (plans, saved plans, the client state file and exports carry
the secret's name and a keyed digest only). Why `bearer_secret` and not a general header map: a static bearer token
is the one credential an MCP endpoint here checks (`Authorization`, RFC 6750); clients that follow the OAuth flow
from the 401 need nothing at all (clients.toml `endpoint_auth`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.loader import format_path

if TYPE_CHECKING:
    from toolhive_apply.manifest.model import Manifest


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """How the stack's clients authenticate to one endpoint: `Authorization: Bearer <bearer_secret's value>`."""

    bearer_secret: str


def parse_client_auth(raw: Mapping[str, Any] | None) -> ClientAuth | None:
    """The model of a schema-valid `client_auth` block."""
    if not raw:
        return None
    return ClientAuth(str(raw["bearer_secret"]))


def endpoint_client_auth(manifest: Manifest) -> dict[str, ClientAuth]:
    """By entry name (a workload's, or a gateway's: `vmcp.name` or the group's), what its clients send."""
    found = {w.name: w.client_auth for w in manifest.workloads if w.client_auth is not None}
    for group in manifest.groups:
        if group.vmcp is not None and group.vmcp.client_auth is not None:
            found[group.vmcp.name or group.name] = group.vmcp.client_auth
    return found


def check_client_auth(manifest: Manifest) -> Iterator[ManifestIssue]:
    """The secret must be declared (its value is read at plan time, as every secret's is)."""
    declared = {s.key for s in manifest.secrets}
    places: list[tuple[tuple[str | int, ...], ClientAuth, Any]] = [
        (("workloads", w.index), w.client_auth, w.origin) for w in manifest.workloads if w.client_auth is not None
    ]
    for index, group in enumerate(manifest.groups):
        if group.vmcp is not None and group.vmcp.client_auth is not None:
            places.append((("groups", index, "vmcp"), group.vmcp.client_auth, group.origin))
    for path, auth, origin in places:
        if auth.bearer_secret not in declared:
            known = f" (declared: {', '.join(sorted(declared))})" if declared else ""
            where = manifest.positions.find((*path, "client_auth", "bearer_secret")) or origin
            yield ManifestIssue(
                where,
                format_path((*path, "client_auth", "bearer_secret")),
                f"unknown secret {auth.bearer_secret!r}: declare it under secrets{known}",
            )
