"""ToolHive's encrypted secrets file, byte for byte: where it lives and how it is sealed.

Format (pkg/secrets/aes/aes.go, encrypted.go): nonce(12) || AES-256-GCM(key=SHA-256(password)) ciphertext || tag(16)
of `{"secrets": {"<name>": "<value>"}}`; an empty file holds no secrets. Kept separate from the store logic so
compatibility is tested against this module alone; where the password comes from is passwords.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from toolhive_apply.credentials import PASSWORD_ENV as PASSWORD_ENV  # re-exported: stores read it from here

NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
MAX_PLAINTEXT: Final = 32 * 1024 * 1024


class FormatError(ValueError):
    """The file is not ToolHive's format (too short, too large, or not the expected JSON after decryption)."""


def default_path(environ: Mapping[str, str]) -> Path:
    """`$XDG_DATA_HOME/toolhive/secrets_encrypted`, as ToolHive's xdg.DataFile resolves it."""
    data_home = environ.get("XDG_DATA_HOME") or ""
    if not Path(data_home).is_absolute():  # the XDG spec says relative values are ignored
        home = environ.get("HOME") or str(Path.home())
        data_home = str(Path(home) / ".local" / "share")
    return Path(data_home) / "toolhive" / "secrets_encrypted"


def derive_key(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


def seal(plaintext: bytes, key: bytes) -> bytes:
    if len(plaintext) > MAX_PLAINTEXT:
        raise FormatError(f"the secrets would take {len(plaintext)} bytes, over ToolHive's 32 MiB limit")
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def unseal(blob: bytes, key: bytes) -> bytes:
    """Decrypt; raises cryptography's InvalidTag for a wrong key or tampered file, FormatError for a bad shape."""
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise FormatError(f"the file is {len(blob)} bytes, too short for a nonce and a GCM tag")
    if len(blob) > MAX_PLAINTEXT + NONCE_SIZE + TAG_SIZE:
        raise FormatError("the file is larger than ToolHive's 32 MiB limit")
    return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], None)


def encode_secrets(secrets: Mapping[str, str]) -> bytes:
    # Go's encoding/json sorts map keys; doing the same keeps files diff-stable whoever wrote them last.
    return json.dumps({"secrets": dict(secrets)}, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def decode_secrets(plaintext: bytes) -> dict[str, str]:
    """The name->value map; error messages describe the shape only, never the content."""
    try:
        document = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError('the decrypted content is not JSON of the form {"secrets": {...}}') from None
    secrets = document.get("secrets") if isinstance(document, dict) else None
    if secrets is None and isinstance(document, dict):
        return {}  # Go marshals a nil map as null
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise FormatError('the decrypted content is not of the form {"secrets": {"<name>": "<value>"}}')
    return cast(dict[str, str], secrets)
