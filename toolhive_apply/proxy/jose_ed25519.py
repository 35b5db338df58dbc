"""Ed25519 signature verification (RFC 8032 §5.1.7) in pure Python, for JWS ``alg: EdDSA`` with an OKP key on
``crv: Ed25519`` (RFC 8037). Verify only; only public keys are handled.

Strict where RFC 8032 asks a verifier to be: the signature is exactly 64 bytes, ``S < L`` (no malleable second
encoding), both points decode canonically (``y < p``, the sign bit consistent) and lie on the curve. The check is
the cofactorless equation ``[S]B = R + [k]A``, in extended coordinates (no inversion per step).
"""

from __future__ import annotations

import hashlib
from typing import Final

P: Final = 2**255 - 19
D: Final = -121665 * pow(121666, -1, P) % P
L: Final = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1: Final = pow(2, (P - 1) // 4, P)
Extended = tuple[int, int, int, int]
"""``(X, Y, Z, T)`` standing for ``(X/Z, Y/Z)`` with ``T = XY/Z``."""
_IDENTITY: Final = (0, 1, 1, 0)


def _add(p1: Extended, p2: Extended) -> Extended:
    """RFC 8032 §5.1.4 addition; the formula is complete, so it also doubles."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def _multiply(scalar: int, point: Extended) -> Extended:
    result = _IDENTITY
    for bit in range(scalar.bit_length() - 1, -1, -1):
        result = _add(result, result)
        if (scalar >> bit) & 1:
            result = _add(result, point)
    return result


def _decode(encoded: bytes) -> Extended | None:
    """RFC 8032 §5.1.3 point decoding, refusing every non-canonical or off-curve encoding."""
    if len(encoded) != 32:
        return None
    value = int.from_bytes(encoded, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        if sign:
            return None
        return 0, y, 1, 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y, 1, x * y % P


_BASE: Final = _decode(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))


def _same(p1: Extended, p2: Extended) -> bool:
    return (p1[0] * p2[2] - p2[0] * p1[2]) % P == 0 and (p1[1] * p2[2] - p2[1] * p1[2]) % P == 0


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64 or _BASE is None:
        return False
    a = _decode(public_key)
    r = _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    return _same(_multiply(s, _BASE), _add(r, _multiply(k, a)))
