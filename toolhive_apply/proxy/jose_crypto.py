"""Signature verification for JWS in pure Python (the proxy image has no crypto package): RSA PKCS#1 v1.5 and
ECDSA on P-256, verify only.

Both check every range the standards require before any arithmetic (signature length, ``s < n``, ``1 <= r, s < n``,
the public point on the curve), and compare in constant time. Only public keys are ever handled.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Final

HashFunction = Callable[[bytes], "hashlib._Hash"]

_DIGEST_INFO: Final = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
MIN_RSA_BITS: Final = 2048
"""Smaller moduli are refused: they can be factored, so a signature from one proves nothing."""


def rsa_pkcs1v15_verify(n: int, e: int, message: bytes, signature: bytes, hash_name: str) -> bool:
    """RFC 8017 §8.2.2 RSASSA-PKCS1-v1_5-VERIFY, by re-encoding EMSA-PKCS1-v1_5 and comparing the whole block."""
    if n.bit_length() < MIN_RSA_BITS or e < 3 or e % 2 == 0:
        return False
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    digest = hashlib.new(hash_name, message).digest()
    t = _DIGEST_INFO[hash_name] + digest
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)


# P-256 (SEC 2 / FIPS 186-4 secp256r1): y^2 = x^3 + ax + b over GF(p), base point G of prime order n.
P256_P: Final = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A: Final = P256_P - 3
P256_B: Final = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_G: Final = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
Point = tuple[int, int] | None  # None is the point at infinity


def on_p256(x: int, y: int) -> bool:
    if not (0 <= x < P256_P and 0 <= y < P256_P):
        return False
    return (y * y - (x * x * x + P256_A * x + P256_B)) % P256_P == 0


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P256_P == 0:
            return None
        slope = (3 * x1 * x1 + P256_A) * pow(2 * y1, -1, P256_P) % P256_P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P256_P) % P256_P
    x3 = (slope * slope - x1 - x2) % P256_P
    return x3, (slope * (x1 - x3) - y1) % P256_P


def _multiply_add(u1: int, u2: int, q: tuple[int, int]) -> Point:
    """``u1·G + u2·Q`` by Shamir's trick (one pass over the bits; only public values, so timing leaks nothing)."""
    both = _add(P256_G, q)
    result: Point = None
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        result = _add(result, result)
        pick = ((u1 >> bit) & 1, (u2 >> bit) & 1)
        if pick == (1, 1):
            result = _add(result, both)
        elif pick == (1, 0):
            result = _add(result, P256_G)
        elif pick == (0, 1):
            result = _add(result, q)
    return result


def ecdsa_p256_verify(x: int, y: int, message: bytes, signature: bytes) -> bool:
    """FIPS 186-4 §6.4.2 ECDSA verification with SHA-256; ``signature`` is JOSE's raw ``r || s`` (64 bytes)."""
    if len(signature) != 64 or not on_p256(x, y):
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (1 <= r < P256_N and 1 <= s < P256_N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, P256_N)
    point = _multiply_add(e * w % P256_N, r * w % P256_N, (x, y))
    return point is not None and point[0] % P256_N == r
