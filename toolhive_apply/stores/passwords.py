"""Where the encrypted store's password comes from, and where a new store's random password is kept.

ToolHive's file format keys AES-256-GCM with an unsalted SHA-256 of the password (toolhive_format.py), which is
fine for the random password ToolHive generates and keeps in the OS keyring, and weak for a typed one: anyone
with a copy of the file can test guesses at hash speed. So, as ToolHive does, a store toolhive-apply creates gets
a random password (32 bytes, base64url, like ToolHive's GenerateSecurePassword) that nobody types:

1. TOOLHIVE_SECRETS_PASSWORD, when set (the variable ToolHive's factory.go names for the password);
2. this store's key file, when toolhive-apply made one ($XDG_STATE_HOME/toolhive-apply/keys/, mode 0600);
3. ToolHive's OS keyring entry (service and user `toolhive`), when the optional `keyring` package works;
4. for a store that does not exist yet: a new random password, kept in that keyring entry when the store is
   ToolHive's default file and the keyring accepts it (so `thv` opens the same store), else in a new key file.

An existing store with none of these is an error, never a new password. A typed password (1 or 3) shorter than
MIN_TYPED_LENGTH gets a warning; no password is ever printed. ToolHive's fallback to the Linux kernel keyring
(keyctl) is not used, so on a machine without a Secret Service a new store's password is in the key file only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, cast

from toolhive_apply.fileio import state_dir

PASSWORD_ENV: Final = "TOOLHIVE_SECRETS_PASSWORD"
KEYRING_SERVICE: Final = "toolhive"
KEYRING_USER: Final = "toolhive"
KEYRING_SOURCE: Final = f"the OS keyring (service {KEYRING_SERVICE!r}, user {KEYRING_USER!r})"
MIN_TYPED_LENGTH: Final = 16
GENERATED_BYTES: Final = 32


class PasswordFileError(Exception):
    """A key file exists but cannot be used; the message names the file, never its content."""


@dataclass(frozen=True, slots=True)
class Password:
    """The store password and where it came from (for messages); never printed."""

    value: str
    source: str
    typed: bool = True
    """False for a password toolhive-apply or ToolHive generated (a key file); True when a person may have chosen it."""

    def __repr__(self) -> str:
        return f"Password(source={self.source!r})"


class Keyring(Protocol):
    """ToolHive's keyring entry; both methods report failure by returning None / False, never by raising."""

    def get(self) -> str | None: ...

    def set(self, password: str) -> bool: ...


class PythonKeyring:
    """The `keyring` package, if installed (it is optional): Secret Service, macOS Keychain, Windows vault."""

    def get(self) -> str | None:
        module = _keyring_module()
        if module is None:
            return None
        try:
            value = cast(Callable[[str, str], "str | None"], module.get_password)(KEYRING_SERVICE, KEYRING_USER)
        except Exception:  # noqa: BLE001 - every backend has its own errors; any of them means "no keyring here"
            return None
        return value or None

    def set(self, password: str) -> bool:
        module = _keyring_module()
        if module is None:
            return False
        try:
            cast(Callable[[str, str, str], None], module.set_password)(KEYRING_SERVICE, KEYRING_USER, password)
        except Exception:  # noqa: BLE001 - as above: a keyring that refuses is no keyring
            return False
        return True


def _keyring_module() -> Any:
    try:
        return importlib.import_module("keyring")
    except ImportError:
        return None


def key_file_path(store: Path, environ: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/toolhive-apply/keys/<store name>-<digest of its absolute path>.key`.

    Apart from the store file on purpose: a copy or backup of the data directory alone does not open the store.
    """
    digest = hashlib.sha256(str(store.absolute()).encode()).hexdigest()[:12]
    return state_dir(environ) / "keys" / f"{store.name}-{digest}.key"


def find_password(store: Path, environ: Mapping[str, str], keyring: Keyring) -> Password | None:
    """Steps 1-3 of the module docstring; None when none of them has a password."""
    value = environ.get(PASSWORD_ENV)
    if value:
        return Password(value, PASSWORD_ENV)
    key_file = key_file_path(store, environ)
    stored = read_key_file(key_file)
    if stored is not None:
        return Password(stored, f"the key file {key_file}", typed=False)
    value = keyring.get()
    if value:
        return Password(value, KEYRING_SOURCE)
    return None


def create_password(store: Path, environ: Mapping[str, str], keyring: Keyring, *, in_keyring: bool) -> Password:
    """Step 4: a new random password for a new store, kept where the next run (and `thv`) will find it."""
    generated = base64.urlsafe_b64encode(os.urandom(GENERATED_BYTES)).decode("ascii")
    if in_keyring and keyring.set(generated):
        kept = keyring.get()  # another process may have won the race: its password is the one to use
        if kept:
            return Password(kept, KEYRING_SOURCE, typed=False)
    key_file = key_file_path(store, environ)
    return Password(write_key_file(key_file, generated), f"the key file {key_file}", typed=False)


def read_key_file(path: Path) -> str | None:
    """The password in `path`, None when there is no such file; PasswordFileError when it is unsafe or unreadable."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PasswordFileError(f"cannot read the key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PasswordFileError(f"the key file {path} is not a regular file")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PasswordFileError(f"the key file {path} must be owned by this user and mode 0600 (chmod 600 it)")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise PasswordFileError(f"cannot read the key file {path}") from None
    if not value:
        raise PasswordFileError(f"the key file {path} is empty")
    return value


def write_key_file(path: Path, password: str) -> str:
    """Create `path` (0600, in a 0700 directory) holding `password`; if another process or thread created it first,
    its password wins. Returns the password now in the file.

    The file appears with its content or not at all: it is written under a temporary name and then hard-linked into
    place (link(2) fails if the name exists). A reader never sees it empty, which a plain O_EXCL create followed by
    a write would show to a second writer racing the first.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PasswordFileError(f"cannot create the key file {path}: {exc.strerror}") from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(password + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        existing = read_key_file(path)
        if existing is None:  # pragma: no cover - removed between the two calls
            raise PasswordFileError(f"the key file {path} vanished while it was created") from None
        return existing
    except OSError as exc:
        raise PasswordFileError(f"cannot write the key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return password


def short_password_warning(password: Password, store: Path) -> str | None:
    if not password.typed or len(password.value) >= MIN_TYPED_LENGTH:
        return None
    return (
        f"the password of {store} from {password.source} is shorter than {MIN_TYPED_LENGTH} characters; ToolHive's"
        " format keys the file with an unsalted SHA-256 of it, so a copy of the file can be attacked by guessing:"
        " use a long random password"
    )
