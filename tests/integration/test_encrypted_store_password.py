"""The encrypted store's password through the real CLI (#22.11): a new store gets a random password in a 0600
key file when none is given, and a short typed password is a plan warning that never shows the password."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from toolhive_apply.stores import passwords
from toolhive_apply.stores.encrypted import EncryptedStore
from toolhive_apply.stores.toolhive_format import default_path

pytestmark = pytest.mark.docker


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HOME": str(tmp_path / "home"),
        "TOOLHIVE_SECRETS_PASSWORD": "",
        "TOKEN_UNDER_TEST": "value-under-test-1234",
        **extra,
    }


def manifest(tmp_path: Path, stack: str) -> Path:
    workload = {
        "name": f"{stack}-w",
        "image": HTTP_IMAGE,
        "transport": "streamable-http",
        "secrets": [{"name": "t", "target": "API_TOKEN"}],
    }
    return write_manifest(tmp_path, stack, [workload], secrets=[{"key": "t", "from": {"env": "TOKEN_UNDER_TEST"}}])


def test_apply_without_a_password_creates_the_store_with_a_random_password_in_a_key_file(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    env = environment(tmp_path)
    applied = run_cli("apply", str(manifest(tmp_path, stack)), "--yes", env=env)
    assert applied.code == 0, applied
    store_file = default_path(env)
    key_file = passwords.key_file_path(store_file, env)  # no keyring package here: a key file, not a prompt
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    password = key_file.read_text().strip()
    assert password not in applied.output
    reopened = EncryptedStore(store_file, {**env, "TOOLHIVE_SECRETS_PASSWORD": password})
    found = reopened.read("t")
    assert found is not None and found.reveal() == "value-under-test-1234"
    assert run_cli("plan", str(manifest(tmp_path, stack)), "--detailed-exitcode", env=env).code == 0


def test_a_short_typed_password_is_a_warning_in_the_plan(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    env = environment(tmp_path, TOOLHIVE_SECRETS_PASSWORD="Zq9!xw")
    planned = run_cli("plan", str(manifest(tmp_path, stack)), env=env)
    assert planned.code == 0, planned
    assert "shorter than 16 characters" in planned.output
    assert "Zq9!xw" not in planned.output
    assert not (tmp_path / "state" / "toolhive-apply" / "keys").exists()
