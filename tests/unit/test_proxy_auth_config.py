"""The ``auth`` and ``strict_protocol_validation`` keys of THV_PROXY_CONFIG, as the host side writes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolhive_apply.proxy.config import ConfigError, load_config

BASE: dict[str, Any] = {"name": "w", "mode": "http", "listen_port": 8080, "upstream_url": "http://web:8080/mcp"}
OIDC = {"issuer": "https://idp/realms/a", "audience": "mcp", "jwks": {"keys": []}, "jwks_url": None}


def load(env: dict[str, str] | None = None, **extra: Any) -> Any:
    return load_config(json.dumps({**BASE, **extra}), env or {})


def problems(**extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**extra)
    return "\n".join(caught.value.problems)


def test_absent_or_anonymous_is_no_auth() -> None:
    assert load().auth is None and load(auth={"mode": "anonymous"}).auth is None
    assert load().strict_protocol_validation is False
    assert load(strict_protocol_validation=True).strict_protocol_validation is True


def test_oidc_with_the_secret_from_the_environment() -> None:
    oidc = {**OIDC, "introspection_url": "https://idp/introspect", "client_id": "p", "client_secret_env": "SECRET"}
    config = load({"SECRET": "s3cret"}, auth={"mode": "oidc", "oidc": {**oidc, "scopes": ["mcp"]}})
    assert config.auth.oidc.client_secret == "s3cret" and config.auth.oidc.scopes == ("mcp",)
    text = problems(auth={"mode": "oidc", "oidc": oidc})
    assert "SECRET is not set" in text and "s3cret" not in text


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"mode": "oidc"}, "auth.oidc: required"),
        ({"mode": "oidc", "oidc": {"issuer": "https://i"}}, "auth.oidc.audience: required"),
        ({"mode": "oidc", "oidc": {"issuer": "https://i", "audience": "a"}}, "set jwks, jwks_url or introspection_url"),
        ({"mode": "oidc", "oidc": {**OIDC, "jwks_url": "file:///etc/keys"}}, "jwks_url: must be an http(s) URL"),
        ({"mode": "oidc", "oidc": {**OIDC, "jwks": {"nokeys": 1}}}, 'with a "keys" list'),
        ({"mode": "oidc", "oidc": {**OIDC, "colour": 1}}, "unknown keys ['colour']"),
        ({"mode": "basic"}, "auth.mode"),
        (
            {"authz": {"version": "1.0", "type": "cedarv1", "cedar": {"policies": ["permit(principal, action, x);"]}}},
            "auth.authz.cedar.policies[0]: 1:27: expected 'resource'",
        ),
        (
            {"authz": {"type": "cedarv1", "cedar": {"policies": [], "entities_json": '[{"uid": 1}]'}}},
            "auth.authz.cedar.entities_json",
        ),
    ],
)
def test_bad_auth_is_reported(auth: dict[str, Any], expected: str) -> None:
    assert expected in problems(auth=auth)


def test_authz_without_oidc_applies_to_anonymous_callers() -> None:
    authz = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": ["permit(principal, action, resource);"]}}
    config = load(auth={"mode": "anonymous", "authz": authz})
    assert config.auth.oidc is None and config.auth.authz.policies == ("permit(principal, action, resource);",)
