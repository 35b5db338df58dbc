"""The read-only environment store (ToolHive's `environment` provider) and the store factory's choices."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import stat
from pathlib import Path

import pytest

from toolhive_apply.providers.secret import SecretResolver
from toolhive_apply.providers.stack_key import KEY_ENV as HMAC_KEY_ENV
from toolhive_apply.providers.stack_key import MIN_KEY_CHARS, StackKeyError
from toolhive_apply.redact import REDACTED, SecretValue, redact
from toolhive_apply.stores.base import SecretNameError, StoreConfigError, StoreKind, StoreReadOnlyError
from toolhive_apply.stores.encrypted import EncryptedStore
from toolhive_apply.stores.environment import EnvironmentStore
from toolhive_apply.stores.factory import open_store


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


# -- the key of the digests: random, secret, kept outside the read-only store ---------------------------------


def _resolver(environ: dict[str, str], stack: str = "demo") -> SecretResolver:
    return SecretResolver(lambda: EnvironmentStore(environ), stack)


def test_digests_are_keyed_by_a_random_local_key_not_by_anything_derivable(tmp_path: Path) -> None:
    """A key made from the stack name (public) would let a short secret be brute-forced from a saved plan."""
    value = SecretValue("hunter22")
    one = _resolver({"XDG_STATE_HOME": str(tmp_path / "a")})
    digest = one.digest(value)
    public = (
        "hmac-sha256:" + hmac.new(hashlib.sha256(b"toolhive-apply/demo").digest(), b"hunter22", "sha256").hexdigest()
    )
    assert digest != public
    assert one.warnings and "made a new digest key" in one.warnings[0]
    again = _resolver({"XDG_STATE_HOME": str(tmp_path / "a")})
    assert again.digest(value) == digest and again.warnings == []  # the same key next run: nothing "rotated"
    assert _resolver({"XDG_STATE_HOME": str(tmp_path / "b")}).digest(value) != digest  # another machine's key
    assert _resolver({"XDG_STATE_HOME": str(tmp_path / "a")}, "other").digest(value) != digest  # another stack
    key_file = tmp_path / "a" / "toolhive-apply" / "keys" / "demo.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.parent.parent.stat().st_mode) == 0o700
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32


def test_a_pipeline_key_comes_from_the_environment_and_is_scrubbed(tmp_path: Path) -> None:
    key = secrets.token_hex(32)
    environ = {"XDG_STATE_HOME": str(tmp_path), HMAC_KEY_ENV: key}
    digest = _resolver(environ).digest(SecretValue("hunter22"))
    assert digest == _resolver({**environ, "XDG_STATE_HOME": str(tmp_path / "elsewhere")}).digest(
        SecretValue("hunter22")
    )
    assert not (tmp_path / "toolhive-apply").exists()  # no local state needed
    assert redact(f"key={key}") == f"key={REDACTED}"


def test_a_short_pipeline_key_is_refused() -> None:
    with pytest.raises(StackKeyError, match=f"{HMAC_KEY_ENV} is shorter than {MIN_KEY_CHARS}") as caught:
        _resolver({HMAC_KEY_ENV: "ci-key"}).digest(SecretValue("hunter22"))
    assert "ci-key" not in str(caught.value)


@pytest.mark.parametrize("problem", ["world-readable", "symlink", "garbage"])
def test_a_key_file_that_is_not_private_or_not_a_key_is_refused(tmp_path: Path, problem: str) -> None:
    environ = {"XDG_STATE_HOME": str(tmp_path)}
    _resolver(environ).key()
    key_file = tmp_path / "toolhive-apply" / "keys" / "demo.key"
    if problem == "world-readable":
        key_file.chmod(0o644)
    elif problem == "symlink":
        target = tmp_path / "elsewhere.key"
        key_file.rename(target)
        key_file.symlink_to(target)
    else:
        key_file.write_text("not hex\n")
    with pytest.raises(StackKeyError, match="stack key"):
        _resolver(environ).key()
