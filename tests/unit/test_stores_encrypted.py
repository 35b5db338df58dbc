"""The encrypted store against ToolHive's file format, written and decrypted here by hand from its description:
nonce(12) || AES-256-GCM(key = SHA-256(password)) of {"secrets": {...}}."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import types
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from toolhive_apply.errors import ConflictError
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores import files, passwords
from toolhive_apply.stores.base import SecretNameError, StoreError, StoreFailure
from toolhive_apply.stores.encrypted import EncryptedStore
from toolhive_apply.stores.factory import open_store

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]


def toolhive_seal(password: str, secrets: dict[str, str]) -> bytes:
    key = hashlib.sha256(password.encode()).digest()
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, json.dumps({"secrets": secrets}).encode(), None)


def toolhive_open(password: str, blob: bytes) -> dict[str, str]:
    key = hashlib.sha256(password.encode()).digest()
    document = json.loads(AESGCM(key).decrypt(blob[:12], blob[12:], None))
    secrets: dict[str, str] = document["secrets"]
    return secrets


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    return tmp_path / "toolhive" / "secrets_encrypted"


@pytest.fixture
def store(store_file: Path) -> EncryptedStore:
    return EncryptedStore(store_file, {"TOOLHIVE_SECRETS_PASSWORD": PASSWORD})


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is installed on the machine, the keyring is absent unless a test provides one."""
    monkeypatch.setitem(sys.modules, "keyring", None)


def write(store: EncryptedStore, key: str, value: str, expected: int | None = None, stack: str = "s1") -> None:
    store.write(key, SecretValue(value), expected_version=expected, stack=stack, digest=f"digest-of-{key}")


def test_reads_a_file_written_in_toolhives_format(store: EncryptedStore, store_file: Path) -> None:
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(toolhive_seal(PASSWORD, {"github": "ghp_abc", "__thv_registry_token": "system"}))

    value = store.read("github")

    assert value is not None and value.reveal() == "ghp_abc"
    assert store.read("missing") is None
    assert store.list() == [store.list()[0]]
    only = store.list()[0]
    assert (only.key, only.managed_by, only.stack, only.digest, only.version) == ("github", None, None, None, 0)


def test_writes_a_file_toolhive_decrypts_and_keeps_entries_it_does_not_manage(
    store: EncryptedStore, store_file: Path
) -> None:
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(toolhive_seal(PASSWORD, {"theirs": "t", "__thv_auth_x": "system"}))

    write(store, "ours", "value-1")

    assert toolhive_open(PASSWORD, store_file.read_bytes()) == {
        "theirs": "t",
        "__thv_auth_x": "system",
        "ours": "value-1",
    }
    assert [s.key for s in store.list()] == ["ours", "theirs"]


def test_an_empty_or_missing_file_holds_no_secrets_and_needs_no_password(store_file: Path) -> None:
    store = EncryptedStore(store_file, {})
    assert store.list() == []
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(b"")
    assert store.list() == []
    assert store.read("anything") is None


def test_a_wrong_password_is_a_clear_error(store: EncryptedStore, store_file: Path) -> None:
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(toolhive_seal("another password", {"k": "v"}))

    with pytest.raises(StoreError) as caught:
        store.read("k")

    assert caught.value.failure is StoreFailure.BAD_PASSWORD
    assert f"cannot decrypt {store_file}" in str(caught.value)
    assert "wrong password from TOOLHIVE_SECRETS_PASSWORD?" in str(caught.value)


def test_a_tampered_file_cannot_be_decrypted(store: EncryptedStore, store_file: Path) -> None:
    write(store, "k", "value")
    blob = bytearray(store_file.read_bytes())
    blob[-1] ^= 1
    store_file.write_bytes(bytes(blob))
    with pytest.raises(StoreError, match="cannot decrypt"):
        store.read("k")


def test_a_truncated_file_is_reported_as_not_toolhives_format(store: EncryptedStore, store_file: Path) -> None:
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(b"short")
    with pytest.raises(StoreError, match="not a ToolHive encrypted secrets file: the file is 5 bytes"):
        store.list()


def test_an_existing_store_without_a_password_says_to_set_toolhive_secrets_password(
    store_file: Path, tmp_path: Path
) -> None:
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(toolhive_seal(PASSWORD, {"k": "v"}))
    store = EncryptedStore(store_file, {"XDG_STATE_HOME": str(tmp_path / "state")})
    with pytest.raises(StoreError) as caught:
        write(store, "k", "v2")
    assert caught.value.failure is StoreFailure.NO_PASSWORD
    assert "TOOLHIVE_SECRETS_PASSWORD is not set" in caught.value.message
    assert f"no key file {passwords.key_file_path(store_file, store.environ)}" in caught.value.message
    assert caught.value.hint is not None and "export TOOLHIVE_SECRETS_PASSWORD" in caught.value.hint
    assert not (tmp_path / "state").exists()  # never a new password for a store that has one already
    assert toolhive_open(PASSWORD, store_file.read_bytes()) == {"k": "v"}


def test_the_password_comes_from_the_os_keyring_when_keyring_is_importable(
    store_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []

    def get_password(service: str, user: str) -> str:
        asked.append((service, user))
        return PASSWORD

    monkeypatch.setitem(sys.modules, "keyring", types.SimpleNamespace(get_password=get_password))
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(toolhive_seal(PASSWORD, {"k": "from-keyring"}))

    value = EncryptedStore(store_file, {}).read("k")

    assert value is not None and value.reveal() == "from-keyring"
    assert asked == [("toolhive", "toolhive")]


def test_a_failing_keyring_backend_counts_as_no_keyring(
    store_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: str) -> str:
        raise RuntimeError("no D-Bus session")

    monkeypatch.setitem(sys.modules, "keyring", types.SimpleNamespace(get_password=fails, set_password=fails))
    environ = {"XDG_DATA_HOME": str(store_file.parents[1]), "XDG_STATE_HOME": str(tmp_path / "state")}
    write(EncryptedStore(store_file, environ), "k", "v")  # ToolHive's default path, but the keyring refuses
    key_file = passwords.key_file_path(store_file, environ)
    assert toolhive_open(key_file.read_text().strip(), store_file.read_bytes()) == {"k": "v"}


def test_store_and_sidecar_files_are_mode_0600(store: EncryptedStore, store_file: Path) -> None:
    write(store, "k", "v")
    for path in (store_file, store.sidecar_path, store.lock_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in store_file.parent.iterdir()) == sorted(
        [store_file.name, store.sidecar_path.name, store.lock_path.name]
    )  # no temp files left behind


@pytest.mark.parametrize("name", ["__thv_registry_x", "__thv_"])
def test_reserved_thv_names_are_refused(store: EncryptedStore, name: str) -> None:
    with pytest.raises(SecretNameError, match="reserves"):
        write(store, name, "v")
    with pytest.raises(SecretNameError):
        store.read(name)
    with pytest.raises(SecretNameError):
        store.delete(name, stack="s1")


@pytest.mark.parametrize("name", ["", " padded", "a,target=B", "tab\there"])
def test_names_toolhive_cannot_reference_are_refused(store: EncryptedStore, name: str) -> None:
    with pytest.raises(SecretNameError):
        write(store, name, "v")


def test_no_value_ever_reaches_the_sidecar_file(store: EncryptedStore) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    write(store, "k", canary)
    write(store, "k", canary + "-2", expected=1)
    text = store.sidecar_path.read_text()
    assert canary not in text
    record = json.loads(text)["secrets"]["k"]
    assert record["stack"] == "s1" and record["version"] == 2 and record["managed_by"] == "toolhive-apply"


def test_records_carry_owner_digest_version_and_description(store: EncryptedStore) -> None:
    store.write("k", SecretValue("v"), expected_version=None, stack="web", digest="hmac:1", description="API key")
    [record] = store.list()
    assert (record.managed_by, record.stack, record.digest, record.version, record.description) == (
        "toolhive-apply",
        "web",
        "hmac:1",
        1,
        "API key",
    )


def test_check_and_set_refuses_a_stale_or_missing_version(store: EncryptedStore) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    write(store, "k", canary)
    with pytest.raises(ConflictError) as exists:
        write(store, "k", canary)
    with pytest.raises(ConflictError) as stale:
        write(store, "k", canary, expected=7)
    with pytest.raises(ConflictError) as missing:
        write(store, "other", canary, expected=1)
    assert "'k'" in exists.value.message and "it is at version 1" in exists.value.message
    assert "expected it to be at version 7" in stale.value.message
    assert "it does not exist" in missing.value.message
    for error in (exists.value, stale.value, missing.value):
        assert canary not in f"{error} {error!r} {error.hint} {error.as_json()}"


def test_a_value_changed_by_thv_gets_a_new_version_and_no_digest(store: EncryptedStore, store_file: Path) -> None:
    write(store, "k", "mine")
    store_file.write_bytes(toolhive_seal(PASSWORD, toolhive_open(PASSWORD, store_file.read_bytes()) | {"k": "theirs"}))

    [record] = store.list()
    assert (record.version, record.digest, record.stack) == (2, None, "s1")
    with pytest.raises(ConflictError):
        write(store, "k", "mine again", expected=1)
    write(store, "k", "mine again", expected=2)
    assert store.list()[0].version == 3


def test_delete_refuses_secrets_of_another_stack_or_of_nobody(store: EncryptedStore, store_file: Path) -> None:
    write(store, "ours", "v", stack="s1")
    write(store, "theirs", "v", stack="s2")
    store_file.write_bytes(toolhive_seal(PASSWORD, toolhive_open(PASSWORD, store_file.read_bytes()) | {"thv": "x"}))

    with pytest.raises(ConflictError, match="belongs to stack 's2', not 's1'"):
        store.delete("theirs", stack="s1")
    with pytest.raises(ConflictError, match="belongs to no toolhive-apply stack"):
        store.delete("thv", stack="s1")
    store.delete("ours", stack="s1")
    store.delete("ours", stack="s1")  # already gone: nothing to do

    assert [s.key for s in store.list()] == ["theirs", "thv"]
    assert "ours" not in json.loads(store.sidecar_path.read_text())["secrets"]


def test_concurrent_writers_in_threads_lose_no_update(store_file: Path) -> None:
    def writer(prefix: str) -> None:
        own = EncryptedStore(store_file, {"TOOLHIVE_SECRETS_PASSWORD": PASSWORD})
        for i in range(20):
            write(own, f"{prefix}-{i}", f"value-{prefix}-{i}")

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(toolhive_open(PASSWORD, store_file.read_bytes())) == 60
    assert len(EncryptedStore(store_file, {"TOOLHIVE_SECRETS_PASSWORD": PASSWORD}).list()) == 60


WRITER_SCRIPT = """
import sys
from pathlib import Path
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores import files, passwords
from toolhive_apply.stores.encrypted import EncryptedStore
store = EncryptedStore(Path(sys.argv[1]), {"TOOLHIVE_SECRETS_PASSWORD": sys.argv[2]}, lock_timeout=30)
for i in range(15):
    store.write(f"{sys.argv[3]}-{i}", SecretValue("v"), expected_version=None, stack="s", digest="d")
"""


def test_concurrent_writer_processes_honour_the_lock(store_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(store_file), PASSWORD, name], env=env)
        for name in ("p", "q")
    ]
    assert [p.wait(60) for p in processes] == [0, 0]
    assert len(toolhive_open(PASSWORD, store_file.read_bytes())) == 30


def test_a_held_lock_times_out_with_a_clear_error(store_file: Path) -> None:
    store = EncryptedStore(store_file, {"TOOLHIVE_SECRETS_PASSWORD": PASSWORD}, lock_timeout=0.2)
    store_file.parent.mkdir(parents=True)
    with store.lock_path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreError) as caught:
            write(store, "k", "v")
    assert caught.value.failure is StoreFailure.LOCKED
    assert f"{store.lock_path} stayed locked for 0.2 s" in caught.value.message


def test_a_failed_sidecar_write_puts_the_old_store_file_back(
    store: EncryptedStore, store_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(store, "k", "old")
    before = store_file.read_bytes()
    real_replace = files.replace_atomically

    def replace(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        if path == store.sidecar_path:
            raise OSError(28, "No space left on device")
        real_replace(path, data, mode=mode)

    monkeypatch.setattr(files, "replace_atomically", replace)
    with pytest.raises(StoreError, match=r"cannot write .*No space left on device"):
        write(store, "k2", "new")

    assert store_file.read_bytes() == before
    assert [s.key for s in store.list()] == ["k"]


def test_plaintext_over_32_mib_is_refused(store: EncryptedStore) -> None:
    with pytest.raises(StoreError, match="32 MiB"):
        write(store, "big", "x" * (32 * 1024 * 1024))


def test_default_path_honours_xdg_data_home_and_home(tmp_path: Path) -> None:
    xdg = open_store({}, {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)})
    home = open_store({"provider": "encrypted"}, {"HOME": str(tmp_path)})
    tilde = open_store({"encrypted": {"path": "~/custom/file"}}, {"HOME": str(tmp_path)})
    assert xdg.endpoint == str(tmp_path / "data" / "toolhive" / "secrets_encrypted")
    assert home.endpoint == str(tmp_path / ".local" / "share" / "toolhive" / "secrets_encrypted")
    assert tilde.endpoint == str(tmp_path / "custom" / "file")


def test_describe_matches_toolhives_provider_shape(store: EncryptedStore) -> None:
    assert store.describe() == {
        "name": "default",
        "provider_type": "encrypted",
        "capabilities": {
            "can_read": True,
            "can_write": True,
            "can_delete": True,
            "can_list": True,
            "can_cleanup": True,
        },
    }


def test_listing_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    store = open_store({}, {"HOME": str(tmp_path), "TOOLHIVE_SECRETS_PASSWORD": PASSWORD})
    assert store.list() == []
    assert store.read("k") is None
    assert list(tmp_path.iterdir()) == []


# -- where the password comes from (#22.11) ---------------------------------------------------------------------
class MemoryKeyring:
    """ToolHive's keyring entry, in memory (the real one needs a desktop session)."""

    def __init__(self, value: str | None = None, *, works: bool = True) -> None:
        self.value = value
        self.works = works

    def get(self) -> str | None:
        return self.value if self.works else None

    def set(self, password: str) -> bool:
        if self.works:
            self.value = password
        return self.works


def state_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"), **extra}


def test_a_new_store_without_a_password_gets_a_random_one_in_a_0600_key_file(tmp_path: Path) -> None:
    environ = state_env(tmp_path)
    store_file = tmp_path / "custom" / "secrets"
    write(EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False)), "k", "v")

    key_file = passwords.key_file_path(store_file, environ)
    assert key_file.parent == tmp_path / "state" / "toolhive-apply" / "keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    password = key_file.read_text().strip()
    assert len(password) == 44 and len(base64.urlsafe_b64decode(password)) == 32  # as ToolHive generates them
    assert toolhive_open(password, store_file.read_bytes()) == {"k": "v"}  # the file format is unchanged
    again = EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False))
    value = again.read("k")
    assert value is not None and value.reveal() == "v" and again.warnings == ()


@pytest.mark.parametrize("shared", [True, False], ids=["one store object", "a store object per writer"])
def test_writers_racing_to_create_a_new_store_agree_on_one_password(tmp_path: Path, shared: bool) -> None:
    """Seen in CI: apply writes a stack's secrets in parallel; the second writer read the key file the first had
    created but not yet filled ("the key file is empty") and its secret failed. Every writer must get the one
    password and every value must be in the store (several rounds: the race window is small)."""
    for round_ in range(6):
        environ = state_env(tmp_path / str(round_))
        store_file = tmp_path / str(round_) / "custom" / "secrets"
        one = EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False))
        stores = [one if shared else EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False))]
        stores += [
            stores[0] if shared else EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False))
            for _ in range(11)
        ]
        start = threading.Barrier(len(stores))
        failures: list[BaseException] = []

        def writer(
            index: int, store: EncryptedStore, gate: threading.Barrier = start, failed: list[BaseException] = failures
        ) -> None:
            gate.wait()
            try:
                write(store, f"k{index}", f"v{index}")
            except BaseException as exc:  # noqa: BLE001 - the test reports whatever a writer hit
                failed.append(exc)

        threads = [threading.Thread(target=writer, args=(i, s)) for i, s in enumerate(stores)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        key_file = passwords.key_file_path(store_file, environ)
        password = key_file.read_text().strip()
        assert toolhive_open(password, store_file.read_bytes()) == {f"k{i}": f"v{i}" for i in range(len(stores))}
        assert not [p.name for p in key_file.parent.iterdir() if p.suffix == ".tmp"]


def test_toolhives_default_store_keeps_its_new_password_in_toolhives_keyring_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries: dict[tuple[str, str], str] = {}
    module = types.SimpleNamespace(
        get_password=lambda service, user: entries.get((service, user)),
        set_password=lambda service, user, value: entries.__setitem__((service, user), value),
    )
    monkeypatch.setitem(sys.modules, "keyring", module)
    environ = state_env(tmp_path)
    store = open_store({}, environ)
    write(store, "k", "v")  # type: ignore[arg-type]

    password = entries[("toolhive", "toolhive")]
    assert toolhive_open(password, Path(store.endpoint).read_bytes()) == {"k": "v"}  # `thv` finds it there
    assert not (tmp_path / "state").exists()


def test_another_store_path_never_writes_toolhives_keyring_entry(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    environ = state_env(tmp_path)
    store_file = tmp_path / "elsewhere" / "secrets"
    write(EncryptedStore(store_file, environ, keyring=keyring), "k", "v")
    assert keyring.value is None
    assert passwords.key_file_path(store_file, environ).exists()


def test_the_environment_wins_then_the_stores_key_file_then_the_keyring(tmp_path: Path) -> None:
    environ = state_env(tmp_path)
    store_file = tmp_path / "elsewhere" / "secrets"
    write(EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False)), "k", "v")
    generated = passwords.key_file_path(store_file, environ).read_text().strip()

    # the keyring holds ToolHive's own password for its default store: this store's key file is the one that fits
    from_file = EncryptedStore(store_file, environ, keyring=MemoryKeyring("thv's own password"))
    assert from_file.read("k") == SecretValue("v")
    wrong = EncryptedStore(store_file, {**environ, "TOOLHIVE_SECRETS_PASSWORD": "not it at all, but long"})
    with pytest.raises(StoreError, match="wrong password from TOOLHIVE_SECRETS_PASSWORD"):
        wrong.read("k")
    right = EncryptedStore(store_file, {**environ, "TOOLHIVE_SECRETS_PASSWORD": generated})
    assert right.read("k") == SecretValue("v")


def test_a_key_file_others_can_read_is_refused_without_showing_it(tmp_path: Path) -> None:
    environ = state_env(tmp_path)
    store_file = tmp_path / "elsewhere" / "secrets"
    write(EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False)), "k", "v")
    key_file = passwords.key_file_path(store_file, environ)
    key_file.chmod(0o644)
    with pytest.raises(StoreError, match="must be owned by this user and mode 0600") as caught:
        EncryptedStore(store_file, environ, keyring=MemoryKeyring(works=False)).read("k")
    assert key_file.read_text().strip() not in str(caught.value)


@pytest.mark.parametrize("source", ["environment", "keyring"])
def test_a_short_typed_password_is_a_warning_that_never_shows_it(store_file: Path, tmp_path: Path, source: str) -> None:
    short = "hunter2"
    environ = state_env(tmp_path, **({"TOOLHIVE_SECRETS_PASSWORD": short} if source == "environment" else {}))
    keyring = MemoryKeyring(short if source == "keyring" else None)
    store = EncryptedStore(store_file, environ, keyring=keyring)
    (warning,) = store.warnings
    assert "shorter than 16 characters" in warning and str(store_file) in warning and short not in warning
    write(store, "k", "v")  # a warning, not an error
    assert EncryptedStore(store_file, {"TOOLHIVE_SECRETS_PASSWORD": PASSWORD}).warnings == ()
