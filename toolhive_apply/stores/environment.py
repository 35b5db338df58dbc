"""ToolHive's read-only `environment` provider: secret X is the environment variable TOOLHIVE_SECRET_X.

It exists for CI and containers where secrets arrive as variables. It cannot list: the environment has no
notion of which variables are secrets, and scanning for the prefix would report whatever the shell happens to
export. So `list()` returns nothing, `describe()` says can_list is false, and callers must ask by name.

Nor can it keep the key of the stack's secret digests, which the other stores keep as a secret of their own.
The key must still be secret and random (a digest keyed by anything derivable, such as the stack name, lets a
short secret be brute-forced from a saved plan or a container label), so it comes from TOOLHIVE_APPLY_HMAC_KEY
when set (pipelines: give every run the same value, or every plan sees every secret "rotated"), else from a
random key made once in a private file of the local state directory.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import os
import secrets as pyrandom
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Final, NoReturn

from toolhive_apply.paths import make_private_dir, state_dir
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import (
    ProviderDescription,
    StoreConfigError,
    StoredSecret,
    StoreKind,
    StoreReadOnlyError,
    check_name,
    provider_description,
)

PREFIX: Final = "TOOLHIVE_SECRET_"
HMAC_KEY_ENV: Final = "TOOLHIVE_APPLY_HMAC_KEY"
MIN_KEY_CHARS: Final = 32
KEY_FILE: Final = "digest.key"
_KEY_CONTEXT: Final = b"toolhive-apply/environment-digests/v1/"


def register_environment_secrets(environ: Mapping[str, str]) -> None:
    """Every TOOLHIVE_SECRET_* value is a secret whichever store a run uses: scrub them all from its output."""
    for name, value in environ.items():
        if name.startswith(PREFIX):
            SecretValue(value)


class EnvironmentStore:
    kind: ClassVar[StoreKind] = StoreKind.ENVIRONMENT

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    @property
    def endpoint(self) -> str:
        return f"environment variables {PREFIX}*"

    def describe(self) -> ProviderDescription:
        return provider_description(self.kind, writable=False, listable=False)

    def list(self) -> builtins.list[StoredSecret]:
        """Always empty: this store cannot enumerate its secrets (ToolHive answers 405 here)."""
        return []

    def read(self, key: str) -> SecretValue | None:
        check_name(key)
        value = self.environ.get(PREFIX + key)
        return None if value is None else SecretValue(value)

    def write(
        self,
        key: str,
        value: SecretValue,
        *,
        expected_version: int | None,
        stack: str,
        digest: str,
        description: str = "",
    ) -> NoReturn:
        raise self._read_only(key, "write")

    def delete(self, key: str, *, stack: str) -> NoReturn:
        raise self._read_only(key, "delete")

    def digest_key(self, stack: str) -> tuple[bytes, Path | None]:
        """The stack's digest key, and the key file when it was created just now (the caller warns: digests
        recorded with an earlier key will all read as rotated secrets)."""
        given = self.environ.get(HMAC_KEY_ENV)
        if given is not None:
            if len(given) < MIN_KEY_CHARS:
                raise StoreConfigError(
                    f"{HMAC_KEY_ENV} is shorter than {MIN_KEY_CHARS} characters: digests keyed with it could be "
                    "brute-forced",
                    hint=f"set {HMAC_KEY_ENV} to a random value, e.g. the output of `openssl rand -hex 32`",
                )
            SecretValue(given)  # registered: scrubbed from every output like any secret
            # the derivation of earlier versions, kept so that a pipeline's recorded digests stay valid
            return hashlib.sha256(given.encode()).digest(), None
        path = state_dir(self.environ) / KEY_FILE
        master, created = _local_key(path)
        return hmac.new(master, _KEY_CONTEXT + stack.encode(), hashlib.sha256).digest(), path if created else None

    def _read_only(self, key: str, action: str) -> StoreReadOnlyError:
        return StoreReadOnlyError(
            f"cannot {action} secret {key!r}: the environment store is read-only (it reads {PREFIX}{key})",
            hint=f"set {PREFIX}{key} in the environment instead, or use the encrypted or vault store",
        )


def _local_key(path: Path) -> tuple[bytes, bool]:
    """The local key file's 32 random bytes, made now if there is none (True); never overwritten: when two runs
    race to make it, the first link wins and both read that one."""
    created = False
    if not path.exists():
        make_private_dir(path.parent)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(pyrandom.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, path)
            created = True
        except FileExistsError:
            pass
        finally:
            Path(temp).unlink()
    return _read_key(path), created


def _read_key(path: Path) -> bytes:
    hint = (
        f"delete {path} to make a new key (every environment secret then reads as rotated once), or set {HMAC_KEY_ENV}"
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StoreConfigError(f"cannot read the digest key {path}: {exc.strerror}", hint=hint) from None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise StoreConfigError(
                f"the digest key {path} must be a regular file owned by you and readable by you only (0600)",
                hint=f"chmod 600 {path}, or {hint}",
            )
        text = handle.read(200).strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise StoreConfigError(f"the digest key {path} is not 64 hexadecimal digits", hint=hint)
    return key
