"""uvx:// from a private index with basic auth (settings.packages.index_auth), against the real engine.

The index is a loopback http.server on 127.0.0.1 serving PEP 503 pages for the wheels the uvx test already
downloaded (tests/images/package_builders.ensure_wheels), so nothing new is fetched from PyPI. The host downloads
with the credential, the build installs offline: with the right secret the workload runs; with a wrong one it fails
clearly, and the token (a canary) appears in no message, image history, label, plan, export or state file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from tests.conftest import PYTHON_IMAGE, private_env, run_cli, write_manifest
from tests.images.package_builders import PIP_BUILDER_TAG, TIME_VERSIONS, ensure_pip_builder, ensure_wheels
from tests.support.loopback import TlsFiles, make_tls
from tests.support.mcp_client import list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE

pytestmark = pytest.mark.docker

NEW = TIME_VERSIONS[0]
USER = "ci-reader"
TOKEN = "canary-index-tok-7f3a9c"
WRONG = "canary-wrong-tok-51be02"
ROTATED = "canary-rotated-tok-c0ffee"


class _Index(BaseHTTPRequestHandler):
    wheels: Path
    expected: str
    seen: list[tuple[str, bool]]

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == self.expected
        self.seen.append((self.path, ok))
        if not ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.end_headers()
            return
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        body: bytes | None = None
        if len(parts) == 2 and parts[0] == "simple":
            files = [
                w.name for w in sorted(self.wheels.glob("*.whl")) if canonicalize_name(w.name.split("-")[0]) == parts[1]
            ]
            if files:
                links = "".join(f'<a href="/files/{name}">{name}</a><br>' for name in files)
                body = f"<!DOCTYPE html><html><body>{links}</body></html>".encode()
        elif len(parts) == 2 and parts[0] == "files" and (self.wheels / parts[1]).is_file() and "/" not in parts[1]:
            body = (self.wheels / parts[1]).read_bytes()
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        html = parts[0] == "simple"  # pip reads an index page only when it says it is HTML
        self.send_header("Content-Type", "text/html; charset=utf-8" if html else "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def private_index(tls: TlsFiles | None = None) -> Iterator[tuple[str, list[tuple[str, bool]]]]:
    """The private index's URL (loopback only; https with `tls`, a certificate of a CA the test made, as
    tests/support/loopback.py's servers) and the requests it saw (path, authorised)."""
    seen: list[tuple[str, bool]] = []
    expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    handler = type("Index", (_Index,), {"wheels": ensure_wheels(), "expected": expected, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/simple/", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def index() -> Iterator[tuple[str, list[tuple[str, bool]]]]:
    with private_index() as found:
        yield found


def _env(tmp_path: Path, token: str) -> dict[str, str]:
    return private_env(tmp_path, INDEX_TOKEN_UNDER_TEST=token)


def _every_image(api: Any) -> str:
    """Every local image's history (as `docker history --no-trunc`), config and labels, as one text to search."""
    return "\n".join(
        json.dumps([api.history(image["Id"]), api.inspect_image(image["Id"]).get("ContainerConfig")])
        for image in api.images(all=True)
    )


def _no_canary(text: str) -> None:
    for canary in (TOKEN, WRONG, ROTATED):
        assert canary not in text


def test_uvx_from_a_private_index_keeps_the_credential_on_the_host(
    docker_api: Any,
    tmp_path: Path,
    stack: str,
    test_images: dict[str, str],
    index: tuple[str, list[Any]],
    own_images: list[str],
) -> None:
    url, seen = index
    ensure_pip_builder()
    settings = {
        "packages": {
            "builder_images": {"uvx": PIP_BUILDER_TAG},
            "runtime_images": {"uvx": PYTHON_IMAGE},
            "index_urls": {"uvx": url},
            "index_auth": {"uvx": {"username": USER, "password_secret": "index-token"}},
        }
    }
    name = f"{stack}-private"
    workloads = [{"name": name, "image": f"uvx://mcp-server-time@{NEW}", "env_vars": {"TZ": "UTC"}}]
    secrets = [{"key": "index-token", "from": {"env": "INDEX_TOKEN_UNDER_TEST"}}]
    path = write_manifest(tmp_path / "m", stack, workloads, settings=settings, secrets=secrets)

    # 1. a wrong token: the index refuses, the workload fails clearly, no credential in the message
    wrong = run_cli("apply", str(path), "--yes", env=_env(tmp_path, WRONG), timeout=900)
    assert wrong.code == 1, wrong
    assert f"downloading uvx://mcp-server-time@{NEW} from {url} (settings.packages.index_auth) failed" in wrong.output
    assert "check the package name, or the username and index-token's value" in wrong.output
    assert seen and not any(ok for _path, ok in seen)
    _no_canary(wrong.output)
    assert name not in json.dumps([c["Names"] for c in docker_api.containers(all=True)])

    # 2. the right token: built offline from the host's download, running, answering MCP
    env = _env(tmp_path, TOKEN)
    plan = run_cli("plan", str(path), env=env)
    _no_canary(plan.output)
    applied = run_cli("apply", str(path), "--yes", env=env, timeout=900)
    assert applied.code == 0, applied
    _no_canary(applied.output)
    assert any(ok and p.startswith("/files/mcp_server_time-") for p, ok in seen), seen
    server = docker_api.inspect_container(name)
    image = docker_api.inspect_image(server["Image"])
    own_images.extend(image.get("RepoTags") or ())
    assert image["Config"]["Labels"][LABEL_PACKAGE] == f"uvx://mcp-server-time@{NEW}"
    history = json.dumps(docker_api.history(server["Image"]))  # docker history --no-trunc
    every = _every_image(docker_api)  # the builder stage's images too: they hold the pip install step
    assert url not in history and url not in every
    _no_canary(history + every + json.dumps(image) + json.dumps(server))
    exported = run_cli("export", "workloads", "--stack", stack, env=env)
    _no_canary(exported.output)
    workload_url = {w["name"]: w["url"] for w in json.loads(exported.stdout)["workloads"]}[name]
    assert "get_current_time" in list_tools(workload_url)

    # 3. a second plan is a no-op; rotating the token updates the secret but rebuilds and replaces nothing
    again = run_cli("plan", str(path), "--detailed-exitcode", env=env)
    assert again.code == 0, again
    rotated = run_cli("plan", str(path), env=_env(tmp_path, ROTATED))
    assert f"workload/{name}" not in rotated.stdout, rotated.stdout
    _no_canary(rotated.output)
    for file in tmp_path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert all(c.encode() not in data for c in (TOKEN, WRONG, ROTATED)), file


def test_uvx_from_a_private_tls_index_is_verified_against_its_ca_bundle(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], own_images: list[str]
) -> None:
    """settings.packages.ca_bundles.uvx is what the host's pip download trusts: an index whose certificate a test
    CA signed is refused without it (clearly, naming the setting) and used with it."""
    ensure_pip_builder()
    tls = make_tls(tmp_path / "tls")
    with private_index(tls) as (url, seen):
        packages: dict[str, Any] = {
            "builder_images": {"uvx": PIP_BUILDER_TAG},
            "runtime_images": {"uvx": PYTHON_IMAGE},
            "index_urls": {"uvx": url},
            "index_auth": {"uvx": {"username": USER, "password_secret": "index-token"}},
        }
        name = f"{stack}-tls"
        workloads = [{"name": name, "image": f"uvx://mcp-server-time@{NEW}", "env_vars": {"TZ": "UTC"}}]
        secrets = [{"key": "index-token", "from": {"env": "INDEX_TOKEN_UNDER_TEST"}}]
        untrusted = write_manifest(tmp_path / "n", stack, workloads, settings={"packages": packages}, secrets=secrets)
        packages["ca_bundles"] = {"uvx": str(tls.ca)}
        path = write_manifest(tmp_path / "m", stack, workloads, settings={"packages": packages}, secrets=secrets)
        env = _env(tmp_path, TOKEN)

        # 1. without the CA bundle pip cannot verify the index: the workload fails, the message names the setting
        failed = run_cli("apply", str(untrusted), "--yes", env=env, timeout=900)
        assert failed.code == 1, failed
        prefix = f"downloading uvx://mcp-server-time@{NEW} from {url} (settings.packages.index_auth) failed"
        assert prefix in failed.output, failed
        assert "not trusted: set settings.packages.ca_bundles.uvx to the CA bundle that signed it" in failed.output
        assert "CERTIFICATE_VERIFY_FAILED" in failed.output and "the index listed no versions" not in failed.output
        assert seen == []  # nothing got past the handshake
        _no_canary(failed.output)

        # 2. with it: downloaded over TLS with the credential, built offline, running and answering MCP
        applied = run_cli("apply", str(path), "--yes", env=env, timeout=900)
        assert applied.code == 0, applied.output
        _no_canary(applied.output)
        assert any(ok and p.startswith("/files/mcp_server_time-") for p, ok in seen), seen
    server = docker_api.inspect_container(name)
    own_images.extend(docker_api.inspect_image(server["Image"]).get("RepoTags") or ())
    exported = run_cli("export", "workloads", "--stack", stack, env=env)
    workload_url = {w["name"]: w["url"] for w in json.loads(exported.stdout)["workloads"]}[name]
    assert "get_current_time" in list_tools(workload_url)
