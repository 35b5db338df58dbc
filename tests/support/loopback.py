"""Small HTTP(S) servers on 127.0.0.1 that record what reaches them: redirectors, drips, recorders.

Used by the tests that prove credentials never follow a redirect and a slow server cannot outlast a deadline.
Each server is a context manager; `routes` maps a path (without the query) to a function writing the answer.
TLS servers use a throwaway CA made with `cryptography`; its PEM file is what clients are told to trust.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Route = Callable[["Handler"], None]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    body: bytes = b""

    def log_message(self, *args: Any) -> None:
        return None

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.body = body
        path = self.path.partition("?")[0]
        self.server.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
        route = self.server.routes.get(path) or self.server.routes.get("*")
        if route is None:
            self.answer(404, b"{}")
        else:
            with contextlib.suppress(OSError):
                route(self)

    do_GET = do_POST = do_PUT = do_LIST = do_DELETE = _handle  # noqa: N815 - http.server's naming

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 307) -> None:
        self.answer(status, b"", {"Location": location})


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route], tls: TlsFiles | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.received: list[Received] = []
        self.scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls.cert), str(tls.key))
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


@contextlib.contextmanager
def serving(routes: dict[str, Route], tls: TlsFiles | None = None) -> Iterator[LoopbackServer]:
    server = LoopbackServer(routes, tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def forward(to: str) -> Route:
    """Pass each request on to `to` (a real server) and its answer back: a recorder that still works."""
    import requests

    session = requests.Session()
    session.trust_env = False
    kept = ("content-type", "x-vault-token", "x-vault-namespace", "x-vault-request")

    def route(handler: Handler) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() in kept}
        answer = session.request(
            handler.command, to + handler.path, headers=headers, data=handler.body, allow_redirects=False, timeout=10
        )
        handler.answer(answer.status_code, answer.content, {"Content-Type": "application/json"})

    return route


def drip(body: bytes, every: float = 0.5, limit: int = 40) -> Route:
    """An answer whose body arrives one byte every `every` seconds (at most `limit` bytes: bounded)."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body[:limit]:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(every)

    return route


def drip_headers(every: float = 0.5, limit: int = 40) -> Route:
    """Headers that never end: one header line every `every` seconds (at most `limit` lines)."""

    def route(handler: Handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(limit):
            handler.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
            handler.wfile.flush()
            time.sleep(every)

    return route


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    names: tuple[str, ...] = field(default=("127.0.0.1", "localhost"))


def make_tls(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolhive-apply test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files
