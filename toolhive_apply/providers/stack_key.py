"""The stack's secret key: 32 random bytes per stack, from which its secret digests and its plan MACs are keyed.

The one place that says where the key lives. A writable store keeps it as the secret `toolhive-apply.hmac.<stack>`
(owned by the stack, like any other secret it writes). The environment store is read-only, so there it comes from
TOOLHIVE_APPLY_HMAC_KEY, else from a random key file in the private state directory: never from anything that
could be guessed, such as the stack's name.
"""

from __future__ import annotations

import hashlib
import os
import secrets as pyrandom
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from toolhive_apply.credentials import HMAC_KEY_ENV
from toolhive_apply.errors import ConflictError, ToolhiveApplyError
from toolhive_apply.fileio import UnsafePathError, create_exclusively, private_dir, read_private, state_dir
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import StoreKind

if TYPE_CHECKING:
    from toolhive_apply.stores.base import SecretStore

KEY_ENV: Final = HMAC_KEY_ENV  # credentials.py is the home of the names of credential variables
KEY_DESCRIPTION: Final = "toolhive-apply: key of the stack's secret digests"
KEY_DIGEST_MARK: Final = "new"  # what the key's own record carries where other secrets carry a digest
KEY_BYTES: Final = 32
MIN_KEY_CHARS: Final = 32


class StackKeyError(ToolhiveApplyError):
    """The stack's key cannot be read (a damaged record, an unsafe key file)."""

    code = "stack_key_invalid"


def hmac_key_name(stack: str) -> str:
    return f"toolhive-apply.hmac.{stack}"


def local_key_path(stack: str, environ: Mapping[str, str]) -> Path:
    """`<state dir>/keys/<stack>.key`: the environment store's key when TOOLHIVE_APPLY_HMAC_KEY is not set."""
    if not stack or "/" in stack or "\x00" in stack or stack.startswith("."):
        raise StackKeyError(f"stack name {stack!r} cannot name a key file")
    return state_dir(environ) / "keys" / f"{stack}.key"


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise StackKeyError(f"the stack key in {where} is damaged (expected {KEY_BYTES} bytes in hex)")
    return key


def read_environment_key(stack: str, environ: Mapping[str, str]) -> bytes | None:
    """TOOLHIVE_APPLY_HMAC_KEY (hashed to a key), else the local key file; None when there is neither.

    The variable must be long enough that digests keyed with it cannot be brute-forced, and its value is a secret
    like any other (registered with the scrubber). The hash is the derivation earlier versions used, so a
    pipeline's recorded digests stay valid.
    """
    material = environ.get(KEY_ENV)
    if material:
        if len(material) < MIN_KEY_CHARS:
            raise StackKeyError(
                f"{KEY_ENV} is shorter than {MIN_KEY_CHARS} characters: digests keyed with it could be brute-forced",
                hint=f"set {KEY_ENV} to a random value, e.g. the output of `openssl rand -hex 32`",
            )
        SecretValue(material)  # registered: scrubbed from every output
        return hashlib.sha256(material.encode("utf-8")).digest()
    path = local_key_path(stack, environ)
    try:
        data = read_private(path)
    except UnsafePathError as exc:
        raise StackKeyError(f"the stack key file is unsafe: {exc}") from None
    return None if data is None else _parse(data.decode("ascii", errors="replace"), str(path))


def environment_key(stack: str, environ: Mapping[str, str]) -> bytes:
    """The environment store's key for `stack`, making the local key file (0600, in 0700 directories) if needed."""
    return environment_key_made(stack, environ)[0]


def environment_key_made(stack: str, environ: Mapping[str, str]) -> tuple[bytes, Path | None]:
    """`environment_key`, and the key file when this call made it (the caller warns: digests recorded with an
    earlier key all read as rotated secrets once)."""
    key = read_environment_key(stack, environ)
    if key is not None:
        return key, None
    path = local_key_path(stack, environ)
    try:
        private_dir(path.parent, levels=2)
        create_exclusively(path, (pyrandom.token_hex(KEY_BYTES) + "\n").encode("ascii"))
    except UnsafePathError as exc:
        raise StackKeyError(f"the stack key file is unsafe: {exc}") from None
    except OSError as exc:
        raise StackKeyError(f"cannot create the stack key file {path}: {exc.strerror or exc}") from None
    key = read_environment_key(stack, environ)  # whoever won a race, every run uses the file that is there
    if key is None:
        raise StackKeyError(f"the stack key file {path} vanished while it was being made")
    return key, path


def stack_key(
    store: SecretStore, stack: str, *, create: bool, environ: Mapping[str, str] | None = None
) -> bytes | None:
    """The stack's key, or None when it has none and `create` is false.

    With `create`, a missing key is made and stored at once (check-and-set: when another run made one first,
    that one is used). Saving a plan needs it to exist before the plan is made; verifying one never creates it.
    """
    if store.kind == StoreKind.ENVIRONMENT:
        env = os.environ if environ is None else environ
        return environment_key(stack, env) if create else read_environment_key(stack, env)
    name = hmac_key_name(stack)
    stored = store.read(name)
    if stored is not None:
        return _parse(stored.reveal(), f"secret {name!r} of the {store.kind} store")
    if not create:
        return None
    key = pyrandom.token_bytes(KEY_BYTES)
    try:
        store.write(
            name,
            SecretValue(key.hex()),
            expected_version=None,
            stack=stack,
            digest=KEY_DIGEST_MARK,
            description=KEY_DESCRIPTION,
        )
    except ConflictError:
        again = store.read(name)
        if again is None:
            raise
        return _parse(again.reveal(), f"secret {name!r} of the {store.kind} store")
    return key
