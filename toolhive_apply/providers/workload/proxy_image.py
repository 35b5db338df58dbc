"""Build the proxy image on the host from the packaged Dockerfile and proxy sources (host side, docker-py).

The tag is derived from a hash of everything that goes into the image plus the base image reference, so a changed
proxy gets a new tag and an unchanged one is never rebuilt. The build context is assembled in memory: only the
Dockerfile and the proxy package's own modules (this builder lives outside it), never caches.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any, Final

import docker
import docker.errors

import toolhive_apply.proxy
from toolhive_apply.manifest.model import DEFAULT_PROXY_BASE_IMAGE
from toolhive_apply.providers.docker.labels import INPUTS_LABEL, LABEL_ROLE, ROLE_PROXY

PROXY_DIR: Final = Path(toolhive_apply.proxy.__file__).resolve().parent
DEFAULT_BASE_IMAGE: Final = DEFAULT_PROXY_BASE_IMAGE  # settings.proxy.base_image's default
IMAGE_REPOSITORY: Final = "toolhive-apply/proxy"
_PACKAGE_PATH: Final = "toolhive_apply/proxy"


class ProxyImageError(RuntimeError):
    """The proxy image could not be built; the message names the image, the base and the build's last output."""


def proxy_context_files() -> list[tuple[str, bytes]]:
    """(path in the build context, content) of every file the image is built from, in a stable order."""
    files = [("Dockerfile", (PROXY_DIR / "Dockerfile").read_bytes())]
    files += [(f"{_PACKAGE_PATH}/{source.name}", source.read_bytes()) for source in sorted(PROXY_DIR.glob("*.py"))]
    return files


def proxy_image_inputs_hash(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    """sha256 over the context files and the base image reference."""
    digest = hashlib.sha256()
    for path, content in proxy_context_files():
        digest.update(f"{path}\0{len(content)}\0".encode())
        digest.update(content)
    digest.update(f"base\0{base_image}".encode())
    return digest.hexdigest()


def default_proxy_tag(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    return f"{IMAGE_REPOSITORY}:{proxy_image_inputs_hash(base_image)[:16]}"


def build_context(files: list[tuple[str, bytes]]) -> bytes:
    """An uncompressed tar of ``files`` with fixed owners, modes and times, so equal inputs give equal bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, content in files:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(content), 0o644, 0, 0, 0
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _labels_of(api: docker.APIClient, ref: str) -> dict[str, str] | None:
    try:
        found: dict[str, Any] = api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None
    labels = (found.get("Config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def ensure_proxy_image(api: docker.APIClient, base_image: str, tag: str | None = None) -> str:
    """The reference of an up-to-date proxy image built FROM ``base_image``, building it when missing or stale.

    ``tag`` defaults to ``toolhive-apply/proxy:<inputs hash>``. An existing image is reused only when its inputs
    label matches, so a stale image under an explicit tag is rebuilt. The base image must already be on the host or
    be pullable by the engine.
    """
    inputs = proxy_image_inputs_hash(base_image)
    ref = tag or default_proxy_tag(base_image)
    labels = _labels_of(api, ref)
    if labels is not None and labels.get(INPUTS_LABEL) == inputs:
        return ref
    output: list[str] = []
    try:
        for chunk in api.build(
            fileobj=io.BytesIO(build_context(proxy_context_files())),
            custom_context=True,
            tag=ref,
            buildargs={"BASE_IMAGE": base_image},
            labels={INPUTS_LABEL: inputs, LABEL_ROLE: ROLE_PROXY},
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                raise ProxyImageError(_failure(ref, base_image, str(chunk["error"]), output))
            if "stream" in chunk:
                output.append(str(chunk["stream"]))
    except docker.errors.APIError as error:
        raise ProxyImageError(_failure(ref, base_image, str(error), output)) from None
    labels = _labels_of(api, ref)
    if labels is None or labels.get(INPUTS_LABEL) != inputs:
        raise ProxyImageError(_failure(ref, base_image, "the build ended without producing the image", output))
    return ref


def _failure(ref: str, base_image: str, reason: str, output: list[str]) -> str:
    tail = "".join(output)[-1500:].strip()
    hint = (
        f" (is the base image {base_image} on this host or pullable?)"
        if "pull" in reason or "not found" in reason
        else ""
    )
    return f"building proxy image {ref} FROM {base_image} failed: {reason.strip()}{hint}" + (
        f"\nlast build output:\n{tail}" if tail else ""
    )
