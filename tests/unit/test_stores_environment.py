"""The read-only environment store (ToolHive's `environment` provider) and the store factory's choices."""

from __future__ import annotations

import pytest

from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import SecretNameError, StoreConfigError, StoreKind, StoreReadOnlyError, open_store
from toolhive_apply.stores.encrypted import EncryptedStore
from toolhive_apply.stores.environment import EnvironmentStore


def test_secret_x_is_the_variable_toolhive_secret_x() -> None:
    store = open_store({"provider": "environment"}, {"TOOLHIVE_SECRET_github": "ghp_1", "github": "not this"})
    value = store.read("github")
    assert isinstance(store, EnvironmentStore)
    assert value is not None and value.reveal() == "ghp_1"
    assert store.read("gitlab") is None


def test_an_empty_variable_is_an_empty_secret_not_a_missing_one() -> None:
    value = EnvironmentStore({"TOOLHIVE_SECRET_blank": ""}).read("blank")
    assert value is not None and value.reveal() == ""


def test_it_cannot_list_so_list_is_empty_and_describe_says_so() -> None:
    store = EnvironmentStore({"TOOLHIVE_SECRET_a": "1"})
    assert store.list() == []
    assert store.describe() == {
        "name": "default",
        "provider_type": "environment",
        "capabilities": {
            "can_read": True,
            "can_write": False,
            "can_delete": False,
            "can_list": False,
            "can_cleanup": False,
        },
    }


def test_write_and_delete_are_refused_with_what_to_do_instead() -> None:
    store = EnvironmentStore({})
    with pytest.raises(StoreReadOnlyError, match="read-only") as wrote:
        store.write("k", SecretValue("secret-value"), expected_version=None, stack="s", digest="d")
    with pytest.raises(StoreReadOnlyError, match="cannot delete secret 'k'"):
        store.delete("k", stack="s")
    assert wrote.value.hint is not None and "TOOLHIVE_SECRET_k" in wrote.value.hint
    assert "secret-value" not in str(wrote.value)


def test_reserved_names_are_refused_here_too() -> None:
    with pytest.raises(SecretNameError):
        EnvironmentStore({"TOOLHIVE_SECRET___thv_x": "v"}).read("__thv_x")


def test_the_default_store_is_toolhives_encrypted_file() -> None:
    store = open_store({}, {"HOME": "/home/someone"})
    assert isinstance(store, EncryptedStore)
    kind: StoreKind = store.kind
    assert kind == "encrypted"  # a StrEnum: callers may compare it with plain strings


def test_an_unknown_provider_names_the_choices() -> None:
    with pytest.raises(StoreConfigError, match=r"unknown secret store '1password'.*encrypted, vault, environment"):
        open_store({"provider": "1password"}, {})
