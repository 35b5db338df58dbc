"""settings.packages.index_auth for go:// without Docker: its checks, the offline Dockerfile of such a build, the
netrc line and environment of the fetch container, and the fetch's handling of the credential against a fake
engine (a read-only netrc mount only, the container removed on success and failure, scrubbed errors)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

from tests.support.loopback import make_tls
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest as load
from toolhive_apply.preflight import preflight
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE_FETCH
from toolhive_apply.providers.workload import package_fetch_go
from toolhive_apply.providers.workload.package_build_model import PackageBuild, package_build
from toolhive_apply.providers.workload.package_context import ca_digest
from toolhive_apply.providers.workload.package_fetch import PackageFetchError
from toolhive_apply.redact import SecretValue

URL = "https://goproxy.internal.example:8443/private/"
TOKEN = "canary-go-unit-9f1c"


def _path(tmp_path: Path, packages: dict[str, Any]) -> Path:
    data = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "pk", "packages": packages},
        "secrets": [{"key": "proxy-token", "present": True}],
        "workloads": [{"name": "echo", "image": "go://example.test/mcpecho@v0.1.0"}],
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


def _packages(url: str = URL, **auth: Any) -> dict[str, Any]:
    login = {"username": "reader", "password_secret": "proxy-token", **auth}
    return {"index_urls": {"go": url}, "index_auth": {"go": {k: v for k, v in login.items() if v is not None}}}


def _build(**extra: Any) -> PackageBuild:
    fields: dict[str, Any] = {"index_url": URL, "index_user": "reader", "index_secret": "proxy-token", **extra}
    return PackageBuild("go", "example.test/mcpecho", "v0.1.0", "go-builder", "go-runtime", **fields)


def test_go_index_auth_needs_a_username_and_one_https_proxy(tmp_path: Path) -> None:
    assert _issues(_path(tmp_path, _packages())) == []
    (nameless,) = _issues(_path(tmp_path, _packages(username=None)))
    assert "index_auth.go.username" in nameless and "netrc login and password" in nameless
    (plain,) = _issues(_path(tmp_path, _packages("http://goproxy.internal.example/")))
    assert "settings.packages.index_auth.go" in plain and "HTTPS only" in plain
    (listed,) = _issues(_path(tmp_path, _packages("https://goproxy.internal.example/,direct")))
    assert "one proxy URL" in listed


def test_a_go_build_from_a_private_proxy_installs_from_the_fetched_tree_and_names_no_url(tmp_path: Path) -> None:
    manifest = preflight(load([_path(tmp_path, _packages())]), offline=True).manifest
    build = package_build(manifest.workloads[0], manifest.settings, {})
    assert (build.index_user, build.index_secret, build.installs_offline) == ("reader", "proxy-token", True)
    dockerfile = build.dockerfile()
    assert '["go", "env", "-w", "GOPROXY=file:///offline/goproxy", "GOSUMDB=off"]' in dockerfile
    assert "goproxy.internal.example" not in dockerfile and "COPY offline/ /offline/" in dockerfile


def test_the_netrc_line_is_scoped_to_the_proxy_and_refuses_what_netrc_cannot_carry() -> None:
    assert package_fetch_go.netrc_machine(URL) == "goproxy.internal.example:8443/private"
    line = package_fetch_go.netrc_text(_build(), SecretValue(TOKEN))
    assert line == f"machine goproxy.internal.example:8443/private login reader password {TOKEN}\n"
    for bad in ("two words", "", "tab\there"):
        with pytest.raises(PackageFetchError) as caught:
            package_fetch_go.netrc_text(_build(), SecretValue(bad))
        assert "proxy-token is empty or holds whitespace" in str(caught.value)
        assert bad not in str(caught.value) or not bad
    for user in (None, "two words"):
        with pytest.raises(PackageFetchError, match="needs a username without spaces"):
            package_fetch_go.netrc_text(_build(index_user=user), SecretValue(TOKEN))


def test_the_fetch_environment_holds_no_secret_and_overrides_the_images_sources() -> None:
    env = package_fetch_go.fetch_environment(_build(), with_ca=False)
    assert env["GOPROXY"] == URL and env["GOAUTH"] == "netrc" and env["NETRC"] == package_fetch_go.NETRC_IN_FETCH
    assert env["GOENV"] == "off" and env["GOTOOLCHAIN"] == "local" and env["GONOPROXY"] == env["GOPRIVATE"] == ""
    assert "SSL_CERT_FILE" not in env and TOKEN not in json.dumps(env)
    assert package_fetch_go.fetch_environment(_build(), with_ca=True)["SSL_CERT_FILE"] == package_fetch_go.CA_IN_FETCH


class FakeEngine:
    """The calls fetch_go_closure makes; `run` plays the go command against the bind-mounted directories."""

    def __init__(self, status: int, logs: bytes = b"") -> None:
        self.status, self.log_bytes = status, logs
        self.created: dict[str, Any] = {}
        self.removed: list[str] = []
        self.netrc_seen: tuple[str, int] | None = None

    def create_host_config(self, **config: Any) -> dict[str, Any]:
        return config

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        return []  # no fetch container left by a killed run

    def create_container(self, **spec: Any) -> dict[str, str]:
        self.created = spec
        return {"Id": "c1"}

    def start(self, container: str) -> None:
        binds = self.created["host_config"]["binds"]
        host = {v["bind"]: k for k, v in binds.items()}
        netrc = Path(host[package_fetch_go.NETRC_IN_FETCH])
        self.netrc_seen = (netrc.read_text(), stat.S_IMODE(netrc.stat().st_mode))
        if self.status == 0:  # what go leaves in GOMODCACHE
            versions = Path(host[package_fetch_go.WORK_IN_FETCH]) / "modcache/cache/download/example.test/mcpecho/@v"
            versions.mkdir(parents=True)
            (versions / "v0.1.0.zip").write_bytes(b"zip")
            (versions.parents[2] / "sumdb").mkdir()

    def wait(self, container: str, timeout: int) -> dict[str, int]:
        return {"StatusCode": self.status}

    def logs(self, container: str, **_: Any) -> bytes:
        return self.log_bytes

    def remove_container(self, container: str, force: bool) -> None:
        self.removed.append(container)


def _mounted_files(engine: FakeEngine) -> list[Path]:
    return [Path(source) for source in engine.created["host_config"]["binds"]]


def test_the_fetch_mounts_the_credential_read_only_and_hands_the_cache_to_the_build(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    files = make_tls(tmp_path / "tls")
    build = _build(ca_bundle=str(files.ca), ca_digest=ca_digest(str(files.ca)))
    dest = tmp_path / "dest"
    dest.mkdir()
    package_fetch_go.fetch_go_closure(engine, build, SecretValue(TOKEN), dest)  # type: ignore[arg-type]
    spec = engine.created
    assert spec["command"] == ["install", "-n", "--", "example.test/mcpecho@v0.1.0"] and spec["entrypoint"] == ["go"]
    assert spec["labels"] == {LABEL_PACKAGE_FETCH: "go://example.test/mcpecho@v0.1.0"}
    assert spec["user"] == f"{os.getuid()}:{os.getgid()}"
    config = spec["host_config"]
    assert config["network_mode"] == "host" and config["read_only"] and config["cap_drop"] == ["ALL"]
    modes = {v["bind"]: v["mode"] for v in config["binds"].values()}
    assert modes[package_fetch_go.NETRC_IN_FETCH] == modes[package_fetch_go.CA_IN_FETCH] == "ro"
    assert spec["environment"]["SSL_CERT_FILE"] == package_fetch_go.CA_IN_FETCH
    line = f"machine goproxy.internal.example:8443/private login reader password {TOKEN}\n"
    assert engine.netrc_seen == (line, 0o600)
    assert TOKEN not in json.dumps(spec)
    assert engine.removed == ["c1"]
    assert (dest / "goproxy/example.test/mcpecho/@v/v0.1.0.zip").read_bytes() == b"zip"
    assert not (dest / "goproxy/sumdb").exists()
    assert not any(path.exists() for path in _mounted_files(engine))  # netrc, CA copy and cache: all removed


def test_a_refused_fetch_is_one_scrubbed_error_and_leaves_nothing(tmp_path: Path) -> None:
    logs = f"go: reading {URL}example.test/mcpecho/@v/v0.1.0.info: 401 Unauthorized\n\tserver response: {TOKEN}\n"
    engine = FakeEngine(1, logs.encode())
    with pytest.raises(PackageFetchError) as caught:
        package_fetch_go.fetch_go_closure(engine, _build(), SecretValue(TOKEN), tmp_path)  # type: ignore[arg-type]
    message = str(caught.value)
    ref = "go://example.test/mcpecho@v0.1.0"
    assert message.startswith(f"fetching {ref} from {URL} (settings.packages.index_auth) failed: go install exited 1")
    assert "the proxy refused the credential: check proxy-token's value" in message and "go output:" in message
    assert TOKEN not in message
    assert engine.removed == ["c1"] and not any(path.exists() for path in _mounted_files(engine))
    assert list(tmp_path.iterdir()) == []


def test_an_untrusted_certificate_names_the_ca_bundle_setting(tmp_path: Path) -> None:
    logs = b"go: https://goproxy...: tls: failed to verify certificate: x509: certificate signed by unknown authority"
    with pytest.raises(PackageFetchError) as caught:
        package_fetch_go.fetch_go_closure(FakeEngine(1, logs), _build(), SecretValue(TOKEN), tmp_path)  # type: ignore[arg-type]
    assert "not trusted: set settings.packages.ca_bundles.go to the CA bundle that signed it" in str(caught.value)


def test_an_echoed_authorization_header_is_scrubbed_too(tmp_path: Path) -> None:
    header = base64.b64encode(f"reader:{TOKEN}".encode()).decode()
    engine = FakeEngine(1, f"go: 403 Forbidden\n\tserver response: you sent Basic {header}\n".encode())
    with pytest.raises(PackageFetchError) as caught:
        package_fetch_go.fetch_go_closure(engine, _build(), SecretValue(TOKEN), tmp_path)  # type: ignore[arg-type]
    assert header not in str(caught.value) and "refused the credential" in str(caught.value)


class MissingImage(FakeEngine):
    def create_container(self, **spec: Any) -> dict[str, str]:
        raise docker.errors.ImageNotFound("No such image: go-builder")


class Hanging(FakeEngine):
    def wait(self, container: str, timeout: int) -> dict[str, int]:
        raise requests.exceptions.ReadTimeout("read timed out")


def test_a_missing_builder_image_or_a_hanging_go_fails_clearly_and_removes_the_container(tmp_path: Path) -> None:
    with pytest.raises(PackageFetchError, match="the builder image go-builder is not on the Docker host"):
        package_fetch_go.fetch_go_closure(MissingImage(0), _build(), SecretValue(TOKEN), tmp_path)  # type: ignore[arg-type]
    hanging = Hanging(0)
    with pytest.raises(PackageFetchError, match=r"go install took longer than \d+s"):
        package_fetch_go.fetch_go_closure(hanging, _build(), SecretValue(TOKEN), tmp_path)  # type: ignore[arg-type]
    assert hanging.removed == ["c1"] and not any(path.exists() for path in _mounted_files(hanging))
