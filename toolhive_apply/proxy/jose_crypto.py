"""Signature verification for JWS in pure Python (the proxy image has no crypto package), verify only: RSA
PKCS#1 v1.5 (RS*), RSASSA-PSS with MGF1 and a salt as long as the hash (PS*, RFC 7518 §3.5), and ECDSA on P-256,
P-384 and P-521 (ES256/ES384/ES512) with JOSE's raw ``r || s`` signature (never DER).

Every range the standards require is checked before any arithmetic (signature length, ``s < n``, ``1 <= r, s < n``,
the public point on the named curve, which has prime order, so an on-curve point is a valid key), and comparisons
are constant time. Only public keys are ever handled.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

_DIGEST_INFO: Final = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
MIN_RSA_BITS: Final = 2048
"""Smaller moduli are refused: they can be factored, so a signature from one proves nothing."""
MAX_RSA_BITS: Final = 16384
"""Larger moduli are refused: nobody signs with them, and each check would cost the proxy a lot of arithmetic."""


def _rsa_open(n: int, e: int, signature: bytes) -> int | None:
    """RFC 8017 §5.2.2 RSAVP1 after the range checks every RSA scheme shares, or None."""
    if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS or e < 3 or e % 2 == 0 or e >= n:
        return None
    if len(signature) != (n.bit_length() + 7) // 8:
        return None
    s = int.from_bytes(signature, "big")
    if s >= n:
        return None
    return pow(s, e, n)


def rsa_pkcs1v15_verify(n: int, e: int, message: bytes, signature: bytes, hash_name: str) -> bool:
    """RFC 8017 §8.2.2 RSASSA-PKCS1-v1_5-VERIFY, by re-encoding EMSA-PKCS1-v1_5 and comparing the whole block."""
    m = _rsa_open(n, e, signature)
    if m is None:
        return False
    k = len(signature)
    t = _DIGEST_INFO[hash_name] + hashlib.new(hash_name, message).digest()
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(m.to_bytes(k, "big"), expected)


def _mgf1(seed: bytes, length: int, hash_name: str) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.new(hash_name, seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def rsa_pss_verify(n: int, e: int, message: bytes, signature: bytes, hash_name: str) -> bool:
    """RFC 8017 §8.1.2 RSASSA-PSS-VERIFY with EMSA-PSS-VERIFY (§9.1.2): MGF1 over the same hash, salt length equal
    to the hash length (what RFC 7518 fixes for PS256/384/512; another salt length is refused)."""
    m = _rsa_open(n, e, signature)
    if m is None:
        return False
    em_bits = n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    if m.bit_length() > em_bits:
        return False
    em = m.to_bytes(em_len, "big")
    h_len = hashlib.new(hash_name).digest_size
    if em_len < 2 * h_len + 2 or em[-1] != 0xBC:
        return False
    masked_db, digest = em[: em_len - h_len - 1], em[em_len - h_len - 1 : -1]
    zero_bits = 8 * em_len - em_bits
    if zero_bits and masked_db[0] >> (8 - zero_bits):
        return False  # the bits above emBits must be zero
    db = bytearray(a ^ b for a, b in zip(masked_db, _mgf1(digest, len(masked_db), hash_name), strict=True))
    db[0] &= 0xFF >> zero_bits
    padding = len(db) - h_len - 1
    if any(db[:padding]) or db[padding] != 0x01:
        return False
    salt = bytes(db[padding + 1 :])
    m_hash = hashlib.new(hash_name, message).digest()
    return hmac.compare_digest(digest, hashlib.new(hash_name, b"\x00" * 8 + m_hash + salt).digest())


@dataclass(frozen=True, slots=True)
class Curve:
    """A NIST prime curve ``y^2 = x^3 + ax + b`` over GF(p) with base point ``g`` of prime order ``n`` (cofactor 1),
    and the hash JOSE pairs with it (RFC 7518 §3.4)."""

    name: str
    p: int
    a: int
    b: int
    n: int
    g: tuple[int, int]
    size: int
    """Bytes of a coordinate, and of each of r and s in a JOSE signature."""
    hash_name: str


_P256_P: Final = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_P384_P: Final = int(
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff", 16
)
_P521_P: Final = 2**521 - 1
P256: Final = Curve(
    "P-256",
    _P256_P,
    _P256_P - 3,
    0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    (
        0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    ),
    32,
    "sha256",
)
P384: Final = Curve(
    "P-384",
    _P384_P,
    _P384_P - 3,
    int("b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef", 16),
    int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16),
    (
        int("aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7", 16),
        int("3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f", 16),
    ),
    48,
    "sha384",
)
P521: Final = Curve(
    "P-521",
    _P521_P,
    _P521_P - 3,
    int(
        "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df8"
        "83d2c34f1ef451fd46b503f00",
        16,
    ),
    int(
        "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8"
        "899c47aebb6fb71e91386409",
        16,
    ),
    (
        int(
            "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348"
            "b3c1856a429bf97e7e31c2e5bd66",
            16,
        ),
        int(
            "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c"
            "7086a272c24088be94769fd16650",
            16,
        ),
    ),
    66,
    "sha512",
)
CURVES: Final = {c.name: c for c in (P256, P384, P521)}
Point = tuple[int, int] | None  # None is the point at infinity


def on_curve(curve: Curve, x: int, y: int) -> bool:
    if not (0 <= x < curve.p and 0 <= y < curve.p):
        return False
    return (y * y - (x * x * x + curve.a * x + curve.b)) % curve.p == 0


Jacobian = tuple[int, int, int]
"""``(X, Y, Z)`` standing for the affine point ``(X/Z², Y/Z³)``; ``Z == 0`` is the point at infinity. Jacobian
coordinates need no modular inversion per step (one at the end), which keeps a verification cheap: the proxy checks
signatures of requests anyone may send, so their cost bounds what a flood of forged tokens can do to it."""
_INFINITY: Final = (1, 1, 0)


def _double(curve: Curve, point: Jacobian) -> Jacobian:
    """dbl-2001-b (for ``a = -3``, which every curve here has)."""
    x1, y1, z1 = point
    p = curve.p
    if z1 == 0 or y1 == 0:
        return _INFINITY
    delta = z1 * z1 % p
    gamma = y1 * y1 % p
    beta = x1 * gamma % p
    alpha = 3 * (x1 - delta) * (x1 + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y1 + z1) * (y1 + z1) - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return x3, y3, z3


def _add(curve: Curve, p1: Jacobian, p2: Jacobian) -> Jacobian:
    """add-2007-bl, with the doubling and inverse cases handled."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    p = curve.p
    z1z1, z2z2 = z1 * z1 % p, z2 * z2 % p
    u1, u2 = x1 * z2z2 % p, x2 * z1z1 % p
    s1, s2 = y1 * z2 * z2z2 % p, y2 * z1 * z1z1 % p
    h, r = (u2 - u1) % p, 2 * (s2 - s1) % p
    if h == 0:
        return _double(curve, p1) if r == 0 else _INFINITY
    i = 4 * h * h % p
    j = h * i % p
    v = u1 * i % p
    x3 = (r * r - j - 2 * v) % p
    y3 = (r * (v - x3) - 2 * s1 * j) % p
    z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % p
    return x3, y3, z3


def _multiply_add(curve: Curve, u1: int, u2: int, q: tuple[int, int]) -> Point:
    """``u1·G + u2·Q`` by Shamir's trick (one pass over the bits; only public values, so timing leaks nothing)."""
    g: Jacobian = (*curve.g, 1)
    q_j: Jacobian = (*q, 1)
    both = _add(curve, g, q_j)
    result: Jacobian = _INFINITY
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        result = _double(curve, result)
        pick = ((u1 >> bit) & 1, (u2 >> bit) & 1)
        if pick == (1, 1):
            result = _add(curve, result, both)
        elif pick == (1, 0):
            result = _add(curve, result, g)
        elif pick == (0, 1):
            result = _add(curve, result, q_j)
    x, y, z = result
    if z == 0:
        return None
    z_inv = pow(z, -1, curve.p)
    z_inv2 = z_inv * z_inv % curve.p
    return x * z_inv2 % curve.p, y * z_inv2 * z_inv % curve.p


def ecdsa_verify(curve: Curve, x: int, y: int, message: bytes, signature: bytes) -> bool:
    """FIPS 186-4 §6.4.2 ECDSA verification; ``signature`` is JOSE's raw ``r || s`` of ``2 * curve.size`` bytes."""
    if len(signature) != 2 * curve.size or not on_curve(curve, x, y):
        return False
    r = int.from_bytes(signature[: curve.size], "big")
    s = int.from_bytes(signature[curve.size :], "big")
    if not (1 <= r < curve.n and 1 <= s < curve.n):
        return False
    digest = hashlib.new(curve.hash_name, message).digest()
    e = int.from_bytes(digest, "big") >> max(0, 8 * len(digest) - curve.n.bit_length())
    w = pow(s, -1, curve.n)
    point = _multiply_add(curve, e * w % curve.n, r * w % curve.n, (x, y))
    return point is not None and point[0] % curve.n == r


def ecdsa_p256_verify(x: int, y: int, message: bytes, signature: bytes) -> bool:
    """ES256: ECDSA on P-256 with SHA-256."""
    return ecdsa_verify(P256, x, y, message, signature)
