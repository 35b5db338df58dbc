"""settings.packages.index_auth without Docker: its checks, the Dockerfile and hash of a build that uses it, and the
host-side fetch's handling of the credential (environment only, scrubbed output)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest as load
from toolhive_apply.preflight import preflight
from toolhive_apply.providers.workload import package_fetch
from toolhive_apply.providers.workload.package_build_model import PackageBuild, package_build
from toolhive_apply.providers.workload.package_images import build_context
from toolhive_apply.redact import SecretValue

URL = "https://pypi.internal.example/simple/"
AUTH = {"uvx": {"username": "reader", "password_secret": "index-token"}}


def _path(tmp_path: Path, packages: dict[str, Any], secrets: list[dict[str, Any]] | None = None) -> Path:
    data = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "pk", "packages": packages},
        "secrets": secrets if secrets is not None else [{"key": "index-token", "present": True}],
        "workloads": [{"name": "time", "image": "uvx://mcp-server-time@2026.10.19"}],
    }
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _issues(path: Path) -> list[str]:
    try:
        preflight(load([path]), offline=True)
    except ManifestError as error:
        return [str(issue) for issue in error.issues]
    return []


def test_index_auth_is_checked_at_its_fields(tmp_path: Path) -> None:
    assert _issues(_path(tmp_path, {"index_urls": {"uvx": URL}, "index_auth": AUTH})) == []
    npx = {"index_urls": {"npx": URL}, "index_auth": {"npx": AUTH["uvx"]}}
    assert _issues(_path(tmp_path, npx)) == []
    go = {"index_urls": {"go": URL}, "index_auth": {"go": AUTH["uvx"]}}
    assert _issues(_path(tmp_path, go)) == []  # fetched by the builder image's go (test_package_go_auth.py)
    (no_url,) = _issues(_path(tmp_path, {"index_auth": AUTH}))
    assert "needs settings.packages.index_urls.uvx" in no_url
    (unknown,) = _issues(_path(tmp_path, {"index_urls": {"uvx": URL}, "index_auth": AUTH}, secrets=[]))
    assert "index_auth.uvx.password_secret" in unknown and "unknown secret 'index-token'" in unknown
    both = {"index_urls": {"uvx": URL}, "index_auth": AUTH, "offline_dir": str(tmp_path)}
    assert any("two sources" in issue for issue in _issues(_path(tmp_path, both)))
    (in_url,) = _issues(_path(tmp_path, {"index_urls": {"uvx": "https://u:p@pypi.internal.example/simple/"}}))
    assert "index_auth" in in_url and "u:p" not in in_url


def test_a_build_from_a_private_index_is_offline_and_names_only_the_secret(tmp_path: Path) -> None:
    manifest = preflight(load([_path(tmp_path, {"index_urls": {"uvx": URL}, "index_auth": AUTH})]), offline=True)
    build = package_build(manifest.manifest.workloads[0], manifest.manifest.settings, {})
    assert (build.index_user, build.index_secret, build.installs_offline) == ("reader", "index-token", True)
    dockerfile = build.dockerfile()
    assert '"--no-index", "--find-links", "/offline"' in dockerfile and URL not in dockerfile
    spec = build.as_spec()
    assert spec["index_secret"] == "index-token" and PackageBuild.from_spec(spec) == build
    public = PackageBuild("uvx", "mcp-server-time", "2026.10.19", "b", "r", index_url=URL)
    assert "index_secret" not in public.as_spec() and public.digest != build.digest
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "x-1-py3-none-any.whl").write_bytes(b"wheel")
    assert b"offline/x-1-py3-none-any.whl" in build_context(build, tmp_path / "w")


def test_the_fetch_passes_the_credential_by_environment_and_scrubs_what_pip_prints(
    tmp_path: Path, monkeypatch: Any
) -> None:
    token = SecretValue("s3cr/t:tok@n")
    seen: dict[str, Any] = {}

    class Done:
        returncode = 1
        stdout = f"Looking in indexes: https://reader:{token.reveal()}@pypi.internal.example/simple/\n"
        stderr = "(from versions: none)\nERROR: 401 for https://reader:s3cr%2Ft%3Atok%40n@pypi.internal.example/simple/mcp-server-time/\n"

    def run(command: list[str], env: dict[str, str], **_: Any) -> Done:
        seen.update(command=command, env=env)
        return Done()

    monkeypatch.setattr(package_fetch.subprocess, "run", run)
    monkeypatch.setenv("PIP_FIND_LINKS", "/elsewhere")
    build = PackageBuild("uvx", "mcp-server-time", "2026.10.19", "b", "r", index_url=URL, index_secret="t")
    try:
        package_fetch.fetch_closure(build, token, tmp_path)
    except package_fetch.PackageFetchError as error:
        message = str(error)
    assert "failed: pip download exited 1" in message and "pip output:" in message and "t's value" in message
    assert "s3cr" not in message and "tok" not in message
    assert all("s3cr" not in part for part in seen["command"])
    assert seen["env"]["PIP_INDEX_URL"] == "https://:s3cr%2Ft%3Atok%40n@pypi.internal.example/simple/"
    assert "PIP_FIND_LINKS" not in seen["env"] and seen["env"]["PIP_CONFIG_FILE"] == os.devnull
