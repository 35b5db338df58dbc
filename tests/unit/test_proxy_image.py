"""The proxy image's inputs: what goes into the build context and how the tag follows them (no Docker)."""

from __future__ import annotations

import ast
import io
import tarfile

from toolhive_apply.providers.workload.proxy_image import (
    PROXY_DIR,
    build_context,
    default_proxy_tag,
    proxy_context_files,
    proxy_image_inputs_hash,
)


def test_the_context_holds_the_dockerfile_and_the_proxy_modules_only() -> None:
    paths = [path for path, _ in proxy_context_files()]
    assert paths[0] == "Dockerfile"
    assert "toolhive_apply/proxy/__main__.py" in paths
    assert "toolhive_apply/proxy/image.py" not in paths  # host side, needs docker-py
    assert all(p == "Dockerfile" or (p.startswith("toolhive_apply/proxy/") and p.endswith(".py")) for p in paths)


def test_the_context_tar_is_reproducible_and_world_readable() -> None:
    files = proxy_context_files()
    first, second = build_context(files), build_context(files)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        members = archive.getmembers()
    assert {m.name for m in members} == {path for path, _ in files}
    assert all(m.mode == 0o644 and m.uid == 0 for m in members)


def test_the_tag_changes_with_the_base_image() -> None:
    assert proxy_image_inputs_hash("python:3.11-slim") != proxy_image_inputs_hash("python:3.12-slim")
    assert default_proxy_tag("python:3.11-slim").startswith("toolhive-apply/proxy:")
    assert default_proxy_tag("python:3.11-slim") == default_proxy_tag("python:3.11-slim")


def test_the_image_modules_import_only_the_standard_library_and_each_other() -> None:
    """The image has nothing but CPython: a third-party or toolhive_apply import would break it at start."""
    import sys

    for path, content in proxy_context_files()[1:]:
        for node in ast.walk(ast.parse(content, filename=path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (
                    top in sys.stdlib_module_names or name.startswith("toolhive_apply.proxy") or name == "__future__"
                ), f"{path} imports {name}"
    assert (PROXY_DIR / "Dockerfile").is_file()
