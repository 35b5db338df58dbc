"""Bearer tokens in client entries (`client_auth`, issue #16): placeholders in specs, the value only in the file.

The token is a secret's value, and a client spec is shown in plans, saved in plan files and hashed, so a spec never
holds it. The desired entry carries `Authorization: Bearer <secret NAME>` under the client's own headers key
(clients.toml `headers_key`), and the spec's `secret_digests` the secret's keyed digest (as a workload's does, the
same HMAC: providers/secret.py), so rotating the secret is a planned in-place update of exactly the clients whose
entries hold it, named "secret rotated: NAME". Observing reads the file, where the value is in clear, and turns it
back into the same placeholder and digest before anything else sees it; every other header value found under a
headers key (one typed in by hand) becomes `<redacted>`, so an unknown credential is neither shown nor kept. Only
`reveal`, at the moment of writing, puts the value into an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from toolhive_apply.clients import ClientSpec, Entry
from toolhive_apply.redact import SecretValue

HEADER: Final = "Authorization"
SCHEME: Final = "Bearer "
REDACTED_HEADER: Final = "<redacted>"
MIXED_DIGEST: Final = "(entries hold different values)"
"""The observed digest of a secret whose entries disagree: equal to no real digest, so the plan updates them."""
_HEADER_KEYS: Final = frozenset({"headers", "http_headers", "env_http_headers"})
"""Keys whose values are redacted in every observed entry, whatever the client: a hand-typed credential lives there."""


def placeholder(secret: str) -> str:
    """What a spec holds instead of `Bearer <value>`: the secret's name, which the plan may show."""
    return f"{SCHEME}<secret {secret}>"


def with_placeholder(client: ClientSpec, entry: Entry, secret: str) -> Entry:
    """`entry` with the header that will carry `secret`'s value (the client must have a headers key)."""
    assert client.headers_key is not None
    return {**entry, client.headers_key: {HEADER: placeholder(secret)}}


def reveal(client: ClientSpec, entry: Mapping[str, object], value: SecretValue) -> Entry:
    """The entry as written to the file: the placeholder replaced by the token. Call it only to write."""
    assert client.headers_key is not None
    headers = entry.get(client.headers_key)
    assert isinstance(headers, Mapping)
    return {**entry, client.headers_key: {**headers, HEADER: SCHEME + value.reveal()}}


def redact_observed(
    client: ClientSpec,
    entries: Mapping[str, object],
    bearer: Mapping[str, str],
    digest: Callable[[SecretValue], str] | None,
) -> tuple[dict[str, object], dict[str, str]]:
    """Entries read from the file with every header value redacted, and the digest of each recorded secret.

    `bearer` maps our entries to the secret they were written with (the client state record). A token under that
    entry's `Authorization` becomes the placeholder and adds its digest (None `digest`: no resolver, MIXED_DIGEST);
    anything else under a headers key becomes REDACTED_HEADER.
    """
    keys = _HEADER_KEYS | ({client.headers_key} if client.headers_key else set())
    found: dict[str, set[str]] = {}
    redacted: dict[str, object] = {}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping):
            redacted[name] = entry
            continue
        clean: dict[str, object] = {}
        for key, value in entry.items():
            if key not in keys:
                clean[key] = value
            elif not isinstance(value, Mapping):
                clean[key] = REDACTED_HEADER
            else:
                secret = bearer.get(name) if key == client.headers_key else None
                clean[key] = {header: _header(header, text, secret, found, digest) for header, text in value.items()}
        redacted[name] = clean
    digests = {secret: next(iter(seen)) if len(seen) == 1 else MIXED_DIGEST for secret, seen in found.items()}
    return redacted, dict(sorted(digests.items()))


def _header(
    header: object,
    text: object,
    secret: str | None,
    found: dict[str, set[str]],
    digest: Callable[[SecretValue], str] | None,
) -> str:
    if secret is None or header != HEADER or not isinstance(text, str) or not text.startswith(SCHEME):
        return REDACTED_HEADER
    token = SecretValue(text.removeprefix(SCHEME))
    found.setdefault(secret, set()).add(digest(token) if digest is not None else MIXED_DIGEST)
    return placeholder(secret)


def no_headers_warning(client: ClientSpec, names: list[str]) -> str:
    """What the plan says for a client whose file format takes no static header (per client, by name)."""
    return (
        f"client {client.name} cannot be given a bearer token in its file (no static-header key is known for it): "
        f"its entries for {', '.join(sorted(names))} have no Authorization header (client_auth); "
        + (
            "it follows the OAuth flow from the endpoint's 401 instead"
            if client.endpoint_auth == "oauth"
            else "configure the token in the client by hand, or use a client that takes headers"
        )
    )
