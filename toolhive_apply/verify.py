"""`toolhive-apply verify`: prove, from the outside, that each published endpoint enforces what its spec says.

Each workload is probed through its published address only (never another host: a metadata URL pointing elsewhere is a
failed check, not a request), one check per line: MCP initialize; a foreign Origin and a bad Host refused (403); with
OIDC, no token refused with an RFC 9728 challenge, a token for another audience refused (verify signs one with a key of
its own: whatever the proxy does, it must not accept it), the protected-resource metadata naming the issuer, with
`scopes` the challenge's `scope` and the metadata's `scopes_supported` naming every required scope; with strict protocol
validation, a bogus MCP-Protocol-Version refused (400); an unknown session refused (404).
Checks that need a real token are skipped unless one is given (`--token-env`); `--other-audience-token-env` gives a
token the issuer signed for another resource, so the audience check is proven on a signature the proxy accepts.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from toolhive_apply.engine.resource import Spec
from toolhive_apply.providers.workload.endpoint import ENDPOINT_KEY
from toolhive_apply.providers.workload.spec import client_host
from toolhive_apply.providers.workload.spec_model import WorkloadSpec

TIMEOUT: Final = 30.0
"""Seconds one probe request may take (a JWT check in pure Python on a loaded machine is slow, not wrong)."""
FOREIGN_ORIGIN: Final = "https://verify.invalid"
FOREIGN_HOST: Final = "verify.invalid"
OTHER_AUDIENCE: Final = "toolhive-apply-verify-another-audience"
BOGUS_VERSION: Final = "1999-01-01"
PROTOCOL_VERSION: Final = "2025-06-18"
MAX_BODY: Final = 256 * 1024
Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    workload: str
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():4} workload/{self.workload}: {self.name}: {self.detail}"

    def as_json(self) -> dict[str, str]:
        return {"workload": self.workload, "check": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(slots=True)
class Endpoint:
    """One published endpoint: where it is, what it must enforce, and the session made while probing."""

    name: str
    host: str
    port: int
    path: str
    sse: bool
    issuer: str | None
    strict: bool
    token: str | None
    scopes: tuple[str, ...] = ()
    other_audience_token: str | None = None
    """A token the issuer itself signed for another resource: with it, the audience check is proven on a
    signature the proxy accepts; without it, a token signed by verify's own key stands in (refused either way)."""
    session: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def authority(self) -> str:
        where = f"[{self.host}]" if ":" in self.host else self.host
        return f"{where}:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """One request on a fresh connection (a refused probe must not poison the next); bounded body read."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            sent = {"Host": self.authority, **(headers or {})}
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in sent.items():
                connection.putheader(key, value)
            connection.putheader("Content-Length", str(len(body or b"")))
            connection.endheaders(body or b"")
            response = connection.getresponse()
            headers_seen = {k.lower(): v for k, v in response.getheaders()}
            if "text/event-stream" in headers_seen.get("content-type", "") and method == "GET":
                data = b""  # an open event stream: the headers are the answer
            else:
                data = _read_event_or_body(response)
            return Reply(response.status, headers_seen, data)
        finally:
            connection.close()


def _read_event_or_body(response: http.client.HTTPResponse) -> bytes:
    """A JSON body, or an SSE stream read up to its first complete event (the reply to our request)."""
    if "text/event-stream" not in (response.getheader("Content-Type") or ""):
        return response.read(MAX_BODY)
    data = b""
    while len(data) < MAX_BODY:
        line = response.readline(MAX_BODY)
        if not line:
            break
        data += line
        if line in (b"\n", b"\r\n") and b"data:" in data:
            break
    return data


def _json_message(body: bytes) -> dict[str, Any] | None:
    """The JSON-RPC message of a JSON or single-event SSE body."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith(("event:", "data:", "id:", ":")):
        text = "\n".join(line[5:].strip() for line in text.splitlines() if line.startswith("data:"))
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _initialize(ident: int = 1) -> bytes:
    params = {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "toolhive-apply-verify", "version": "1"},
    }
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": "initialize", "params": params}).encode()


MCP_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def endpoint_of(spec: Spec, token: str | None, other_audience_token: str | None = None) -> Endpoint:
    endpoint = spec.get(ENDPOINT_KEY) or {}
    oidc = endpoint.get("oidc") if endpoint.get("auth") == "oidc" else None
    sse = spec.get("proxy_mode") == "sse"
    return Endpoint(
        name=str(spec["name"]),
        host=client_host(WorkloadSpec.from_document(spec)),
        port=int(spec["proxy_port"]),
        path="/sse" if sse else "/mcp",
        sse=sse,
        issuer=str(oidc["issuer"]) if oidc else None,
        strict=bool(endpoint.get("strict_protocol_validation")),
        token=token if oidc else None,
        other_audience_token=other_audience_token if oidc else None,
        scopes=tuple(str(s) for s in (oidc.get("scopes") or ())) if oidc else (),
    )


def _auth(endpoint: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}


def probe(spec: Spec, token: str | None = None, other_audience_token: str | None = None) -> list[Check]:
    """Every check of one workload, in order; an endpoint that does not answer at all fails once, clearly."""
    endpoint = endpoint_of(spec, token, other_audience_token)
    checks: list[Check] = []
    try:
        for name, status, detail in _checks(endpoint):
            checks.append(Check(endpoint.name, name, status, detail))
    except OSError as exc:
        checks.append(Check(endpoint.name, "reachable", "fail", f"{endpoint.authority}: {exc.strerror or exc}"))
    finally:
        if endpoint.session:
            with contextlib.suppress(OSError):
                endpoint.request("DELETE", endpoint.path, None, {"Mcp-Session-Id": endpoint.session, **_auth(endpoint)})
    return checks


def _checks(endpoint: Endpoint) -> Iterator[tuple[str, Status, str]]:
    yield _check_initialize(endpoint)
    yield _refused(endpoint, "foreign Origin refused", {"Origin": FOREIGN_ORIGIN}, 403)
    yield _refused(endpoint, "bad Host refused", {"Host": FOREIGN_HOST}, 403)
    if endpoint.issuer is not None:
        yield _check_no_token(endpoint)
        yield _check_other_audience(endpoint)
        yield _check_metadata(endpoint)
        if endpoint.scopes:
            yield _check_scopes(endpoint)
    if endpoint.strict:
        yield _check_protocol_version(endpoint)
    if not endpoint.sse:
        yield _check_unknown_session(endpoint)


def _open(endpoint: Endpoint, headers: Mapping[str, str]) -> Reply:
    """The endpoint's first request: initialize (streamable HTTP) or opening the event stream (SSE)."""
    if endpoint.sse:
        return endpoint.request("GET", endpoint.path, None, {"Accept": "text/event-stream", **headers})
    return endpoint.request("POST", endpoint.path, _initialize(), {**MCP_HEADERS, **headers})


def _check_initialize(endpoint: Endpoint) -> tuple[str, Status, str]:
    name = "MCP initialize"
    if endpoint.issuer is not None and not endpoint.token:
        return name, "skip", "OIDC is on: give a valid token with --token-env to probe it"
    reply = _open(endpoint, _auth(endpoint))
    if endpoint.sse:
        ok = reply.status == 200 and "text/event-stream" in reply.header("content-type")
        return name, "pass" if ok else "fail", f"GET {endpoint.path}: HTTP {reply.status}"
    message = _json_message(reply.body)
    result = message.get("result") if message else None
    if reply.status != 200 or not isinstance(result, dict):
        return name, "fail", f"HTTP {reply.status}, no initialize result"
    endpoint.session = reply.header("mcp-session-id") or None
    server = (result.get("serverInfo") or {}).get("name", "?")
    return name, "pass", f"server {server!r}, protocol {result.get('protocolVersion')}"


def _refused(endpoint: Endpoint, name: str, headers: Mapping[str, str], expected: int) -> tuple[str, Status, str]:
    reply = _open(endpoint, {**_auth(endpoint), **headers})
    what = ", ".join(f"{k}: {v}" for k, v in headers.items())
    if reply.status == expected:
        return name, "pass", f"{what} -> HTTP {reply.status}"
    return name, "fail", f"{what} -> HTTP {reply.status}, expected {expected}"


def _check_no_token(endpoint: Endpoint) -> tuple[str, Status, str]:
    name = "no token refused"
    reply = _open(endpoint, {})
    challenge = reply.header("www-authenticate")
    if reply.status != 401:
        return name, "fail", f"HTTP {reply.status} without a token, expected 401"
    if "resource_metadata=" not in challenge or not challenge.lower().startswith("bearer"):
        return name, "fail", f"401 without a Bearer resource_metadata challenge (WWW-Authenticate: {challenge!r})"
    endpoint.notes.append(challenge)
    return name, "pass", "HTTP 401 with WWW-Authenticate: Bearer resource_metadata=..."


def _check_other_audience(endpoint: Endpoint) -> tuple[str, Status, str]:
    name = "token for another audience refused"
    if endpoint.other_audience_token:
        reply = _open(endpoint, {"Authorization": f"Bearer {endpoint.other_audience_token}"})
        if reply.status == 401:
            return name, "pass", "a token the issuer signed for another audience -> HTTP 401"
        return name, "fail", f"a token the issuer signed for another audience got HTTP {reply.status}, expected 401"
    token = foreign_token(str(endpoint.issuer), OTHER_AUDIENCE)
    reply = _open(endpoint, {"Authorization": f"Bearer {token}"})
    if reply.status == 401:
        return (
            name,
            "pass",
            (
                f"aud {OTHER_AUDIENCE!r}, signed by a key of verify's own -> HTTP 401 (give --other-audience-token-env "
                "with a token the issuer signed for another resource to prove the audience check itself)"
            ),
        )
    return name, "fail", f"a token for audience {OTHER_AUDIENCE!r} got HTTP {reply.status}, expected 401"


def _metadata_paths(endpoint: Endpoint) -> list[str]:
    """The challenge's resource_metadata path (only on this endpoint's own address), then RFC 9728's well-known
    path for this resource, then the root well-known path."""
    paths = []
    for note in endpoint.notes:
        start = note.find('resource_metadata="')
        if start >= 0:
            url = note[start + len('resource_metadata="') :].split('"', 1)[0]
            parts = urlsplit(url)
            if parts.port == endpoint.port and parts.hostname in (endpoint.host, "localhost", "127.0.0.1"):
                paths.append(parts.path or "/")
    paths += [f"/.well-known/oauth-protected-resource{endpoint.path}", "/.well-known/oauth-protected-resource"]
    return list(dict.fromkeys(paths))


def _check_metadata(endpoint: Endpoint) -> tuple[str, Status, str]:
    name = "protected-resource metadata lists the issuer"
    seen = []
    for path in _metadata_paths(endpoint):
        reply = endpoint.request("GET", path, None, {"Accept": "application/json"})
        seen.append(f"{path}: HTTP {reply.status}")
        if reply.status != 200:
            continue
        try:
            document = json.loads(reply.body)
        except ValueError:
            return name, "fail", f"{path}: not JSON"
        servers = document.get("authorization_servers") if isinstance(document, dict) else None
        if isinstance(servers, list) and any(str(s).rstrip("/") == str(endpoint.issuer).rstrip("/") for s in servers):
            return name, "pass", f"{path}: authorization_servers {servers}"
        return name, "fail", f"{path}: authorization_servers {servers!r} does not list {endpoint.issuer}"
    return name, "fail", "no metadata document: " + "; ".join(seen)


def _challenge_scopes(challenge: str) -> set[str]:
    start = challenge.find('scope="')
    return set(challenge[start + len('scope="') :].split('"', 1)[0].split()) if start >= 0 else set()


def _check_scopes(endpoint: Endpoint) -> tuple[str, Status, str]:
    """The scopes a token must grant are announced where clients look for them (MCP step-up): the 401 challenge's
    ``scope`` and the metadata's ``scopes_supported``; otherwise a client cannot know what to ask the IdP for."""
    name = "required scopes advertised"
    wanted = set(endpoint.scopes)
    challenged = set().union(*(_challenge_scopes(n) for n in endpoint.notes)) if endpoint.notes else set()
    if not wanted <= challenged:
        return name, "fail", f"the 401 challenge lacks scope(s) {sorted(wanted - challenged)}"
    for path in _metadata_paths(endpoint):
        reply = endpoint.request("GET", path, None, {"Accept": "application/json"})
        if reply.status != 200:
            continue
        try:
            document = json.loads(reply.body)
        except ValueError:
            return name, "fail", f"{path}: not JSON"
        listed = document.get("scopes_supported") if isinstance(document, dict) else None
        supported = {str(s) for s in listed} if isinstance(listed, list) else set()
        if not wanted <= supported:
            return name, "fail", f"{path}: scopes_supported lacks {sorted(wanted - supported)}"
        return name, "pass", f"challenge and {path} name {sorted(wanted)}"
    return name, "fail", "no metadata document"


def _check_protocol_version(endpoint: Endpoint) -> tuple[str, Status, str]:
    name = "bogus MCP-Protocol-Version refused"
    if endpoint.issuer is not None and not endpoint.token:
        return name, "skip", "OIDC is on: give a valid token with --token-env to probe it"
    headers = {**MCP_HEADERS, **_auth(endpoint), "MCP-Protocol-Version": BOGUS_VERSION}
    if endpoint.session:
        headers["Mcp-Session-Id"] = endpoint.session
        body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}).encode()
    else:
        body = _initialize()
    if endpoint.sse:
        reply = endpoint.request("GET", endpoint.path, None, {"Accept": "text/event-stream", **headers})
    else:
        reply = endpoint.request("POST", endpoint.path, body, headers)
    if reply.status == 400:
        return name, "pass", f"MCP-Protocol-Version: {BOGUS_VERSION} -> HTTP 400"
    return name, "fail", f"MCP-Protocol-Version: {BOGUS_VERSION} -> HTTP {reply.status}, expected 400"


def _check_unknown_session(endpoint: Endpoint) -> tuple[str, Status, str]:
    name = "unknown session refused"
    if endpoint.issuer is not None and not endpoint.token:
        return name, "skip", "OIDC is on: give a valid token with --token-env to probe it"
    headers = {**MCP_HEADERS, **_auth(endpoint), "Mcp-Session-Id": secrets.token_hex(16)}
    headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}).encode()
    reply = endpoint.request("POST", endpoint.path, body, headers)
    if reply.status == 404:
        return name, "pass", "a made-up Mcp-Session-Id -> HTTP 404"
    return name, "fail", f"a made-up Mcp-Session-Id -> HTTP {reply.status}, expected 404"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def foreign_token(issuer: str, audience: str) -> str:
    """A well-formed RS256 JWT from `issuer` for `audience`, signed by a key made here and thrown away: no proxy may
    accept it (wrong audience, and a key the issuer never published)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": f"verify-{secrets.token_hex(4)}"}
    claims = {"iss": issuer, "aud": audience, "sub": "toolhive-apply-verify", "iat": now, "nbf": now, "exp": now + 300}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def verify_specs(specs: list[Spec], token: str | None = None, other_audience_token: str | None = None) -> list[Check]:
    """Every check of every workload (sorted by name); remote workloads are probed like any other endpoint."""
    checks: list[Check] = []
    for spec in sorted(specs, key=lambda s: str(s["name"])):
        if spec.get("serve"):  # no published port: its group's gateway is its endpoint, and is probed itself
            checks.append(Check(str(spec["name"]), "reachable", "skip", "served through its group's vMCP gateway only"))
            continue
        checks.extend(probe(spec, token, other_audience_token))
    return checks


def report(stack: str, checks: list[Check]) -> dict[str, Any]:
    counts = {status: sum(1 for c in checks if c.status == status) for status in ("pass", "fail", "skip")}
    return {"stack": stack, "checks": [c.as_json() for c in checks], "summary": counts}
