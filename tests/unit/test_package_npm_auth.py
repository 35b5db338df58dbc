"""index_auth for npx:// with the host's real npm against a loopback registry (https, trusted through
settings.packages.ca_bundles.npx) that answers only to the token: the cache is filled for an offline build, the
token is in npm's environment only and in no file, command line or error. No Docker."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.loopback import Handler, make_tls, serving
from toolhive_apply.providers.workload import package_fetch, package_fetch_npm
from toolhive_apply.providers.workload.package_build_model import PackageBuild
from toolhive_apply.providers.workload.package_fetch import PackageFetchError
from toolhive_apply.providers.workload.package_fetch_npm import fetch_npm_closure, nerf_dart, user_config
from toolhive_apply.redact import SecretValue

TOKEN = "npm_s3cr/t:tok@n"


def _tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("package.json", '{"name": "demo-mcp", "version": "1.0.0"}'), ("index.js", "")):
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_npmrc_names_the_credential_by_variable_only() -> None:
    assert nerf_dart("https://h.example:8443/npm/") == "//h.example:8443/npm/"
    assert nerf_dart("https://h.example/npm") == "//h.example/"
    text = user_config("https://h.example/npm/", None)
    assert "//h.example/npm/:_authToken=${TOOLHIVE_APPLY_NPM_CREDENTIAL}" in text
    assert ":_password=${" in user_config("https://h.example/npm/", "reader")
    with pytest.raises(PackageFetchError, match="npmrc"):
        user_config("https://h.example/a=b/", None)


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs the host's npm")
def test_the_host_fills_the_cache_with_the_token_in_the_environment_only(tmp_path: Path, monkeypatch: Any) -> None:
    tgz = _tarball()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    port: dict[str, int] = {}

    def authorized(handler: Handler) -> bool:
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            handler.answer(401, b'{"error": "no"}', {"Content-Type": "application/json"})
            return False
        return True

    def packument(handler: Handler) -> None:
        if authorized(handler):
            url = f"https://127.0.0.1:{port['n']}/npm/demo-mcp/-/demo-mcp-1.0.0.tgz"
            version = {"name": "demo-mcp", "version": "1.0.0", "dist": {"tarball": url, "integrity": integrity}}
            body = {"name": "demo-mcp", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": version}}
            handler.answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def tarball(handler: Handler) -> None:
        if authorized(handler):
            handler.answer(200, tgz, {"Content-Type": "application/octet-stream"})

    tls = make_tls(tmp_path / "tls")
    routes = {"/npm/demo-mcp": packument, "/npm/demo-mcp/-/demo-mcp-1.0.0.tgz": tarball}
    monkeypatch.setenv("npm_config_registry", "https://elsewhere.invalid/")  # the user's npm settings are dropped
    seen: list[list[str]] = []
    real_run = package_fetch.subprocess.run  # the fetchers share package_fetch.run_fetcher

    def run(command: list[str], **kwargs: Any) -> Any:
        seen.append(command)
        return real_run(command, **kwargs)

    monkeypatch.setattr(package_fetch.subprocess, "run", run)
    with serving(routes, tls) as registry:
        port["n"] = registry.port
        url = registry.url("/npm/")
        build = PackageBuild(
            "npx", "demo-mcp", "1.0.0", "b", "r", index_url=url, index_secret="index-token", ca_bundle=str(tls.ca)
        )
        dest = tmp_path / "fetched"
        dest.mkdir()
        fetch_npm_closure(build, SecretValue(TOKEN), dest)
        assert any(p.is_file() for p in (dest / "npm-cache" / "_cacache").rglob("*"))
        for path in dest.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert TOKEN.encode() not in content and b"tok@n" not in content, path
        assert not list(dest.rglob("*.log"))
        assert all(TOKEN not in part for part in seen[0])
        with pytest.raises(PackageFetchError) as refused:
            fetch_npm_closure(build, SecretValue("wrong-token-value"), tmp_path / "again")
    message = str(refused.value)
    assert "npm install exited" in message and "refused the credential" in message and "s3cr" not in message
    assert "wrong-token-value" not in message
    dockerfile = build.dockerfile()
    install = next(json.loads(line[4:]) for line in dockerfile.splitlines() if line.startswith('RUN ["npm"'))
    assert install[install.index("install") + 1 : install.index("--")][-5:] == [
        "--offline",
        "--cache",
        "/offline/npm-cache",
        "--registry",
        url,
    ]
    assert "index-ca" not in dockerfile and TOKEN not in dockerfile


def test_without_npm_the_error_says_so(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(package_fetch_npm.shutil, "which", lambda _: None)
    build = PackageBuild("npx", "demo-mcp", "1.0.0", "b", "r", index_url="https://h.example/", index_secret="t")
    with pytest.raises(PackageFetchError, match="npm is not installed on this host"):
        fetch_npm_closure(build, SecretValue("x"), tmp_path)
