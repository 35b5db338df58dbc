"""The ``"auth"`` key of ``THV_PROXY_CONFIG``: who may reach the endpoint (OIDC) and what they may do (Cedar).

Shape (written by the host side from the manifest, agreed in the wave brief)::

    absent | {"mode": "anonymous"}
    {"mode": "oidc",
     "oidc": {"issuer", "audience", "jwks": <JWKS document or null>, "jwks_url": <url or null>,
              "introspection_url", "client_id", "client_secret_env": <env var name or null>, "scopes": [...],
              "resource_url": <public URL of this endpoint>},
     "authz": null | {"version": "1.0", "type": "cedarv1", "cedar": {"policies": [str], "entities_json": str}}}

The client secret is read from the environment here, so it never sits in the JSON. Problems are appended to the
caller's list (all reported at once), never raised one by one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.proxy.jwt_verify import TokenError, parse_jwks

_OIDC_KEYS: Final = frozenset(
    {
        "issuer",
        "audience",
        "jwks",
        "jwks_url",
        "introspection_url",
        "client_id",
        "client_secret_env",
        "scopes",
        "resource_url",
    }
)


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks: Any = None
    jwks_url: str | None = None
    introspection_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: tuple[str, ...] = ()
    resource_url: str | None = None


@dataclass(frozen=True, slots=True)
class CedarConfig:
    policies: tuple[str, ...]
    entities_json: str = "[]"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """``oidc`` None means anonymous callers (authorization may still apply, to ``Client::"anonymous"``)."""

    oidc: OidcConfig | None = None
    authz: CedarConfig | None = None


def _url(value: object, where: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
        problems.append(f"{where}: must be an http(s) URL")
        return None
    return value


def _text(raw: Mapping[str, Any], key: str, where: str, problems: list[str], *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            problems.append(f"{where}.{key}: required")
        return None
    if not isinstance(value, str) or not value:
        problems.append(f"{where}.{key}: must be a non-empty string")
        return None
    return value


def parse_auth(raw: object, environ: Mapping[str, str], problems: list[str]) -> AuthConfig | None:
    """The auth configuration, or None for an anonymous endpoint without authorization."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("auth: must be an object")
        return None
    unknown = sorted(set(raw) - {"mode", "oidc", "authz"})
    if unknown:
        problems.append(f"auth: unknown keys {unknown}")
    mode = raw.get("mode", "anonymous")
    oidc: OidcConfig | None = None
    if mode == "oidc":
        oidc = _oidc(raw.get("oidc"), environ, problems)
    elif mode != "anonymous":
        problems.append(f"auth.mode: must be 'anonymous' or 'oidc', got {mode!r}")
    elif raw.get("oidc") is not None:
        problems.append("auth.oidc: only with mode 'oidc'")
    authz = _authz(raw.get("authz"), problems)
    if oidc is None and authz is None:
        return None
    return AuthConfig(oidc, authz)


def _oidc(raw: object, environ: Mapping[str, str], problems: list[str]) -> OidcConfig | None:
    where = "auth.oidc"
    if not isinstance(raw, dict):
        problems.append(f"{where}: required with mode 'oidc' (an object)")
        return None
    unknown = sorted(set(raw) - _OIDC_KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    issuer = _text(raw, "issuer", where, problems, required=True)
    audience = _text(raw, "audience", where, problems, required=True)
    jwks = raw.get("jwks")
    if jwks is not None:
        try:
            parse_jwks(jwks)
        except TokenError as error:
            problems.append(f"{where}.jwks: {error}")
    jwks_url = _url(raw.get("jwks_url"), f"{where}.jwks_url", problems)
    introspection_url = _url(raw.get("introspection_url"), f"{where}.introspection_url", problems)
    if jwks is None and jwks_url is None and introspection_url is None:
        problems.append(f"{where}: set jwks, jwks_url or introspection_url (how tokens are checked)")
    client_id = _text(raw, "client_id", where, problems)
    secret_env = _text(raw, "client_secret_env", where, problems)
    secret = None
    if secret_env is not None:
        secret = environ.get(secret_env)
        if not secret:
            problems.append(f"{where}.client_secret_env: environment variable {secret_env} is not set or empty")
    scopes = raw.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s and " " not in s for s in scopes):
        problems.append(f"{where}.scopes: must be a list of scope names")
        scopes = []
    resource_url = _url(raw.get("resource_url"), f"{where}.resource_url", problems)
    if issuer is None or audience is None:
        return None
    return OidcConfig(
        issuer, audience, jwks, jwks_url, introspection_url, client_id, secret, tuple(scopes), resource_url
    )


def _authz(raw: object, problems: list[str]) -> CedarConfig | None:
    if raw is None:
        return None
    where = "auth.authz"
    if not isinstance(raw, dict) or raw.get("type") != "cedarv1" or not isinstance(raw.get("cedar"), dict):
        problems.append(f'{where}: must be {{"version": "1.0", "type": "cedarv1", "cedar": {{...}}}}')
        return None
    cedar = raw["cedar"]
    policies = cedar.get("policies")
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        problems.append(f"{where}.cedar.policies: must be a list of strings")
        return None
    entities = cedar.get("entities_json", "[]") or "[]"
    if not isinstance(entities, str):
        problems.append(f"{where}.cedar.entities_json: must be a string of JSON")
        return None
    from toolhive_apply.proxy.cedar import CedarError, PolicySet, parse_entities

    try:
        parse_entities(json.loads(entities))
    except (ValueError, CedarError) as error:
        problems.append(f"{where}.cedar.entities_json: {error}")
    for index, text in enumerate(policies):
        try:
            PolicySet.parse(text)
        except CedarError as error:
            problems.append(f"{where}.cedar.policies[{index}]: {error}")
    return CedarConfig(tuple(policies), entities)
