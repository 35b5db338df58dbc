"""JWT (JWS compact) access-token validation for the endpoint: header, signature, then issuer, audience, lifetime.

What is refused, whatever the token says about itself:

* ``alg: none``, every HMAC algorithm (the proxy holds only public keys, so an HS256 token "signed" with the public
  key must never verify), an ``alg`` the proxy does not implement, an ``alg`` the chosen JWK does not declare (when
  it declares one), and a JWK whose key type or curve does not fit the ``alg``;
* a ``crit`` header (the proxy understands no extension, RFC 7515 §4.1.11), and the headers that carry or point to
  keys (``jwk``, ``jku``, ``x5c``, ``x5u``): keys come from the configured key set only, so a token naming its own
  key is either confused or an attack;
* a ``typ`` other than absent, ``JWT`` or ``at+jwt`` (RFC 9068; case-insensitive, ``application/`` optional);
* a ``kid`` that is present but not a string; duplicate keys in header or payload; base64url that is padded,
  non-canonical (stray low bits) or of another alphabet; a token over ``MAX_TOKEN_BYTES``;
* ``iss`` not exactly the configured issuer; an ``aud`` that is not a string or a list of strings, or without the
  configured audience (RFC 8707: a token for another resource); ``exp`` missing; ``exp``/``nbf``/``iat`` that are not
  numbers (a JSON ``true`` is no number, though Python's bool is an int); ``exp`` past, ``nbf`` or ``iat`` future,
  beyond ``LEEWAY``; ``sub`` missing (the authenticator requires it) or not a non-empty string; a ``cnf`` claim (a
  sender-constrained token, RFC 7800/8705/9449: the proxy cannot check the binding, and accepting it as a bearer token
  would undo what the binding protects); an ID or refresh token marked as such in its claims (``typ``, ``token_use``,
  ``token_type``).

Error messages name the reason, never the token.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.jose_crypto import CURVES, ecdsa_verify, rsa_pkcs1v15_verify, rsa_pss_verify
from toolhive_apply.proxy.jose_ed25519 import ed25519_verify

LEEWAY: Final = 60.0
"""Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
ALGORITHMS_RSA: Final = {
    "RS256": (rsa_pkcs1v15_verify, "sha256"),
    "RS384": (rsa_pkcs1v15_verify, "sha384"),
    "RS512": (rsa_pkcs1v15_verify, "sha512"),
    "PS256": (rsa_pss_verify, "sha256"),
    "PS384": (rsa_pss_verify, "sha384"),
    "PS512": (rsa_pss_verify, "sha512"),
}
ALGORITHMS_EC: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
ALGORITHMS_OKP: Final = {"EdDSA": "Ed25519"}
"""RFC 8037: ``EdDSA`` with an OKP key; only Ed25519 (an Ed448 key never fits)."""
SUPPORTED_ALGORITHMS: Final = (*ALGORITHMS_RSA, *ALGORITHMS_EC, *ALGORITHMS_OKP)
ACCEPTED_TYPES: Final = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
KEY_HEADERS: Final = ("jwk", "jku", "x5c", "x5u")
"""Header parameters that carry or point to a key; never used, and a token with one is refused."""
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
MAX_TOKEN_BYTES: Final = 16 * 1024


class TokenError(ValueError):
    """The token is refused; the message is safe to log and to send (it never contains the token)."""


class TransientTokenError(TokenError):
    """Refused now, but the same token may pass later (its key not fetched yet, not yet valid, the IdP unreachable):
    never remembered as refused."""


class UnknownKeyError(TransientTokenError):
    """No key in the set has the token's ``kid``: the caller may refresh the key set once and retry."""


def b64url_decode(text: str) -> bytes:
    """Unpadded base64url, strictly (RFC 7515 §2): no padding, no other alphabet, no impossible length, and
    canonical (the unused low bits of the last character zero), so one value has one spelling."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenError("malformed base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise TokenError("non-canonical base64url")
    return raw


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


def check_header(header: Mapping[str, Any]) -> str:
    """The header's ``alg`` once everything else in the header is acceptable (see the module docstring)."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        shown = alg if isinstance(alg, str) and len(alg) <= 16 and alg.isprintable() else "?"
        raise TokenError(f"algorithm {shown!r} is not accepted; accepted: {', '.join(SUPPORTED_ALGORITHMS)}")
    if "crit" in header:
        raise TokenError("critical header extensions are not supported")
    carried = [name for name in KEY_HEADERS if name in header]
    if carried:
        raise TokenError(f"header {carried[0]!r} is refused: keys come only from the configured key set")
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise TokenError("token typ is not JWT or at+jwt")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError("kid must be a string")
    return alg


def _candidates(token: Token, keys: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    kid = token.header.get("kid")
    if kid is not None:
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
    if alg in ALGORITHMS_RSA:
        return jwk.get("kty") == "RSA"
    if alg in ALGORITHMS_OKP:
        return jwk.get("kty") == "OKP" and jwk.get("crv") == ALGORITHMS_OKP[alg]
    return jwk.get("kty") == "EC" and jwk.get("crv") == ALGORITHMS_EC[alg]


def verify_signature(token: Token, keys: Sequence[Mapping[str, Any]]) -> None:
    alg = check_header(token.header)
    fitting = [k for k in _candidates(token, keys) if _key_fits(alg, k)]
    if not fitting:
        raise TokenError(f"no key in the key set may verify {alg}")
    for jwk in fitting:
        if _verify_with(alg, jwk, token):
            return
    raise TokenError("bad signature")


def _verify_with(alg: str, jwk: Mapping[str, Any], token: Token) -> bool:
    try:
        if alg in ALGORITHMS_RSA:
            scheme, hash_name = ALGORITHMS_RSA[alg]
            n, e = _b64_int(jwk, "n"), _b64_int(jwk, "e")
            return scheme(n, e, token.signing_input, token.signature, hash_name)
        if alg in ALGORITHMS_OKP:
            return ed25519_verify(b64url_decode(str(jwk.get("x", ""))), token.signing_input, token.signature)
        curve = CURVES[ALGORITHMS_EC[alg]]
        x_bytes = b64url_decode(str(jwk.get("x", "")))
        y_bytes = b64url_decode(str(jwk.get("y", "")))
        if len(x_bytes) != curve.size or len(y_bytes) != curve.size:
            return False
        x, y = int.from_bytes(x_bytes, "big"), int.from_bytes(y_bytes, "big")
        return ecdsa_verify(curve, x, y, token.signing_input, token.signature)
    except TokenError:
        return False


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"{name} must be a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, now: float, require_exp: bool = True
) -> None:
    """RFC 7519 §4.1 as an access token for this resource must satisfy them (shared with introspection)."""
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss != issuer:
        raise TokenError("wrong issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not all(isinstance(a, str) for a in audiences):
        raise TokenError("aud must be a string or a list of strings")
    if audience not in audiences:
        raise TokenError("token is not for this resource (aud)")
    exp = _number(claims, "exp")
    if exp is None:
        if require_exp:
            raise TokenError("token without exp")
    elif now > exp + LEEWAY:
        raise TokenError("token expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and now + LEEWAY < nbf:
        raise TransientTokenError("token not yet valid (nbf)")
    iat = _number(claims, "iat")
    if iat is not None and now + LEEWAY < iat:
        raise TransientTokenError("token issued in the future (iat)")
    if "sub" in claims and (not isinstance(claims["sub"], str) or not claims["sub"]):
        raise TokenError("sub must be a non-empty string")
    if "cnf" in claims:
        raise TokenError("sender-constrained token (cnf): proof of possession is not supported here")
    kind = _token_kind(claims)
    if kind is not None:
        raise TokenError(f"not an access token ({kind})")


_NOT_ACCESS: Final = ("id", "refresh", "offline", "logout", "id_token", "refresh_token")


def _token_kind(claims: Mapping[str, Any]) -> str | None:
    """Why the claims belong to another kind of token than an access token, or None. Issuers mark it in the
    payload: Keycloak's ``typ`` (``ID``, ``Refresh``, ``Offline``, ``Logout``), Cognito's ``token_use`` (``id``), and
    introspection's ``token_type`` (RFC 7662; RFC 8693 ``urn:...:token-type:refresh_token``/``id_token``). An ID
    token or a refresh token presented as a bearer token is refused even when its audience fits."""
    for name in ("typ", "token_use", "token_type"):
        value = claims.get(name)
        if isinstance(value, str) and value.lower().rsplit(":", 1)[-1] in _NOT_ACCESS:
            return f"{name} says {value.lower().rsplit(':', 1)[-1]}"
    return None


def verify_jwt(
    token: str, keys: Sequence[Mapping[str, Any]], *, issuer: str, audience: str, now: float
) -> dict[str, Any]:
    """The verified claims, or TokenError (UnknownKeyError when the ``kid`` is not in ``keys``)."""
    parsed = split_token(token)
    verify_signature(parsed, keys)
    check_claims(parsed.claims, issuer=issuer, audience=audience, now=now)
    return dict(parsed.claims)


def parse_jwks(document: object) -> list[dict[str, Any]]:
    """The keys of a JWKS document (``{"keys": [...]}``, strict JSON when given as text); entries that are not
    objects are skipped."""
    if isinstance(document, str | bytes):
        try:
            document = strictjson.loads(document)
        except strictjson.StrictJsonError:
            raise TokenError("the JWKS is not strict JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TokenError('the JWKS is not an object with a "keys" list')
    return [k for k in document["keys"] if isinstance(k, dict)]
