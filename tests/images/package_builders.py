"""What the package-image tests need on top of the test images: a builder with pip, and a wheel set on the host.

No registry is reachable, so ToolHive's python:3.14-slim builder cannot be pulled: the builder is the test python
image (tests/images/build_images.py) plus the host's own pip, copied in; the runtime image is the test python image
itself (the same interpreter at the same path, which a venv needs). The wheels of `mcp-server-time` and its closure
are downloaded on the host (PyPI is reachable from here, not from inside builds) into the tests' cache, once.

Kept out of build_images.py on purpose: that file's bytes are part of the shared images' recipe hash, and changing
it would rebuild (and re-tag) the images every other test run on this engine is using.
Usage: ``python tests/images/package_builders.py`` (idempotent).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pip

if __package__ in (None, ""):  # run as a script: make `tests.images` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.images.build_images import PY_VERSION, PYTHON_TAG, cache_dir, ensure_images, locked

PIP_BUILDER_TAG = "toolhive-apply-test/python-pip:latest"
RECIPE_LABEL = "toolhive-apply-test.pip-recipe"
TIME_VERSIONS = ("2026.10.19", "2026.10.10")
"""Two releases of mcp-server-time whose closures both resolve from PyPI, for the version-change test."""


def _pip_dir() -> Path:
    return Path(pip.__file__).resolve().parent


def _recipe(base_id: str) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{base_id}|{pip.__version__}".encode())
    return digest.hexdigest()


def ensure_pip_builder() -> str:
    """The builder image (python image + the host's pip in its site-packages); built when missing or stale."""
    base_id = ensure_images()[PYTHON_TAG]
    recipe = _recipe(base_id)
    client = docker.from_env(timeout=600)
    try:
        try:
            image: Any = client.images.get(PIP_BUILDER_TAG)
            if image.labels.get(RECIPE_LABEL) == recipe:
                return str(image.id)
        except docker.errors.ImageNotFound:
            pass
        site = f"/opt/python/lib/python{PY_VERSION}/site-packages"
        dockerfile = f"FROM {PYTHON_TAG}\nCOPY pip {site}/pip\nLABEL {RECIPE_LABEL}={recipe}\n"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            archive.addfile(info, io.BytesIO(dockerfile.encode()))
            archive.add(_pip_dir(), arcname="pip", filter=lambda m: None if "__pycache__" in m.name else m)
        buffer.seek(0)
        built, _logs = client.images.build(
            fileobj=buffer, custom_context=True, tag=PIP_BUILDER_TAG, pull=False, rm=True, forcerm=True
        )
        return str(built.id)
    finally:
        client.close()


def ensure_wheels(versions: tuple[str, ...] = TIME_VERSIONS) -> Path:
    """A directory holding the wheels of each mcp-server-time release and its closure, downloaded once."""
    key = hashlib.sha256(f"{versions}|{sys.version}".encode()).hexdigest()[:16]
    target = cache_dir() / f"wheels-time-{key}"
    if target.is_dir():
        return target
    with locked(cache_dir()):
        if target.is_dir():
            return target
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="wheels-"))
        try:
            for version in versions:  # one resolution each: the two releases need different mcp versions
                command = [
                    sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary", ":all:", "--dest", str(staging), f"mcp-server-time=={version}",
                ]  # fmt: skip
                subprocess.run(command, check=True, capture_output=True, timeout=600)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(PIP_BUILDER_TAG, ensure_pip_builder())
    print(ensure_wheels())
