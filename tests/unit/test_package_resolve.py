"""Unpinned packages resolve, at plan time, to the version the offline source offers; the build installs exactly it,
the image is labelled with it, and a newer release in the source is a planned change naming both versions. Against a
network index the build reports what it installed, the image is labelled with that, and the plan says so (#19)."""

from __future__ import annotations

import base64
import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any, cast

import docker.errors

from toolhive_apply.engine.diff import field_changes
from toolhive_apply.manifest import load_manifest as load
from toolhive_apply.manifest.package_refs import parse_package_ref
from toolhive_apply.providers.docker.labels import LABEL_RESOLVED
from toolhive_apply.providers.workload.package_build_model import PackageBuild, package_build
from toolhive_apply.providers.workload.package_dockerfiles import INSTALLED_MARKER, installed_version
from toolhive_apply.providers.workload.package_images import build_labels, ensure_package_image
from toolhive_apply.providers.workload.package_resolve import offline_version
from toolhive_apply.providers.workload.package_specs import installed_note, package_fields
from toolhive_apply.providers.workload.spec_model import WorkloadSpec


def _wheel(directory: Path, name: str, version: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}-{version}-py3-none-any.whl").write_bytes(f"{name} {version}".encode())


def _manifest(tmp_path: Path, image: str) -> Any:
    settings = {"stack": "pk", "packages": {"offline_dir": "offline", "builder_images": {"uvx": "b:1"}}}
    data = {"apiVersion": "toolhive-apply/v1", "settings": settings, "workloads": [{"name": "a", "image": image}]}
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return load([path])


def _build(tmp_path: Path, image: str) -> PackageBuild:
    manifest = _manifest(tmp_path, image)
    return package_build(manifest.workloads[0], manifest.settings, {})


def test_pypi_newest_final_release_of_the_normalised_name(tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    for version in ("1.0.0", "1.2.0", "1.3.0rc1"):
        _wheel(offline, "mcp_server_time", version)
    _wheel(offline, "other", "9.0")
    (offline / "mcp-server-time-0.9.tar.gz").write_bytes(b"sdist")
    assert offline_version(parse_package_ref("uvx://mcp-server-time"), offline) == "1.2.0"
    assert offline_version(parse_package_ref("uvx://MCP.Server_Time"), offline) == "1.2.0"
    assert offline_version(parse_package_ref("uvx://absent"), offline) is None
    only_pre = tmp_path / "pre"
    _wheel(only_pre, "x", "2.0b1")
    assert offline_version(parse_package_ref("uvx://x"), only_pre) == "2.0b1"  # pip's rule: pre only if nothing else


def _cacache_put(cache: Path, key: str, content: bytes, time: int) -> None:
    raw = hashlib.sha512(content).digest()
    integrity = "sha512-" + base64.b64encode(raw).decode()
    digest = raw.hex()
    target = cache / "_cacache" / "content-v2" / "sha512" / digest[:2] / digest[2:4] / digest[4:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    entry = json.dumps({"key": key, "integrity": integrity, "time": time, "size": len(content)})
    bucket = cache / "_cacache" / "index-v5" / "ab" / "cd" / hashlib.sha256(key.encode()).hexdigest()
    bucket.parent.mkdir(parents=True, exist_ok=True)
    with bucket.open("a") as handle:
        handle.write(hashlib.sha1(entry.encode()).hexdigest() + "\t" + entry + "\n")


def test_npm_dist_tag_from_the_cached_packument(tmp_path: Path) -> None:
    cache = tmp_path / "offline" / "npm-cache"
    key = "make-fetch-happen:request-cache:https://registry.npmjs.org/@scope%2fserver"
    old = {"name": "@scope/server", "dist-tags": {"latest": "1.0.0"}}
    _cacache_put(cache, key, json.dumps(old).encode(), 1)
    new = {"name": "@scope/server", "dist-tags": {"latest": "1.1.0", "next": "2.0.0-beta.1"}}
    _cacache_put(cache, key, json.dumps(new).encode(), 2)  # a refreshed packument: the newest entry wins
    tarball = "make-fetch-happen:request-cache:https://registry.npmjs.org/@scope/server/-/server-1.1.0.tgz"
    _cacache_put(cache, tarball, b"not json", 3)
    offline = tmp_path / "offline"
    assert offline_version(parse_package_ref("npx://@scope/server"), offline) == "1.1.0"
    assert offline_version(parse_package_ref("npx://@scope/server@next"), offline) == "2.0.0-beta.1"
    assert offline_version(parse_package_ref("npx://server"), offline) is None  # not the scoped one
    assert offline_version(parse_package_ref("npx://@scope/server@gone"), offline) is None


def test_go_latest_release_from_the_module_proxy_list(tmp_path: Path) -> None:
    listing = tmp_path / "offline" / "goproxy" / "github.com" / "!acme" / "server" / "@v" / "list"
    listing.parent.mkdir(parents=True)
    listing.write_text("v1.2.0\nv1.10.0\nv1.11.0-rc.1\nnot-a-version\n")
    assert offline_version(parse_package_ref("go://github.com/Acme/server"), tmp_path / "offline") == "v1.10.0"


def test_unpinned_builds_install_the_resolved_version_and_a_newer_one_is_a_named_change(tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    _wheel(offline, "mcp_server_time", "1.2.0")
    build = _build(tmp_path, "uvx://mcp-server-time")
    assert build.resolved == "1.2.0" and build.ref.text == "uvx://mcp-server-time"
    install = [json.loads(line[4:]) for line in build.dockerfile().splitlines() if line.startswith("RUN ")][-1]
    assert install[install.index("--") + 1 :] == ["mcp-server-time==1.2.0"]
    assert build_labels(build)[LABEL_RESOLVED] == "1.2.0"
    assert PackageBuild.from_spec(build.as_spec()) == build  # a saved plan builds the version it showed

    manifest = _manifest(tmp_path, "uvx://mcp-server-time")
    before = package_fields(manifest.workloads[0], manifest.settings, {})
    _wheel(offline, "mcp_server_time", "1.3.0")
    after = package_fields(manifest.workloads[0], manifest.settings, {})
    changed = {c.path: (c.before, c.after) for c in field_changes(before, after)}
    assert changed["package.resolved"] == ("1.2.0", "1.3.0")


def test_pinned_builds_carry_no_resolved_field_so_their_hash_is_unchanged(tmp_path: Path) -> None:
    _wheel(tmp_path / "offline", "mcp_server_time", "1.3.0")
    build = _build(tmp_path, "uvx://mcp-server-time@1.2.0")
    assert build.resolved is None and "resolved" not in build.as_spec()
    assert LABEL_RESOLVED not in build_labels(build)
    assert build.install_ref == build.ref


def _index_build(image: str) -> PackageBuild:
    """A build against a network index (no offline_dir): nothing on the host resolves an unpinned version."""
    ref = parse_package_ref(image)
    return PackageBuild(ref.scheme, ref.name, ref.version, "b:1", "r:1", index_url="https://pypi.example/simple")


def test_unresolved_builds_report_what_they_installed_with_names_as_arguments() -> None:
    for image, program in (
        ("uvx://mcp-server-time", "/opt/mcp/bin/python"),
        ("npx://@scope/server", "node"),
        ("go://github.com/acme/server", "go"),
    ):
        build = _index_build(image)
        runs = [json.loads(line[4:]) for line in build.dockerfile().splitlines() if line.startswith("RUN ")]
        assert runs[-1][0] == program, image
        assert build.ref.executable in runs[-1][-1], image  # the name is an argument, not part of the code
        assert not any(build.name in arg for arg in runs[-1][:-1]), image
    assert "installed-version" not in _index_build("uvx://mcp-server-time@1.0").dockerfile()
    uvx, go = _index_build("uvx://mcp-server-time"), _index_build("go://github.com/acme/server")
    assert installed_version(uvx, f"{INSTALLED_MARKER}1.4.0") == "1.4.0"
    assert installed_version(uvx, "Successfully installed mcp-server-time-1.4.0") is None
    assert installed_version(go, "\tmod\tgithub.com/acme/server\tv1.4.0\th1:abc=") == "v1.4.0"


class _FakeEngine:
    """Enough of docker.APIClient for ensure_package_image: builds print `lines`, then the tag exists."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.builds: list[dict[str, Any]] = []
        self.images: dict[str, dict[str, Any]] = {}

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images:
            raise docker.errors.ImageNotFound(ref)
        return self.images[ref]

    def build(self, **kwargs: Any) -> Any:
        self.builds.append(kwargs)
        with tarfile.open(fileobj=kwargs["fileobj"]) as context:
            dockerfile = context.extractfile("Dockerfile")
            kwargs["dockerfile_text"] = dockerfile.read().decode() if dockerfile else ""
        image_id = f"sha256:{len(self.builds)}"
        self.images[kwargs["tag"]] = {"Id": image_id, "Config": {"Labels": kwargs["labels"]}}
        yield from ({"stream": line + "\n"} for line in (self.lines if len(self.builds) == 1 else ["Step 1/1"]))


def test_the_installed_version_becomes_a_label_the_plan_reads_back() -> None:
    build = _index_build("uvx://mcp-server-time")
    engine = _FakeEngine(["Step 9/9 : RUN [...]", f" {INSTALLED_MARKER}1.4.0 "])
    image = ensure_package_image(cast(Any, engine), build)
    assert image == "sha256:2" and len(engine.builds) == 2
    relabel = engine.builds[1]
    assert relabel["dockerfile_text"] == f"FROM {build.tag}\n" and relabel["tag"] == build.tag
    assert relabel["labels"][LABEL_RESOLVED] == "1.4.0" and relabel["network_mode"] == "none"
    spec = package_fields_for(build)
    note = installed_note(cast(Any, engine), "time", spec)
    assert note is not None and "installed 1.4.0" in note and "uvx://mcp-server-time" in note
    assert installed_note(cast(Any, _FakeEngine([])), "time", spec) is None  # no image yet: nothing to say

    forged = _FakeEngine([f"{INSTALLED_MARKER}1.4.0 && rm -rf /"])  # not a version: ignored, no second build
    assert ensure_package_image(cast(Any, forged), _index_build("uvx://other-server")) == "sha256:1"
    assert len(forged.builds) == 1


def package_fields_for(build: PackageBuild) -> WorkloadSpec:
    return WorkloadSpec.from_document({"name": "time", "package": {**build.as_spec(), "tag": build.tag}})
