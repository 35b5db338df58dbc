"""The Vault store against a real OpenBao dev server (same HTTP API as HashiCorp Vault), started by the test.

Each test writes under its own path prefix, so one server serves the module; tests that seal or stop the server
get a fresh one of their own. Every error a test provokes is checked for a unique canary value.
"""

from __future__ import annotations

import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from tests.support.openbao import OpenBao, openbao_server
from toolhive_apply.errors import ConflictError
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import StoreConfigError, StoreError, StoreFailure
from toolhive_apply.stores.factory import open_store
from toolhive_apply.stores.vault import VaultOptions, VaultStore
from toolhive_apply.stores.vault_settings import parse_vault_settings

CANARY = f"canary-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        server.writer_policy("writer")
        yield server


@pytest.fixture
def fresh_bao() -> Iterator[OpenBao]:
    with openbao_server() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


class Calls:
    """Counts HTTP requests through a requests hook on the session hvac uses."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.session = requests.Session()
        self.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.log.append((response.request.method or "", urlparse(response.request.url or "").path))

    def since(self, start: int) -> list[tuple[str, str]]:
        return self.log[start:]

    def paths(self, fragment: str) -> list[tuple[str, str]]:
        return [call for call in self.log if fragment in call[1]]


def make_store(
    bao: OpenBao,
    prefix: str,
    *,
    environ: dict[str, str] | None = None,
    calls: Calls | None = None,
    clock: Callable[[], float] | None = None,
    use_index: bool = True,
    **vault: Any,
) -> VaultStore:
    env = {"HOME": str(bao.home), "VAULT_TOKEN": bao.root_token} if environ is None else environ
    settings = parse_vault_settings({"address": bao.address, "path_prefix": prefix, **vault}, env)
    options = VaultOptions(session=calls.session if calls else None, use_index=use_index)
    if clock is not None:
        options = VaultOptions(session=options.session, use_index=use_index, clock=clock)
    return VaultStore(settings, env, options)


def put(store: VaultStore, key: str, value: str = CANARY, expected: int | None = None, stack: str = "s1") -> None:
    store.write(key, SecretValue(value), expected_version=expected, stack=stack, digest=f"hmac:{key}:{expected}")


def assert_no_leak(error: BaseException, *values: str) -> None:
    rendered = "".join(traceback.format_exception(error))
    text = f"{error} {error!r} {getattr(error, 'hint', '')} {getattr(error, 'as_json', dict)()} {rendered}"
    for value in (CANARY, *values):
        assert value not in text


def read(store: VaultStore, key: str) -> str | None:
    value = store.read(key)
    return None if value is None else value.reveal()


# -- logins ----------------------------------------------------------------------------------------------------


def test_token_login_from_vault_token_writes_and_reads(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix)
    put(store, "api-key")
    assert read(store, "api-key") == CANARY
    assert read(store, "absent") is None
    assert bao.client().secrets.kv.v2.read_secret_version(f"{prefix}/api-key", raise_on_deleted_version=False)["data"][
        "data"
    ] == {"value": CANARY}


def test_token_login_from_the_vault_token_file_in_home(bao: OpenBao, prefix: str, tmp_path: Path) -> None:
    (tmp_path / ".vault-token").write_text(bao.root_token + "\n")
    store = make_store(bao, prefix, environ={"HOME": str(tmp_path)})
    put(store, "k")
    assert read(store, "k") == CANARY


def test_no_token_anywhere_is_a_configuration_error_not_an_ambient_token(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix, environ={"HOME": str(bao.home)})
    with pytest.raises(StoreConfigError, match=r"VAULT_TOKEN is not set and .*/\.vault-token does not exist"):
        store.read("k")


def test_an_invalid_token_is_refused_with_the_address_and_key_path(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix, environ={"HOME": str(bao.home), "VAULT_TOKEN": "s.not-a-token"})
    with pytest.raises(StoreError) as caught:
        put(store, "k")
    error = caught.value
    assert error.failure is StoreFailure.UNAUTHENTICATED
    assert f"Vault secret store at {bao.address} is not available: the token was refused" in str(error)
    assert f"on token login, before write secret/data/{prefix}/k" in str(error)
    assert error.path == f"secret/data/{prefix}/k"
    assert_no_leak(error, "s.not-a-token")


def test_approle_login_with_secret_id_from_the_environment_or_a_file(bao: OpenBao, prefix: str, tmp_path: Path) -> None:
    role_id, secret_id = bao.enable_approle("ci", ["writer"])
    from_env = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "CI_SECRET": secret_id},
        auth={"method": "approle", "role_id": role_id, "secret_id_env": "CI_SECRET"},
    )
    put(from_env, "k")
    (tmp_path / "secret-id").write_text(secret_id)
    from_file = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "VAULT_ROLE_ID": role_id},
        auth={"method": "approle", "secret_id_file": str(tmp_path / "secret-id")},
    )
    assert read(from_file, "k") == CANARY


def test_approle_login_with_a_wrong_secret_id_is_refused(bao: OpenBao, prefix: str) -> None:
    role_id, _ = bao.enable_approle("ci-wrong", ["writer"])
    store = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "VAULT_SECRET_ID": "wrong-id"},
        auth={"method": "approle", "role_id": role_id},
    )
    with pytest.raises(StoreError) as caught:
        store.read("k")
    assert caught.value.failure is StoreFailure.UNAUTHENTICATED
    assert "the approle login at auth/approle was refused" in str(caught.value)
    assert_no_leak(caught.value, "wrong-id")


@pytest.mark.parametrize("method", ["jwt", "oidc"])
def test_jwt_and_oidc_login_with_a_locally_signed_token(bao: OpenBao, prefix: str, tmp_path: Path, method: str) -> None:
    mount = f"{method}-{prefix}"
    bao.enable_jwt("deployer", ["writer"], mount=mount)
    token = bao.sign_jwt(mount=mount)
    store = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "CI_JWT": token},
        auth={"method": method, "mount": mount, "role": "deployer", "jwt_env": "CI_JWT"},
    )
    put(store, "k")
    (tmp_path / "jwt").write_text(token)
    from_file = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home)},
        auth={"method": method, "mount": mount, "role": "deployer", "jwt_file": str(tmp_path / "jwt")},
    )
    assert read(from_file, "k") == CANARY


def test_a_jwt_for_the_wrong_audience_is_refused(bao: OpenBao, prefix: str) -> None:
    mount = f"jwt-aud-{prefix}"
    bao.enable_jwt("deployer", ["writer"], mount=mount)
    token = bao.sign_jwt(mount=mount, audience="someone-else")
    store = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "J": token},
        auth={"method": "jwt", "mount": mount, "role": "deployer", "jwt_env": "J"},
    )
    with pytest.raises(StoreError, match=f"the jwt login at auth/{mount} was refused") as caught:
        store.read("k")
    assert_no_leak(caught.value, token)


# -- KV v2 semantics -------------------------------------------------------------------------------------------


def test_updates_create_new_versions_and_reads_return_the_latest(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix)
    put(store, "k", "one")
    put(store, "k", "two", expected=1)
    put(store, "k", "three", expected=2)
    metadata = bao.client().secrets.kv.v2.read_secret_metadata(f"{prefix}/k")["data"]
    assert read(store, "k") == "three"
    assert metadata["current_version"] == 3 and sorted(metadata["versions"]) == ["1", "2", "3"]
    assert [(s.key, s.version) for s in store.list()] == [("k", 3)]


def test_ownership_is_recorded_in_custom_metadata(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix)
    store.write(
        "k", SecretValue(CANARY), expected_version=None, stack="web", digest="hmac-sha256:ab", description="API key"
    )
    custom = bao.client().secrets.kv.v2.read_secret_metadata(f"{prefix}/k")["data"]["custom_metadata"]
    assert custom == {
        "managed-by": "toolhive-apply",
        "stack": "web",
        "digest": "hmac-sha256:ab",
        "digest-version": "1",
        "description": "API key",
    }
    [record] = make_store(bao, prefix, use_index=False).list()
    assert (record.managed_by, record.stack, record.digest, record.version, record.description) == (
        "toolhive-apply",
        "web",
        "hmac-sha256:ab",
        1,
        "API key",
    )


def test_check_and_set_conflict_when_another_writer_changed_the_key(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix)
    put(store, "k")
    [seen] = store.list()
    bao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/k", {"value": "someone else"})

    with pytest.raises(ConflictError) as caught:
        put(store, "k", expected=seen.version)
    with pytest.raises(ConflictError) as exists:
        put(store, "k", expected=None)

    assert f"secret 'k' in {store.endpoint} changed since it was read: expected it to be at version 1" in str(
        caught.value
    )
    assert "expected it not to exist, but it already exists" in str(exists.value)
    assert_no_leak(caught.value)
    assert_no_leak(exists.value)
    [after] = store.list()  # the conflict repaired the index: version 2, digest unknown (changed outside)
    assert (after.version, after.digest, after.stack) == (2, None, "s1")
    put(store, "k", expected=2)


def test_delete_removes_only_secrets_the_stack_owns(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix)
    put(store, "ours", stack="s1")
    put(store, "theirs", stack="s2")
    bao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/manual", {"value": "x"})

    with pytest.raises(ConflictError, match=r"'theirs' .* belongs to stack 's2', not 's1'; refusing to delete it"):
        store.delete("theirs", stack="s1")
    with pytest.raises(ConflictError, match=r"'manual' .* belongs to no toolhive-apply stack"):
        store.delete("manual", stack="s1")
    store.delete("ours", stack="s1")
    store.delete("ours", stack="s1")  # already gone: nothing to do

    assert [s.key for s in store.list()] == ["manual", "theirs"]
    assert bao.client().secrets.kv.v2.list_secrets(prefix)["data"]["keys"] == [
        ".toolhive-apply-index",
        "manual",
        "theirs",
    ]


def test_a_non_default_mount_and_nested_path_prefix(bao: OpenBao, prefix: str) -> None:
    mount = f"kv-{prefix}"
    bao.enable_kv2(mount)
    store = make_store(bao, f"teams/{prefix}/", mount=mount)
    put(store, "k")
    assert read(store, "k") == CANARY
    assert store.endpoint == f"{bao.address} ({mount}/teams/{prefix})"
    data = bao.client().secrets.kv.v2.read_secret_version(
        f"teams/{prefix}/k", mount_point=mount, raise_on_deleted_version=False
    )
    assert data["data"]["data"] == {"value": CANARY}
    assert [s.key for s in store.list()] == ["k"]


def test_a_missing_mount_is_reported_with_the_path(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix, mount="no-such-mount")
    with pytest.raises(StoreError) as caught:
        put(store, "k")
    assert caught.value.failure is StoreFailure.NO_MOUNT
    assert f"no secrets engine is mounted there (HTTP 404), on write no-such-mount/data/{prefix}/k" in str(caught.value)
    assert_no_leak(caught.value)


def test_a_kv_version_1_mount_is_refused_before_anything_is_written(bao: OpenBao, prefix: str) -> None:
    mount = f"kv1-{prefix}"
    bao.enable_kv1(mount)
    store = make_store(bao, prefix, mount=mount)
    with pytest.raises(StoreError, match=f"{mount}/ is a kv engine \\(version 1\\), not KV version 2") as caught:
        put(store, "k")
    assert caught.value.failure is StoreFailure.NO_MOUNT
    assert bao.client().list(f"{mount}/") is None  # nothing landed in the v1 engine


def test_a_policy_that_denies_gives_a_403_naming_the_path(bao: OpenBao, prefix: str) -> None:
    token = bao.create_token([bao.deny_policy()])
    store = make_store(bao, prefix, environ={"HOME": str(bao.home), "VAULT_TOKEN": token})
    with pytest.raises(StoreError) as caught:
        put(store, "k")
    error = caught.value
    assert error.failure is StoreFailure.FORBIDDEN
    assert str(error) == (
        f"Vault secret store at {bao.address} is not available: permission denied (HTTP 403), "
        f"on write secret/data/{prefix}/k"
    )
    assert error.path == f"secret/data/{prefix}/k"
    assert error.hint is not None and f"secret/data/{prefix}/k" in error.hint
    assert_no_leak(error, token)


# -- listing -------------------------------------------------------------------------------------------------


def test_list_costs_two_calls_with_the_index_and_still_sees_keys_written_without_it(bao: OpenBao, prefix: str) -> None:
    calls = Calls()
    store = make_store(bao, prefix, calls=calls)
    for i in range(5):
        put(store, f"k{i}")
    bao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/by-hand", {"value": "x"})
    put(make_store(bao, prefix, use_index=False), "no-index", stack="s2")

    start = len(calls.log)
    listed = store.list()
    first = calls.since(start)

    assert [s.key for s in listed] == ["by-hand", "k0", "k1", "k2", "k3", "k4", "no-index"]
    assert [m for m, _ in first] == ["LIST", "GET", "GET", "GET"]  # LIST + index + metadata of the 2 unindexed
    assert sorted(p.rsplit("/", 1)[-1] for m, p in first[2:]) == ["by-hand", "no-index"]
    assert next(s for s in listed if s.key == "no-index").stack == "s2"
    put(store, "k5")  # any write through the index adds the key; keys written without it still cost one read each
    start = len(calls.log)
    store.list()
    assert len(calls.since(start)) == 4


def test_list_of_indexed_keys_is_exactly_two_calls(bao: OpenBao, prefix: str) -> None:
    calls = Calls()
    store = make_store(bao, prefix, calls=calls)
    for i in range(20):
        put(store, f"k{i:02}")
    start = len(calls.log)
    listed = store.list()
    assert len(listed) == 20
    assert calls.since(start) == [
        ("LIST", f"/v1/secret/metadata/{prefix}"),
        ("GET", f"/v1/secret/data/{prefix}/.toolhive-apply-index"),
    ]


def test_an_empty_prefix_lists_nothing_in_one_call(bao: OpenBao, prefix: str) -> None:
    calls = Calls()
    store = make_store(bao, prefix, calls=calls)
    store.read("warm-up")
    start = len(calls.log)
    assert store.list() == []
    assert len(calls.since(start)) == 1


# -- the token's life ----------------------------------------------------------------------------------------


def test_a_token_near_expiry_is_renewed_before_the_next_operation(bao: OpenBao, prefix: str) -> None:
    now = [0.0]
    calls = Calls()
    token = bao.create_token(["writer"], ttl="1h")
    env = {"HOME": str(bao.home), "VAULT_TOKEN": token}
    store = make_store(bao, prefix, environ=env, calls=calls, clock=lambda: now[0])
    put(store, "k")
    assert calls.paths("renew-self") == []
    now[0] = 3600 - 100  # 100 s left: below the 300 s threshold
    assert read(store, "k") == CANARY
    assert len(calls.paths("renew-self")) == 1
    assert read(store, "k") == CANARY  # renewed lease counts from now: no second renewal
    assert len(calls.paths("renew-self")) == 1


def test_a_login_whose_token_cannot_be_renewed_logs_in_again(bao: OpenBao, prefix: str) -> None:
    role_id, secret_id = bao.enable_approle("batch", ["writer"], token_type="batch", token_ttl="1h")
    now = [0.0]
    calls = Calls()
    store = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "VAULT_SECRET_ID": secret_id},
        calls=calls,
        clock=lambda: now[0],
        auth={"method": "approle", "role_id": role_id},
    )
    put(store, "k")
    assert len(calls.paths("/auth/approle/login")) == 1
    now[0] = 3500
    assert read(store, "k") == CANARY
    assert len(calls.paths("/auth/approle/login")) == 2
    assert calls.paths("renew-self") == []


def test_a_revoked_login_token_is_replaced_by_logging_in_again(bao: OpenBao, prefix: str) -> None:
    role_id, secret_id = bao.enable_approle("revoked", ["writer"])
    store = make_store(
        bao,
        prefix,
        environ={"HOME": str(bao.home), "VAULT_SECRET_ID": secret_id},
        auth={"method": "approle", "role_id": role_id},
    )
    put(store, "k")
    bao.client().auth.token.revoke(store.client.token)
    assert read(store, "k") == CANARY


def test_a_revoked_given_token_is_a_clear_error(bao: OpenBao, prefix: str) -> None:
    token = bao.create_token(["writer"])
    store = make_store(bao, prefix, environ={"HOME": str(bao.home), "VAULT_TOKEN": token})
    put(store, "k")
    bao.client().auth.token.revoke(token)
    with pytest.raises(StoreError) as caught:
        put(store, "k", expected=1)
    assert caught.value.failure is StoreFailure.UNAUTHENTICATED
    assert f"the token is no longer valid (expired or revoked), on write secret/data/{prefix}/k" in str(caught.value)
    assert_no_leak(caught.value, token)


# -- a server that goes away ---------------------------------------------------------------------------------


def test_a_sealed_server_is_a_clear_503_error(fresh_bao: OpenBao, prefix: str) -> None:
    store = make_store(fresh_bao, prefix)
    put(store, "k")
    fresh_bao.seal()
    with pytest.raises(StoreError) as caught:
        put(store, "k", expected=1)
    error = caught.value
    assert error.failure is StoreFailure.SEALED
    assert str(error) == (
        f"Vault secret store at {fresh_bao.address} is not available: the server is sealed (HTTP 503), "
        f"on write secret/data/{prefix}/k"
    )
    assert error.hint is not None and "unseal" in error.hint
    assert_no_leak(error)
    fresh_bao.unseal()
    assert read(store, "k") == CANARY


def test_a_server_stopped_mid_run_is_not_available(fresh_bao: OpenBao, prefix: str) -> None:
    store = make_store(fresh_bao, prefix)
    put(store, "k")
    fresh_bao.stop()
    with pytest.raises(StoreError) as caught:
        put(store, "k", expected=1)
    error = caught.value
    assert error.failure is StoreFailure.UNREACHABLE
    assert str(error) == (
        f"Vault secret store at {fresh_bao.address} is not available: cannot connect (connection refused or "
        f"unknown host), on write secret/data/{prefix}/k"
    )
    assert_no_leak(error)


def test_nothing_the_store_returns_or_raises_shows_a_value(bao: OpenBao, prefix: str) -> None:
    store = make_store(bao, prefix)
    put(store, "k")
    value = store.read("k")
    shown = f"{value} {value!r} {store.list()} {store!r} {store.describe()} {store.endpoint}"
    assert CANARY not in shown
    assert bao.root_token not in shown


def test_open_store_builds_a_vault_store_from_manifest_settings(bao: OpenBao, prefix: str) -> None:
    store = open_store(
        {"provider": "vault", "vault": {"address": bao.address, "path_prefix": prefix}},
        {"HOME": str(bao.home), "VAULT_TOKEN": bao.root_token},
    )
    store.write("k", SecretValue(CANARY), expected_version=None, stack="s", digest="d")
    assert [s.key for s in store.list()] == ["k"]


def test_tls_is_always_verified_and_vault_skip_verify_is_ignored(prefix: str) -> None:
    with openbao_server(tls=True) as bao:
        assert bao.ca_cert is not None
        env = {"HOME": str(bao.home), "VAULT_TOKEN": bao.root_token, "VAULT_SKIP_VERIFY": "true"}
        unverified = make_store(bao, prefix, environ=env)
        with pytest.raises(StoreError) as caught:
            put(unverified, "k")
        trusted = make_store(bao, prefix, environ=env, ca_cert=str(bao.ca_cert))
        put(trusted, "k")
        from_env = make_store(bao, prefix, environ={**env, "VAULT_CACERT": str(bao.ca_cert)})
        assert read(from_env, "k") == CANARY

    error = caught.value
    assert error.failure is StoreFailure.TLS
    assert f"TLS verification failed, on token login, before write secret/data/{prefix}/k" in str(error)
    assert error.path == f"secret/data/{prefix}/k"
    assert error.hint is not None and "ignores VAULT_SKIP_VERIFY" in error.hint
    assert_no_leak(error, bao.root_token)


def test_a_namespace_from_settings_or_vault_namespace(bao: OpenBao, prefix: str) -> None:
    namespace = f"ns-{prefix}"
    bao.create_namespace(namespace)
    bao.enable_kv2("secret", namespace=namespace)
    store = make_store(bao, prefix, namespace=namespace)
    put(store, "k")

    env = {"HOME": str(bao.home), "VAULT_TOKEN": bao.root_token, "VAULT_NAMESPACE": namespace}
    assert read(make_store(bao, prefix, environ=env), "k") == CANARY
    assert read(make_store(bao, prefix), "k") is None  # the root namespace's secret/ does not have it
    assert store.endpoint == f"{bao.address} (secret/{prefix}, namespace {namespace})"


def test_a_write_through_a_warm_index_costs_three_calls(bao: OpenBao, prefix: str) -> None:
    calls = Calls()
    store = make_store(bao, prefix, calls=calls)
    put(store, "a")
    start = len(calls.log)
    put(store, "b")
    # a new key is claimed first (its metadata read, then written: VaultStore._claim), so a crash cannot orphan it
    assert [m for m, _ in calls.since(start)] == ["GET", "POST", "POST", "POST", "POST"]
    start = len(calls.log)
    put(store, "b", "new value", expected=1)
    assert [m for m, _ in calls.since(start)] == ["POST", "POST", "POST"]  # value, custom_metadata, index (CAS)


def test_concurrent_writers_keep_the_index_complete(bao: OpenBao, prefix: str) -> None:
    stores = [make_store(bao, prefix), make_store(bao, prefix)]  # two "processes", each used by three threads

    def writer(store: VaultStore, name: str) -> None:
        for i in range(8):
            put(store, f"{name}-{i}")

    threads = [
        threading.Thread(target=writer, args=(store, f"w{n}-{t}")) for n, store in enumerate(stores) for t in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    calls = Calls()
    reader = make_store(bao, prefix, calls=calls)
    reader.read("warm-up")
    start = len(calls.log)
    listed = reader.list()
    assert len(listed) == 48 and all(s.version == 1 and s.stack == "s1" for s in listed)
    assert len(calls.since(start)) == 2  # every key made it into the index
