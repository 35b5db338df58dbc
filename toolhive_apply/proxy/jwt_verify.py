"""JWT (JWS compact) access-token validation for the endpoint: signature, then issuer, audience and lifetime.

What is refused, whatever the token says about itself: ``alg: none``, every HMAC algorithm (the proxy holds only
public keys, so an HS256 token "signed" with the public key must never verify), an ``alg`` the proxy does not
implement, an ``alg`` the chosen JWK does not declare (when it declares one), and a JWK whose key type or curve does
not fit the ``alg``. ``iss`` must match exactly; ``aud`` (string or list) must contain the configured audience
(RFC 8707: a token for another resource is refused); ``exp`` is required; ``exp``/``nbf`` get ``LEEWAY`` seconds.
Error messages name the reason, never the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.jose_crypto import ecdsa_p256_verify, rsa_pkcs1v15_verify

LEEWAY: Final = 60.0
"""Seconds of clock skew tolerated on ``exp`` and ``nbf``."""
ALGORITHMS: Final = {"RS256": ("RSA", "sha256"), "RS384": ("RSA", "sha384"), "RS512": ("RSA", "sha512")}
ALGORITHMS_EC: Final = {"ES256": ("EC", "P-256")}
SUPPORTED_ALGORITHMS: Final = (*ALGORITHMS, *ALGORITHMS_EC)
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
MAX_TOKEN_BYTES: Final = 16 * 1024


class TokenError(ValueError):
    """The token is refused; the message is safe to log and to send (it never contains the token)."""


class UnknownKeyError(TokenError):
    """No key in the set has the token's ``kid``: the caller may refresh the key set once and retry."""


def b64url_decode(text: str) -> bytes:
    """Unpadded base64url, strictly (RFC 7515 §2): no padding, no other alphabet, no impossible length."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenError("malformed base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed base64url") from None


def _b64_int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError(f"JWK without {name}")
    return int.from_bytes(b64url_decode(value), "big")


@dataclass(frozen=True, slots=True)
class Token:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def split_token(token: str) -> Token:
    """Decode the three parts; header and payload must be strict JSON objects (no duplicate keys)."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWS compact token")
    try:
        header = strictjson.loads(b64url_decode(parts[0]))
        claims = strictjson.loads(b64url_decode(parts[1]))
    except strictjson.StrictJsonError:
        raise TokenError("token header or payload is not strict JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("token header or payload is not a JSON object")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return Token(header, claims, signing_input, b64url_decode(parts[2]))


def _candidates(token: Token, keys: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    kid = token.header.get("kid")
    if kid is not None:
        if not isinstance(kid, str):
            raise TokenError("kid must be a string")
        chosen = [k for k in keys if k.get("kid") == kid]
        if not chosen:
            raise UnknownKeyError("no key with the token's kid")
        return chosen
    return list(keys)


def _key_fits(alg: str, jwk: Mapping[str, Any]) -> bool:
    """Whether this JWK may verify ``alg``: key type (and curve) fit, its own ``alg``/``use``/``key_ops`` allow it."""
    if "alg" in jwk and jwk.get("alg") != alg:
        return False
    if "use" in jwk and jwk.get("use") != "sig":
        return False
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    if alg in ALGORITHMS:
        return jwk.get("kty") == "RSA"
    return jwk.get("kty") == "EC" and jwk.get("crv") == ALGORITHMS_EC[alg][1]


def verify_signature(token: Token, keys: Sequence[Mapping[str, Any]]) -> None:
    alg = token.header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
        raise TokenError(f"algorithm {shown!r} is not accepted; accepted: {', '.join(SUPPORTED_ALGORITHMS)}")
    crit = token.header.get("crit")
    if crit is not None:
        raise TokenError("critical header extensions are not supported")
    fitting = [k for k in _candidates(token, keys) if _key_fits(alg, k)]
    if not fitting:
        raise TokenError(f"no key in the key set may verify {alg}")
    for jwk in fitting:
        if _verify_with(alg, jwk, token):
            return
    raise TokenError("bad signature")


def _verify_with(alg: str, jwk: Mapping[str, Any], token: Token) -> bool:
    try:
        if alg in ALGORITHMS:
            n, e = _b64_int(jwk, "n"), _b64_int(jwk, "e")
            return rsa_pkcs1v15_verify(n, e, token.signing_input, token.signature, ALGORITHMS[alg][1])
        x_bytes = b64url_decode(str(jwk.get("x", "")))
        y_bytes = b64url_decode(str(jwk.get("y", "")))
        if len(x_bytes) != 32 or len(y_bytes) != 32:
            return False
        x, y = int.from_bytes(x_bytes, "big"), int.from_bytes(y_bytes, "big")
        return ecdsa_p256_verify(x, y, token.signing_input, token.signature)
    except TokenError:
        return False


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"{name} must be a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, now: float, require_exp: bool = True
) -> None:
    """RFC 7519 §4.1 as an access token for this resource must satisfy them (shared with introspection)."""
    if claims.get("iss") != issuer:
        raise TokenError("wrong issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in [a for a in audiences if isinstance(a, str)]:
        raise TokenError("token is not for this resource (aud)")
    exp = _number(claims, "exp")
    if exp is None:
        if require_exp:
            raise TokenError("token without exp")
    elif now > exp + LEEWAY:
        raise TokenError("token expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and now + LEEWAY < nbf:
        raise TokenError("token not yet valid (nbf)")
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise TokenError("sub must be a string")


def verify_jwt(
    token: str, keys: Sequence[Mapping[str, Any]], *, issuer: str, audience: str, now: float
) -> dict[str, Any]:
    """The verified claims, or TokenError (UnknownKeyError when the ``kid`` is not in ``keys``)."""
    parsed = split_token(token)
    verify_signature(parsed, keys)
    check_claims(parsed.claims, issuer=issuer, audience=audience, now=now)
    return dict(parsed.claims)


def parse_jwks(document: object) -> list[dict[str, Any]]:
    """The keys of a JWKS document (``{"keys": [...]}``); entries that are not objects are skipped."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except ValueError:
            raise TokenError("the JWKS is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TokenError('the JWKS is not an object with a "keys" list')
    return [k for k in document["keys"] if isinstance(k, dict)]
