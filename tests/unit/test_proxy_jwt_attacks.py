"""The proxy's token check under attack, one test per class of trick: algorithm confusion, ``crit``, key-carrying
headers, odd ``kid``s, duplicate JSON keys, claim types (a JSON ``true`` where a number belongs), huge or
non-canonical tokens, ``typ``. Every token is a real JWS made with keys generated here (pyjwt and cryptography);
the accepted variants are asserted too, so a check that refuses everything fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from tests.support.oidc_issuer import AUDIENCE, ISSUER, Issuer, b64, ec_key, ed25519_key, rsa_key, sign_raw
from toolhive_apply.proxy.jose_crypto import CURVES, _multiply_add, on_curve
from toolhive_apply.proxy.jose_ed25519 import L as ED25519_L
from toolhive_apply.proxy.jose_ed25519 import _decode as ed25519_decode
from toolhive_apply.proxy.jwt_verify import MAX_TOKEN_BYTES, TokenError, UnknownKeyError, verify_jwt

RSA = rsa_key("rsa-1")
EC = ec_key("ec-1")
ALL_KEYS = [
    RSA,
    EC,
    rsa_key("rs384", "RS384"),
    rsa_key("rs512", "RS512"),
    rsa_key("ps256", "PS256"),
    rsa_key("ps384", "PS384"),
    rsa_key("ps512", "PS512"),
    ec_key("es384", "ES384"),
    ec_key("es512", "ES512"),
    ed25519_key("ed25519"),
]
ISS = Issuer(keys=ALL_KEYS)


def verify(token: str, keys: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return verify_jwt(token, keys or ISS.jwks()["keys"], issuer=ISSUER, audience=AUDIENCE, now=time.time())


def raw(key: Any, header: dict[str, Any] | str, payload: dict[str, Any] | str) -> str:
    as_bytes = [(p if isinstance(p, str) else json.dumps(p)).encode() for p in (header, payload)]
    return sign_raw(key, as_bytes[0], as_bytes[1])


def refused(token: str, match: str | None = None, keys: list[dict[str, Any]] | None = None) -> None:
    with pytest.raises(TokenError, match=match):
        verify(token, keys)


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: k.alg)
def test_every_supported_algorithm_verifies_and_a_flipped_bit_does_not(key: Any) -> None:
    token = ISS.token(key)
    assert verify(token)["sub"] == "alice"
    head, _, signature = token.split(".")
    forged = ISS.token(key, sub="mallory").split(".")[1]
    refused(f"{head}.{forged}.{signature}", "bad signature")


def test_alg_confusion_is_refused() -> None:
    claims = ISS.claims()
    pem = RSA.public_pem()
    jwk_text = json.dumps(RSA.jwk()).encode()
    for alg, secret in (("HS256", pem), ("HS384", pem), ("HS512", pem), ("HS256", jwk_text)):
        header = b64(json.dumps({"alg": alg, "kid": RSA.kid}).encode())
        body = b64(json.dumps(claims).encode())
        name = "sha" + alg[2:]
        mac = hmac.new(secret, f"{header}.{body}".encode(), getattr(hashlib, name)).digest()
        refused(f"{header}.{body}.{b64(mac)}", "not accepted")
    for alg in ("none", "None", "NONE", "nOnE", "", "Ed448", "ES256K", "RSA-OAEP", "eddsa"):
        refused(raw(RSA, {"alg": alg, "kid": RSA.kid}, claims).rsplit(".", 1)[0] + ".", "not accepted")
    refused(raw(RSA, {"kid": RSA.kid}, claims), "not accepted")  # no alg at all
    refused(raw(RSA, {"alg": ["RS256"], "kid": RSA.kid}, claims), "not accepted")
    # alg in the header against the key: an RSA key under PS256 when its JWK says RS256, an EC key under RS256
    ps_signed = jwt.encode(claims, RSA.private, algorithm="PS256", headers={"kid": RSA.kid})
    refused(ps_signed, "no key")
    no_alg = [{k: v for k, v in RSA.jwk().items() if k != "alg"}]
    assert verify(ps_signed, no_alg)["sub"] == "alice"  # a JWK without alg serves every RSA alg
    rs_as_ps = ISS.token(RSA).split(".")
    rs_as_ps[0] = b64(json.dumps({"alg": "PS256", "kid": "ps256"}).encode())
    refused(".".join(rs_as_ps))


def test_ecdsa_wrong_curve_and_der_signatures_are_refused() -> None:
    claims = ISS.claims()
    es384 = next(k for k in ALL_KEYS if k.alg == "ES384")
    # a P-384 key's signature under an ES256 header naming it: the curve does not fit the alg
    header = {"alg": "ES256", "kid": es384.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    der = es384.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    refused(f"{signing_input}.{b64(der)}", "no key")
    # an ES256 signature in DER (what OpenSSL emits) instead of JOSE's raw r || s
    header = {"alg": "ES256", "kid": EC.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    der = EC.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    refused(f"{signing_input}.{b64(der)}", "bad signature")
    # a JWK claiming P-256 whose point is on no such curve (invalid-curve attack)
    bad_point = {**EC.jwk(), "y": EC.jwk()["x"]}
    refused(ISS.token(EC), "bad signature", [bad_point])


def test_pss_with_another_salt_length_is_refused() -> None:
    ps256 = next(k for k in ALL_KEYS if k.alg == "PS256")
    header = {"alg": "PS256", "kid": ps256.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(ISS.claims()).encode())}"
    for salt, accepted in ((32, True), (0, False), (padding.PSS.MAX_LENGTH, False)):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
        signature = ps256.private.sign(signing_input.encode(), pss, hashes.SHA256())
        token = f"{signing_input}.{b64(signature)}"
        if accepted:
            assert verify(token)["sub"] == "alice"
        else:
            refused(token, "bad signature")


def test_crit_is_refused_whatever_it_names() -> None:
    for crit in (["exp"], [], ["b64"], ["http://example.com/ext"], "exp"):
        refused(ISS.token(RSA, headers={"crit": crit, "exp": 1}), "critical")


class _KeyHost:
    """A loopback server a malicious ``jku``/``x5u`` points to; it counts every request."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.hits = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                host.hits += 1
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def attacker_host() -> Iterator[tuple[_KeyHost, Any]]:
    attacker = rsa_key("rsa-1")
    host = _KeyHost({"keys": [attacker.jwk()]})
    yield host, attacker
    host.server.shutdown()
    host.server.server_close()


def test_key_carrying_headers_are_never_used(attacker_host: tuple[_KeyHost, Any]) -> None:
    host, attacker = attacker_host
    jwk = attacker.jwk()
    for header in (
        {"jwk": jwk},
        {"jwk": jwk, "kid": None},
        {"jku": host.url},
        {"x5u": host.url},
        {"x5c": ["MIIB"]},
    ):
        headers: dict[str, Any] = {"kid": attacker.kid, **header}
        token = raw(attacker, {"alg": "RS256", **{k: v for k, v in headers.items() if v is not None}}, ISS.claims())
        refused(token, "configured key set")
    assert host.hits == 0
    refused(ISS.token(attacker), "bad signature")  # same kid, another key: still no


def test_odd_kids() -> None:
    claims = ISS.claims()
    for kid in (None, 7, ["rsa-1"], {"kid": "rsa-1"}, True):
        refused(raw(RSA, {"alg": "RS256", "kid": kid}, claims), "kid must be a string")
    for kid in ("", "RSA-1", "rsa-1 ", "../../etc/passwd", "rsa-1\x00", "x" * 4000, "\u212aid"):
        with pytest.raises(UnknownKeyError):
            verify(raw(RSA, {"alg": "RS256", "kid": kid}, claims))
    assert verify(raw(RSA, {"alg": "RS256"}, claims))["sub"] == "alice"  # no kid: every fitting key is tried
    two_with_one_kid = [{**RSA.jwk(), "kid": "dup"}, {**rsa_key().jwk(), "kid": "dup"}]
    assert verify(raw(RSA, {"alg": "RS256", "kid": "dup"}, claims), two_with_one_kid)["sub"] == "alice"


def test_duplicate_json_keys_are_refused() -> None:
    good_claims = json.dumps(ISS.claims())[1:-1]
    header_dup = '{"alg":"none","alg":"RS256","kid":"rsa-1"}'
    refused(raw(RSA, header_dup, json.dumps(ISS.claims())), "strict JSON")
    payload_dup = '{"aud":"another-mcp",' + good_claims + "}"
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, payload_dup), "strict JSON")
    payload_dup = "{" + good_claims + ',"sub":"admin"}'
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, payload_dup), "strict JSON")
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, '{"exp": NaN}'), "strict JSON")
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, '["not", "an", "object"]'), "not a JSON object")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": 1}, "aud"),
        ({"aud": {"mcp-team": True}}, "aud"),
        ({"aud": [[AUDIENCE]]}, "aud"),
        ({"aud": [AUDIENCE, 7]}, "aud must be"),
        ({"aud": ""}, "aud"),
        ({"aud": AUDIENCE.upper()}, "aud"),
        ({"iss": [ISSUER]}, "issuer"),
        ({"iss": ISSUER.upper()}, "issuer"),
        ({"iss": None}, "issuer"),
        ({"exp": True}, "exp must be a number"),
        ({"exp": "9999999999"}, "exp must be a number"),
        ({"exp": [9999999999]}, "exp must be a number"),
        ({"nbf": True}, "nbf must be a number"),
        ({"nbf": False}, "nbf must be a number"),
        ({"iat": True}, "iat must be a number"),
        ({"iat": "now"}, "iat must be a number"),
        ({"iat": time.time() + 3600}, "iat"),
        ({"nbf": time.time() + 3600}, "nbf"),
        ({"exp": time.time() - 61}, "expired"),
        ({"sub": ""}, "sub"),
        ({"sub": 42}, "sub"),
        ({"sub": ["alice"]}, "sub"),
        ({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}, "cnf"),
        ({"typ": "ID", "nonce": "n"}, "not an access token"),
        ({"typ": "Refresh"}, "not an access token"),
        ({"token_use": "id"}, "not an access token"),
        ({"token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "not an access token"),
    ],
)
def test_claims_of_the_wrong_type_or_value_are_refused(claims: dict[str, Any], reason: str) -> None:
    base = {**ISS.claims(), **claims}
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, base), reason)


def test_claims_a_strict_reader_accepts() -> None:
    now = time.time()
    for overrides in (
        {"exp": now + 30.5, "iat": now - 0.5, "nbf": now + 30},  # floats, nbf within the leeway
        {"aud": ["https://other.example/mcp", AUDIENCE]},
        {"exp": 10**299},  # far future, still a float64
        {"typ": "Bearer", "token_use": "access"},  # Keycloak's and Cognito's marks of an access token
    ):
        token = raw(RSA, {"alg": "RS256", "kid": RSA.kid}, {**ISS.claims(), **overrides})
        assert verify(token)["sub"] == "alice"


def test_huge_and_non_canonical_tokens_are_refused() -> None:
    refused(ISS.token(RSA, padding_claim="x" * MAX_TOKEN_BYTES), "too large")
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, '{"exp": 1' + "0" * 400 + "}"), "strict JSON")
    deep = '{"x":' * 100 + "1" + "}" * 100
    refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, deep), "strict JSON")
    head, payload, signature = ISS.token(RSA).split(".")
    # 256 signature bytes leave 4 unused bits in the last character: another spelling of the same bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    refused(f"{head}.{payload}.{twin}", "non-canonical")
    refused(f"{head}.{payload}.{signature}==", "base64url")
    refused(f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}x", "base64url")
    refused(f"{head}.{payload}.{signature}.extra", "compact")
    refused(f"{head}.{payload}.", "bad signature")


def test_typ() -> None:
    claims = ISS.claims()
    for typ in ("JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt"):
        assert verify(raw(RSA, {"alg": "RS256", "kid": RSA.kid, "typ": typ}, claims))["sub"] == "alice"
    assert verify(raw(RSA, {"alg": "RS256", "kid": RSA.kid}, claims))["sub"] == "alice"
    for bad in ("JOSE", "dpop+jwt", "logout+jwt", "secevent+jwt", "", 1, None, ["JWT"]):
        refused(raw(RSA, {"alg": "RS256", "kid": RSA.kid, "typ": bad}, claims), "typ")


@pytest.mark.parametrize("name", ["P-256", "P-384", "P-521"])
def test_curve_constants_and_point_arithmetic(name: str) -> None:
    """The base point is on its curve and has order n; doubling, addition and inverses agree (the group law in
    Jacobian coordinates). A wrong constant or formula fails here before it fails as a mystery signature."""
    curve = CURVES[name]
    assert on_curve(curve, *curve.g)
    assert _multiply_add(curve, curve.n, 0, curve.g) is None
    assert _multiply_add(curve, 1, 1, curve.g) == _multiply_add(curve, 2, 0, curve.g)
    assert _multiply_add(curve, 0, 1, curve.g) == curve.g
    assert _multiply_add(curve, 5, curve.n - 5, curve.g) is None
    point = _multiply_add(curve, 0xC0FFEE, 0, curve.g)
    assert point is not None and on_curve(curve, *point)
    assert not on_curve(curve, curve.g[0], curve.g[1] + 1)


def test_eddsa_is_ed25519_only_and_strict() -> None:
    """RFC 8037/8032: an Ed448 key never fits; S >= L (the malleable twin of a signature) and a non-canonical
    point encoding are refused; EdDSA under an EC or RSA key is refused."""
    ed = next(k for k in ALL_KEYS if k.alg == "EdDSA")
    token = ISS.token(ed)
    assert verify(token)["sub"] == "alice"
    refused(token, "no key", [{**ed.jwk(), "crv": "Ed448"}])
    refused(token, "no key", [{**EC.jwk(), "kid": ed.kid, "alg": "EdDSA"}])
    head, payload, signature = token.split(".")
    raw_sig = base64.urlsafe_b64decode(signature + "==")
    s = int.from_bytes(raw_sig[32:], "little") + ED25519_L
    twin = raw_sig[:32] + s.to_bytes(32, "little")
    refused(f"{head}.{payload}.{b64(twin)}", "bad signature")
    p = 2**255 - 19
    assert ed25519_decode((1).to_bytes(32, "little")) is not None  # y = 1, the neutral point
    assert ed25519_decode((p + 1).to_bytes(32, "little")) is None  # the same y spelt as p + 1
    assert ed25519_decode((1 | 1 << 255).to_bytes(32, "little")) is None  # x = 0 with the sign bit set
