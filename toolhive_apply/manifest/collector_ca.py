"""telemetry_config.caCertPath: the CA bundle an https OTLP collector's certificate is verified against.

Read once, bounded, and judged as the proxy will load it (``ssl`` must accept it as CA data), because its text is
delivered inside the proxy's configuration: so a bundle holding a private key is refused (it would be copied into
the proxy's environment and its container record). The checks and the spec builder read it through here, so what
is hashed and delivered is what was checked.
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Final

from toolhive_apply.fileio import InputFileError, read_input

MAX_BUNDLE_BYTES: Final = 512 * 1024
_CERTIFICATE: Final = "-----BEGIN CERTIFICATE-----"
_PRIVATE: Final = "PRIVATE KEY-----"


def read_collector_ca(path: Path) -> tuple[str | None, str | None]:
    """(the PEM text, None) or (None, why the proxy could not trust it)."""
    try:
        data = read_input(path, MAX_BUNDLE_BYTES)
    except InputFileError as exc:
        return None, str(exc)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None, f"{path} is not a PEM file (PEM is ASCII text)"
    if _PRIVATE in text:
        return None, f"{path} holds a private key: a CA bundle holds certificates only"
    if _CERTIFICATE not in text:
        return None, f"{path} holds no PEM certificate"
    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        return None, f"{path} is not a CA bundle TLS can load: {exc}"
    return text, None


def bundle_digest(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()
