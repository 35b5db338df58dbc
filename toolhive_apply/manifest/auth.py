"""Who may reach an endpoint: the typed `oidc`, `authz_config` and `auth` blocks of the manifest.

Kept apart from model.py (which holds one field per block) so the endpoint vocabulary has one home; the checks
(auth_checks.py) and the spec (providers/endpoint_spec.py) read these dataclasses, never raw YAML data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ANONYMOUS: Literal["anonymous"] = "anonymous"


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """ToolHive's `oidc` options; `client_secret` is the name of a secret, never its value."""

    issuer: str
    audience: str | None = None
    jwks_url: str | None = None
    introspection_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StackAuth:
    """`settings.auth`: the default for every workload that says nothing itself."""

    anonymous: bool = False
    oidc: OidcConfig | None = None


def parse_oidc(raw: Mapping[str, Any] | None) -> OidcConfig | None:
    if not raw:
        return None
    return OidcConfig(
        issuer=str(raw["issuer"]),
        audience=raw.get("audience"),
        jwks_url=raw.get("jwks_url"),
        introspection_url=raw.get("introspection_url"),
        client_id=raw.get("client_id"),
        client_secret=raw.get("client_secret"),
        scopes=tuple(str(s) for s in raw.get("scopes", ())),
    )


def parse_stack_auth(raw: object) -> StackAuth | None:
    if raw is None:
        return None
    if raw == ANONYMOUS:
        return StackAuth(anonymous=True)
    assert isinstance(raw, Mapping)  # the schema allows nothing else
    return StackAuth(oidc=parse_oidc(raw.get("oidc")))
