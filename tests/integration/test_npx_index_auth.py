"""npx:// from a private npm registry with a token (settings.packages.index_auth.npx), against the real engine.

The registry is a loopback server on 127.0.0.1 that answers only to `Bearer TOKEN` and serves one package made
here: a dependency-free stdio MCP server in plain JavaScript, so nothing is fetched from npm. The host's npm fills
a private cache with the token in its environment, the build installs --offline from it (no network), and the
server answers the real SDK client through its proxy; the token (a canary) is in no message, image, label or file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import private_env, run_cli, write_manifest
from tests.images.node_image import NODE_TAG, host_node
from tests.support.loopback import Handler, TlsFiles, make_tls, serving
from tests.support.mcp_client import call_tool, list_tools

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(host_node() is None or shutil.which("npm") is None, reason="needs the host's node and npm"),
]
PACKAGE = "toolhive-apply-demo-mcp"
TOKEN = "canary-npm-tok-9d2e71"
WRONG = "canary-npm-wrong-3b8a04"
SERVER = r"""#!/usr/bin/env node
const readline = require("readline");
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  if (m.id === undefined) return;
  if (m.method === "initialize") {
    send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} },
      serverInfo: { name: "demo", version: "1.0.0" } } });
  } else if (m.method === "tools/list") {
    send({ jsonrpc: "2.0", id: m.id, result: { tools: [{ name: "ping", description: "pong",
      inputSchema: { type: "object", properties: {} } }] } });
  } else if (m.method === "tools/call") {
    send({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: "pong" }] } });
  } else {
    send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "no such method" } });
  }
});
"""


def _tarball() -> bytes:
    manifest = {"name": PACKAGE, "version": "1.0.0", "bin": {PACKAGE: "index.js"}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text, mode in (("package.json", json.dumps(manifest), 0o644), ("index.js", SERVER, 0o755)):
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextlib.contextmanager
def private_registry(tls: TlsFiles | None = None) -> Iterator[tuple[str, list[tuple[str, bool]]]]:
    """The registry's URL (loopback only; https with `tls`) and the requests it saw (path, authorised)."""
    tgz = _tarball()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    seen: list[tuple[str, bool]] = []
    base: dict[str, str] = {}

    def authorized(handler: Handler) -> bool:
        ok = handler.headers.get("Authorization") == f"Bearer {TOKEN}"
        seen.append((handler.path, ok))
        if not ok:
            handler.answer(401, b'{"error": "unauthorized"}', {"Content-Type": "application/json"})
        return ok

    def packument(handler: Handler) -> None:
        if authorized(handler):
            tarball_url = f"{base['url']}{PACKAGE}/-/{PACKAGE}-1.0.0.tgz"
            version = {
                "name": PACKAGE,
                "version": "1.0.0",
                "bin": {PACKAGE: "index.js"},
                "dist": {"tarball": tarball_url, "integrity": integrity},
            }
            body = {"name": PACKAGE, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": version}}
            handler.answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def tarball(handler: Handler) -> None:
        if authorized(handler):
            handler.answer(200, tgz, {"Content-Type": "application/octet-stream"})

    routes = {f"/npm/{PACKAGE}": packument, f"/npm/{PACKAGE}/-/{PACKAGE}-1.0.0.tgz": tarball}
    with serving(routes, tls) as server:
        base["url"] = server.url("/npm/")
        yield base["url"], seen


@pytest.fixture
def registry() -> Iterator[tuple[str, list[tuple[str, bool]]]]:
    with private_registry() as found:
        yield found


def _env(tmp_path: Path, token: str) -> dict[str, str]:
    return private_env(tmp_path, NPM_TOKEN_UNDER_TEST=token)


def _no_canary(text: str) -> None:
    assert TOKEN not in text and WRONG not in text


def test_npx_from_a_private_registry_keeps_the_token_on_the_host(
    docker_api: Any,
    tmp_path: Path,
    stack: str,
    test_images: dict[str, str],
    registry: tuple[str, list[tuple[str, bool]]],
    own_images: list[str],
) -> None:
    from tests.images.node_image import ensure_node_image

    ensure_node_image()
    url, seen = registry
    settings = {
        "packages": {
            "builder_images": {"npx": NODE_TAG},
            "runtime_images": {"npx": NODE_TAG},
            "index_urls": {"npx": url},
            "index_auth": {"npx": {"password_secret": "npm-token"}},
        }
    }
    name = f"{stack}-private"
    workloads = [{"name": name, "image": f"npx://{PACKAGE}@1.0.0", "ready_timeout": 300}]
    secrets = [{"key": "npm-token", "from": {"env": "NPM_TOKEN_UNDER_TEST"}}]
    path = write_manifest(tmp_path / "m", stack, workloads, settings=settings, secrets=secrets)

    # 1. a wrong token: the registry refuses, the workload fails clearly, no token in the message
    wrong = run_cli("apply", str(path), "--yes", env=_env(tmp_path, WRONG), timeout=900)
    assert wrong.code == 1, wrong
    assert "refused the credential" in wrong.output and "E401" in wrong.output, wrong.output
    assert seen and not any(ok for _path, ok in seen)
    _no_canary(wrong.output)

    # 2. the right token: built offline from the host's cache, running, answering MCP
    env = _env(tmp_path, TOKEN)
    applied = run_cli("apply", str(path), "--yes", env=env, timeout=900)
    assert applied.code == 0, applied
    _no_canary(applied.output)
    assert any(ok and p.endswith(".tgz") for p, ok in seen), seen
    server = docker_api.inspect_container(name)
    image = docker_api.inspect_image(server["Image"])
    own_images.extend(image.get("RepoTags") or ())
    every = "\n".join(
        json.dumps([docker_api.history(i["Id"]), docker_api.inspect_image(i["Id"]).get("ContainerConfig")])
        for i in docker_api.images(all=True)
    )
    _no_canary(every + json.dumps(image) + json.dumps(server))
    exported = run_cli("export", "workloads", "--stack", stack, env=env)
    workload_url = {w["name"]: w["url"] for w in json.loads(exported.stdout)["workloads"]}[name]
    assert "ping" in list_tools(workload_url)
    assert call_tool(workload_url, "ping", {}) == "pong"

    # 3. a second plan is a no-op, and no file the tool wrote holds the token
    again = run_cli("plan", str(path), "--detailed-exitcode", env=env)
    assert again.code == 0, again
    for file in tmp_path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert TOKEN.encode() not in data and WRONG.encode() not in data, file


def test_npx_from_a_private_tls_registry_is_verified_against_its_ca_bundle(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], own_images: list[str]
) -> None:
    """settings.packages.ca_bundles.npx is what the host's npm trusts (--cafile): refused clearly without it."""
    from tests.images.node_image import ensure_node_image

    ensure_node_image()
    tls = make_tls(tmp_path / "tls")
    with private_registry(tls) as (url, seen):
        packages: dict[str, Any] = {
            "builder_images": {"npx": NODE_TAG},
            "runtime_images": {"npx": NODE_TAG},
            "index_urls": {"npx": url},
            "index_auth": {"npx": {"password_secret": "npm-token"}},
        }
        name = f"{stack}-tls"
        workloads = [{"name": name, "image": f"npx://{PACKAGE}@1.0.0", "ready_timeout": 300}]
        secrets = [{"key": "npm-token", "from": {"env": "NPM_TOKEN_UNDER_TEST"}}]
        untrusted = write_manifest(tmp_path / "n", stack, workloads, settings={"packages": packages}, secrets=secrets)
        packages["ca_bundles"] = {"npx": str(tls.ca)}
        path = write_manifest(tmp_path / "m", stack, workloads, settings={"packages": packages}, secrets=secrets)
        env = _env(tmp_path, TOKEN)

        failed = run_cli("apply", str(untrusted), "--yes", env=env, timeout=900)
        assert failed.code == 1, failed
        assert f"fetching npx://{PACKAGE}@1.0.0 from {url} (settings.packages.index_auth) failed" in failed.output
        assert "not trusted: set settings.packages.ca_bundles.npx to the CA bundle that signed it" in failed.output
        assert seen == [] and "refused the credential" not in failed.output
        _no_canary(failed.output)

        applied = run_cli("apply", str(path), "--yes", env=env, timeout=900)
        assert applied.code == 0, applied.output
        _no_canary(applied.output)
        assert any(ok and p.endswith(".tgz") for p, ok in seen), seen
    server = docker_api.inspect_container(name)
    own_images.extend(docker_api.inspect_image(server["Image"]).get("RepoTags") or ())
    exported = run_cli("export", "workloads", "--stack", stack, env=env)
    workload_url = {w["name"]: w["url"] for w in json.loads(exported.stdout)["workloads"]}[name]
    assert call_tool(workload_url, "ping", {}) == "pong"
