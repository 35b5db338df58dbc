"""A local OIDC issuer for tests: keys made here (RS256 and ES256), tokens signed with them, and the JWKS document.
Nothing leaves the machine: the JWKS is served, when served at all, on loopback by the test itself."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://idp.test/realms/team"
AUDIENCE = "mcp-team"


def _b64(value: int, length: int | None = None) -> str:
    raw = value.to_bytes(length or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        if self.alg == "EdDSA":
            raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "kid": self.kid, "alg": "EdDSA", "crv": "Ed25519", "x": b64(raw)}
        public = self.private.public_key().public_numbers()
        if self.alg[:2] in ("RS", "PS"):
            return {
                "kty": "RSA",
                "kid": self.kid,
                "alg": self.alg,
                "use": "sig",
                "n": _b64(public.n),
                "e": _b64(public.e),
            }
        crv, size = EC_CURVES[self.alg][0], EC_CURVES[self.alg][2]
        return {
            "kty": "EC",
            "kid": self.kid,
            "alg": self.alg,
            "crv": crv,
            "x": _b64(public.x, size),
            "y": _b64(public.y, size),
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


EC_CURVES: dict[str, tuple[str, Any, int]] = {
    "ES256": ("P-256", ec.SECP256R1, 32),
    "ES384": ("P-384", ec.SECP384R1, 48),
    "ES512": ("P-521", ec.SECP521R1, 66),
}


def rsa_key(kid: str = "rsa-1", alg: str = "RS256") -> SigningKey:
    """An RSA key for RS256/384/512 or PS256/384/512."""
    return SigningKey(alg, kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ed25519_key(kid: str = "ed-1") -> SigningKey:
    return SigningKey("EdDSA", kid, ed25519.Ed25519PrivateKey.generate())


def ec_key(kid: str = "ec-1", alg: str = "ES256") -> SigningKey:
    """An EC key on the curve JOSE pairs with ``alg``."""
    return SigningKey(alg, kid, ec.generate_private_key(EC_CURVES[alg][1]()))


@dataclass
class Issuer:
    keys: list[SigningKey] = field(default_factory=lambda: [rsa_key(), ec_key()])
    issuer: str = ISSUER
    audience: str = AUDIENCE

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "alice",
            "scope": "mcp openid",
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: SigningKey | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims), key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})}
        )


def unsigned_token(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def hs256_with_public_key(issuer: Issuer, key: SigningKey) -> str:
    """The classic algorithm-confusion token: HMAC keyed with the RSA public key's PEM text."""
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = unsigned_token(issuer.claims(), header).rstrip(".")
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_raw(key: SigningKey, header: bytes, payload: bytes) -> str:
    """A token whose header and payload are exactly these bytes (duplicate keys and all), validly signed by ``key``:
    what an issuer with odd JSON, or an attacker holding a key, could produce."""
    from jwt.algorithms import get_default_algorithms

    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = get_default_algorithms()[key.alg].sign(signing_input.encode(), key.private)
    return f"{signing_input}.{b64(signature)}"
