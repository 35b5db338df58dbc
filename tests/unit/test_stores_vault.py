"""Vault store pieces that need no server (settings, lease arithmetic) and faults only a scripted fake can produce
(HTTP 500/429, a dropped connection, Kubernetes login). Everything else is tested against real OpenBao in
tests/integration/test_stores_vault.py."""

from __future__ import annotations

import traceback
import uuid
from pathlib import Path

import pytest

from tests.support.fake_vault import DROP, fake_vault
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import StoreConfigError, StoreError, StoreFailure
from toolhive_apply.stores.factory import open_store
from toolhive_apply.stores.vault import VaultStore
from toolhive_apply.stores.vault_auth import Lease
from toolhive_apply.stores.vault_settings import AuthMethod, parse_vault_settings


def assert_no_leak(error: BaseException, *values: str) -> None:
    rendered = "".join(traceback.format_exception(error))
    extra: object = getattr(error, "as_json", dict)()
    for value in values:
        assert value not in f"{error} {error!r} {getattr(error, 'hint', '')} {extra} {rendered}"


# -- settings --------------------------------------------------------------------------------------------------


def test_address_namespace_and_ca_fall_back_to_the_vault_cli_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = parse_vault_settings(
        {}, {"VAULT_ADDR": "https://vault:8200/", "VAULT_NAMESPACE": "team", "VAULT_CACERT": str(ca)}
    )
    assert (settings.address, settings.namespace, settings.verify) == ("https://vault:8200", "team", str(ca))
    assert (settings.mount, settings.path_prefix, settings.auth.method) == ("secret", "toolhive", AuthMethod.TOKEN)
    assert settings.location == "https://vault:8200 (secret/toolhive, namespace team)"


def test_vault_skip_verify_is_not_honoured() -> None:
    settings = parse_vault_settings({"address": "https://vault:8200"}, {"VAULT_SKIP_VERIFY": "true"})
    assert settings.verify is True


def test_manifest_settings_win_over_the_environment() -> None:
    settings = parse_vault_settings(
        {"address": "http://a:1", "mount": "/kv/", "path_prefix": "/apps/web/", "namespace": "n1"},
        {"VAULT_ADDR": "http://b:2", "VAULT_NAMESPACE": "n2"},
    )
    assert (settings.address, settings.mount, settings.path_prefix, settings.namespace) == (
        "http://a:1",
        "kv",
        "apps/web",
        "n1",
    )


@pytest.mark.parametrize(
    ("settings", "environ", "message"),
    [
        ({}, {}, "has no address: set settings.secrets.vault.address or VAULT_ADDR"),
        ({"address": "vault:8200"}, {}, "must start with http:// or https://"),
        ({"address": "https://u:pw-canary@v"}, {}, r"'https://\*\*\*@v' must not carry credentials"),
        ({}, {"VAULT_ADDR": "https://v/?token=tok-canary"}, r"'https://v/\?token=\*\*\*' must not carry"),
        ({"address": "http://v", "ca_cert": "/nonexistent/ca.pem"}, {}, "CA certificate /nonexistent/ca.pem"),
        ({"address": "http://v", "auth": {"method": "ldap"}}, {}, "'ldap' is not one of token, approle"),
        ({"address": "http://v", "auth": {"method": "approle"}}, {}, "role_id \\(or VAULT_ROLE_ID\\) is required"),
        ({"address": "http://v", "auth": {"method": "jwt", "jwt_env": "J"}}, {}, "role is required for jwt"),
        ({"address": "http://v", "auth": {"method": "oidc", "role": "r"}}, {}, "set jwt_env or jwt_file"),
        ({"address": "http://v", "auth": {"method": "kubernetes"}}, {}, "role is required for kubernetes"),
    ],
)
def test_unusable_settings_are_reported_before_any_request(
    settings: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(StoreConfigError, match=message):
        open_store({"provider": "vault", "vault": settings}, environ)


def test_auth_mount_defaults_to_the_method_name_and_role_id_to_vault_role_id() -> None:
    auth = parse_vault_settings({"address": "http://v", "auth": {"method": "approle"}}, {"VAULT_ROLE_ID": "rid"}).auth
    assert (auth.mount, auth.role_id, auth.secret_id_env) == ("approle", "rid", "VAULT_SECRET_ID")


def test_opening_a_store_touches_no_network() -> None:
    store = open_store({"provider": "vault", "vault": {"address": "http://127.0.0.1:9"}}, {})
    assert store.describe()["capabilities"] == {
        "can_read": True,
        "can_write": True,
        "can_delete": True,
        "can_list": True,
        "can_cleanup": True,
    }
    assert store.endpoint == "http://127.0.0.1:9 (secret/toolhive)"


# -- token lease arithmetic ------------------------------------------------------------------------------------


def test_a_lease_is_due_when_less_than_the_threshold_or_half_its_life_remains() -> None:
    long = Lease(ttl=3600, renewable=True, obtained=0)
    short = Lease(ttl=60, renewable=True, obtained=0)
    forever = Lease(ttl=0, renewable=False, obtained=0)
    assert not long.due(3000, renew_below=300) and long.due(3301, renew_below=300)
    assert not short.due(29, renew_below=300) and short.due(31, renew_below=300)
    assert not forever.due(10**9, renew_below=300)


# -- faults only the fake can produce ------------------------------------------------------------------------


def fake_store(address: str, **auth: str) -> VaultStore:
    settings = {"address": address, "auth": auth} if auth else {"address": address}
    store = open_store({"provider": "vault", "vault": settings}, {"VAULT_TOKEN": "t0k3n", "HOME": "/nonexistent"})
    assert isinstance(store, VaultStore)
    return store


@pytest.mark.parametrize(
    ("reply", "failure", "words"),
    [
        ((500, {"errors": ["srv-text-boom"]}), StoreFailure.SERVER_ERROR, "internal server error (HTTP 500)"),
        ((429, {"errors": ["srv-text-quota"]}), StoreFailure.RATE_LIMITED, "rate limited (HTTP 429)"),
        ((502, {}), StoreFailure.SERVER_ERROR, "bad gateway (HTTP 502)"),
        (DROP, StoreFailure.CONNECTION_LOST, "the connection was dropped"),
    ],
)
def test_server_faults_become_one_clear_error_naming_address_and_key_path(
    reply: object, failure: StoreFailure, words: str
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    with fake_vault() as fake:
        fake.on(None, "/v1/secret/data/toolhive/api-key", lambda _: reply)  # type: ignore[arg-type,return-value]
        store = fake_store(fake.address)
        with pytest.raises(StoreError) as caught:
            store.write("api-key", SecretValue(canary), expected_version=None, stack="s", digest="d")

    error = caught.value
    assert error.failure is failure
    assert str(error).startswith(f"Vault secret store at {fake.address} is not available: {words}")
    assert str(error).endswith("on write secret/data/toolhive/api-key")
    assert error.__context__ is None and error.__cause__ is None
    assert_no_leak(error, canary, "srv-text", "t0k3n")


def test_an_error_echoing_the_request_never_reaches_the_message() -> None:
    canary = f"canary-{uuid.uuid4().hex}"

    def echo(seen: object) -> tuple[int, dict[str, object]]:
        return 400, {"errors": [f"bad request body: {getattr(seen, 'body', '')}"]}

    with fake_vault() as fake:
        fake.on("POST", "/v1/secret/data/toolhive/k", echo)
        with pytest.raises(StoreError) as caught:
            fake_store(fake.address).write("k", SecretValue(canary), expected_version=None, stack="s", digest="d")
    assert caught.value.failure is StoreFailure.REJECTED
    assert_no_leak(caught.value, canary)


def test_kubernetes_login_sends_the_service_account_token_and_uses_the_token_it_gets(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sa-jwt\n")
    with fake_vault() as fake:
        fake.on(
            "POST",
            "/v1/auth/k8s/login",
            (200, {"auth": {"client_token": "from-k8s", "lease_duration": 3600, "renewable": True}}),
        )
        fake.on("GET", "/v1/secret/data/toolhive/k", (200, {"data": {"data": {"value": "v"}, "metadata": {}}}))
        store = fake_store(fake.address, method="kubernetes", role="toolhive", mount="k8s", token_file=str(token_file))
        value = store.read("k")

    login = next(s for s in fake.seen if s.path == "/v1/auth/k8s/login")
    read = next(s for s in fake.seen if s.path.startswith("/v1/secret/data/"))
    assert value is not None and value.reveal() == "v"
    assert login.body == {"role": "toolhive", "jwt": "sa-jwt"}
    assert "X-Vault-Token" not in login.headers
    assert read.headers["X-Vault-Token"] == "from-k8s"


def test_a_missing_service_account_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with fake_vault() as fake:
        store = fake_store(fake.address, method="kubernetes", role="r", token_file=str(tmp_path / "absent"))
        with pytest.raises(StoreConfigError, match="cannot read the Kubernetes service-account token"):
            store.read("k")
