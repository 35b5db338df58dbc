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
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
        public = self.private.public_key().public_numbers()
        if self.alg.startswith("RS"):
            return {
                "kty": "RSA",
                "kid": self.kid,
                "alg": self.alg,
                "use": "sig",
                "n": _b64(public.n),
                "e": _b64(public.e),
            }
        return {
            "kty": "EC",
            "kid": self.kid,
            "alg": self.alg,
            "crv": "P-256",
            "x": _b64(public.x, 32),
            "y": _b64(public.y, 32),
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str = "rsa-1") -> SigningKey:
    return SigningKey("RS256", kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey("ES256", kid, ec.generate_private_key(ec.SECP256R1()))


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
