"""The Vault store never follows a redirect: no token, secret_id or JWT may reach where a 307 points (#22.7).

A real OpenBao dev server sits behind a recorder on 127.0.0.1 that forwards to it and logs every request; the
store talks to a redirector (plain HTTP, or HTTPS with a throwaway CA) that answers every request with a
redirect to the recorder. Followed, each login or call would succeed and the recorder would hold the
credentials; refused, the recorder sees nothing and the error names where the server pointed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.loopback import Handler, LoopbackServer, TlsFiles, forward, make_tls, serving
from tests.support.openbao import OpenBao, openbao_server
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import StoreError, StoreFailure
from toolhive_apply.stores.vault import VaultOptions, VaultStore
from toolhive_apply.stores.vault_settings import parse_vault_settings

METHODS = ("token", "approle", "jwt", "kubernetes")


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        server.writer_policy("writer")
        server.enable_jwt("ci", ["writer"])
        yield server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def recorder(bao: OpenBao) -> Iterator[LoopbackServer]:
    with serving({"*": forward(bao.address)}) as server:
        yield server


def redirect_to(target: LoopbackServer, status: int) -> Any:
    def route(handler: Handler) -> None:
        handler.redirect(target.url(handler.path), status)

    return route


def store_for(bao: OpenBao, address: str, method: str, tmp_path: Path, **options: Any) -> tuple[VaultStore, list[str]]:
    """A store logging in with `method`; returns it and the credentials that must never reach the recorder."""
    env = {"HOME": str(tmp_path)}
    auth: dict[str, Any] = {"method": method}
    if method == "token":
        env["VAULT_TOKEN"] = bao.create_token(["writer"])
    elif method == "approle":
        role_id, secret_id = bao.enable_approle(f"r-{uuid.uuid4().hex[:6]}", ["writer"])
        auth["role_id"] = role_id
        env["VAULT_SECRET_ID"] = secret_id
    elif method == "jwt":
        auth.update(role="ci", jwt_env="CI_JWT")
        env["CI_JWT"] = bao.sign_jwt()
    else:
        token_file = tmp_path / "sa-token"
        token_file.write_text(f"k8s-jwt-{uuid.uuid4().hex}")
        auth.update(role="ci", token_file=str(token_file))
        env["K8S_CANARY"] = token_file.read_text()
    settings = {"address": address, "path_prefix": f"t-{uuid.uuid4().hex[:8]}", "auth": auth, **options}
    store = VaultStore(parse_vault_settings(settings, env), env, VaultOptions())
    credentials = [v for k, v in env.items() if k != "HOME"]
    return store, credentials


def test_the_recorder_sees_credentials_when_it_is_the_address(
    bao: OpenBao, recorder: LoopbackServer, tmp_path: Path
) -> None:
    """The control: talking to the recorder directly works and shows the token, so 'nothing arrived' means something."""
    store, credentials = store_for(bao, recorder.url(), "approle", tmp_path)
    store.write("k", SecretValue("v"), expected_version=None, stack="s", digest="d")
    arrived = [r.body + str(r.headers).encode() for r in recorder.received]
    assert any(credentials[0].encode() in item for item in arrived)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_redirect_is_refused_and_no_credential_reaches_its_target(
    bao: OpenBao, recorder: LoopbackServer, tls: TlsFiles, tmp_path: Path, method: str, scheme: str
) -> None:
    with serving({"*": redirect_to(recorder, 307)}, tls if scheme == "https" else None) as redirector:
        options = {"ca_cert": str(tls.ca)} if scheme == "https" else {}
        store, credentials = store_for(bao, redirector.url(), method, tmp_path, **options)
        with pytest.raises(StoreError) as caught:
            store.write("k", SecretValue("v"), expected_version=None, stack="s", digest="d")
        assert len(redirector.received) == 1  # the first request; nothing was retried elsewhere
    assert recorder.received == []
    error = caught.value
    assert error.failure is StoreFailure.REDIRECTED
    assert f"redirected (HTTP 307) to {recorder.url()}" in error.message
    assert "never followed" in error.message and error.hint is not None and "active node" in error.hint
    text = f"{error} {error.message} {error.hint} {error.as_json()}"
    assert not [c for c in credentials if c in text]


@pytest.mark.parametrize("status", [301, 302, 303, 308])
def test_every_redirect_status_is_refused_even_on_a_session_the_caller_passed(
    bao: OpenBao, recorder: LoopbackServer, tmp_path: Path, status: int
) -> None:
    with serving({"*": redirect_to(recorder, status)}) as redirector:
        env = {"HOME": str(tmp_path), "VAULT_TOKEN": bao.create_token(["writer"])}
        settings = parse_vault_settings({"address": redirector.url()}, env)
        store = VaultStore(settings, env, VaultOptions(session=requests.Session()))
        with pytest.raises(StoreError, match=rf"redirected \(HTTP {status}\)"):
            store.list()
    assert recorder.received == []
