"""settings.packages.ca_bundles without Docker: checked at its field, used only by the builder stage's installer (and
the host's index_auth download), hashed by digest, and verified again where the build reads it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.loopback import make_tls
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest as load
from toolhive_apply.preflight import preflight
from toolhive_apply.providers.workload import package_fetch
from toolhive_apply.providers.workload.package_build_model import PackageBuild, package_build
from toolhive_apply.providers.workload.package_context import ContextError, build_context
from toolhive_apply.providers.workload.package_dockerfiles import CA_IN_BUILD
from toolhive_apply.redact import SecretValue

IMAGES = {"uvx": "uvx://mcp-server-time@2026.10.19", "npx": "npx://@a/b@1.2.3", "go": "go://github.com/a/b@v1.0.0"}
TOOL = {"uvx": "python3", "npx": "npm", "go": "go"}
URL = "https://index.internal.example/simple/"


def _path(tmp_path: Path, scheme: str, packages: dict[str, Any]) -> Path:
    data = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "pk", "packages": packages},
        "secrets": [{"key": "index-token", "present": True}],
        "workloads": [{"name": "w", "image": IMAGES[scheme]}],
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


def _build(tmp_path: Path, scheme: str, packages: dict[str, Any]) -> PackageBuild:
    manifest = preflight(load([_path(tmp_path, scheme, packages)]), offline=True).manifest
    return package_build(manifest.workloads[0], manifest.settings, {})


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    files = make_tls(tmp_path / "tls")
    return files.ca


def test_a_ca_bundle_is_checked_at_its_field(tmp_path: Path, ca: Path) -> None:
    assert _issues(_path(tmp_path, "uvx", {"ca_bundles": {"uvx": "tls/ca.pem"}})) == []  # relative to the manifest
    (missing,) = _issues(_path(tmp_path, "uvx", {"ca_bundles": {"npx": "nope.pem"}}))
    assert "settings.packages.ca_bundles.npx" in missing and "nope.pem" in missing
    (key,) = _issues(_path(tmp_path, "uvx", {"ca_bundles": {"go": "tls/server-key.pem"}}))
    assert "ca_bundles.go" in key and "private key" in key
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (junk,) = _issues(_path(tmp_path, "uvx", {"ca_bundles": {"uvx": "junk.pem"}}))
    assert "ca_bundles.uvx" in junk and "TLS can load" in junk
    (extra,) = _issues(_path(tmp_path, "uvx", {"ca_bundles": {"pip": "tls/ca.pem"}}))
    assert "ca_bundles" in extra


@pytest.mark.parametrize("scheme", ["uvx", "npx", "go"])
def test_the_bundle_is_in_the_builder_stage_only_and_used_by_the_installer(
    tmp_path: Path, ca: Path, scheme: str
) -> None:
    build = _build(tmp_path, scheme, {"index_urls": {scheme: URL}, "ca_bundles": {scheme: "tls/ca.pem"}})
    dockerfile = build.dockerfile()
    builder, runtime = dockerfile.split("\nFROM ", 1)
    assert f"COPY index-ca.pem {CA_IN_BUILD}" in builder and CA_IN_BUILD not in runtime and "index-ca" not in runtime
    runs = [json.loads(line[4:]) for line in dockerfile.splitlines() if line.startswith("RUN ")]
    assert {run[0] for run in runs} == {TOOL[scheme]}, runs  # nothing but the ecosystem's tool
    install = runs[-1]
    if scheme == "uvx":
        assert install[install.index("--cert") + 1] == CA_IN_BUILD and install.index("--cert") < install.index("--")
    elif scheme == "npx":
        assert install[install.index("--cafile") + 1] == CA_IN_BUILD and install.index("--cafile") < install.index("--")
    else:
        assert f"ENV SSL_CERT_FILE={CA_IN_BUILD}" in builder and "SSL_CERT_FILE" not in runtime
    with tarfile.open(fileobj=io.BytesIO(build_context(build))) as archive:
        member = archive.extractfile("index-ca.pem")
        assert member is not None and member.read() == ca.read_bytes()
    plain = _build(tmp_path, scheme, {"index_urls": {scheme: URL}})
    assert plain.ca_bundle is None and "ca_bundle" not in plain.as_spec() and "index-ca" not in plain.dockerfile()
    assert plain.digest != build.digest and PackageBuild.from_spec(build.as_spec()) == build


def test_a_new_bundle_rebuilds_and_one_changed_after_the_plan_is_refused(tmp_path: Path, ca: Path) -> None:
    packages = {"ca_bundles": {"npx": "tls/ca.pem"}}
    first = _build(tmp_path, "npx", packages)
    make_tls(tmp_path / "tls")  # another CA at the same path
    second = _build(tmp_path, "npx", packages)
    assert first.ca_bundle == second.ca_bundle and first.ca_digest != second.ca_digest
    assert first.digest != second.digest and first.tag != second.tag
    with pytest.raises(ContextError, match="changed since the plan"):
        build_context(first)


def test_offline_builds_carry_no_bundle_and_index_auth_gives_it_to_the_hosts_pip(
    tmp_path: Path, ca: Path, monkeypatch: Any
) -> None:
    (tmp_path / "wheels").mkdir()
    offline = _build(tmp_path, "uvx", {"offline_dir": "wheels", "ca_bundles": {"uvx": "tls/ca.pem"}})
    assert offline.ca_bundle is None and "index-ca" not in offline.dockerfile()
    auth = {"uvx": {"username": "reader", "password_secret": "index-token"}}
    private = _build(
        tmp_path, "uvx", {"index_urls": {"uvx": URL}, "index_auth": auth, "ca_bundles": {"uvx": "tls/ca.pem"}}
    )
    assert private.ca_bundle == str(ca.resolve()) and "index-ca" not in private.dockerfile()  # offline build
    seen: dict[str, Any] = {}

    class Done:
        returncode, stdout, stderr = 0, "", ""

    def run(command: list[str], env: dict[str, str], **_: Any) -> Done:
        seen.update(command=command, env=env)
        return Done()

    monkeypatch.setattr(package_fetch.subprocess, "run", run)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/host-bundle.pem")  # requests would let it beat --cert
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/host-bundle.pem")
    package_fetch.fetch_closure(private, SecretValue("tok"), tmp_path)
    assert seen["command"][seen["command"].index("--cert") + 1] == str(ca.resolve())
    assert "REQUESTS_CA_BUNDLE" not in seen["env"] and "CURL_CA_BUNDLE" not in seen["env"]
