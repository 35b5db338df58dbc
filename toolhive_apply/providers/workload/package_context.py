"""The build context of a package image: the Dockerfile, the offline source's files, and the index's CA bundle.

Kept apart from package_images.py so what a build is given (and therefore what its layers can hold) is read in one
place. The CA bundle (`settings.packages.ca_bundles`) is read again here through the check preflight used, and its
digest compared with the one the plan hashed: the context holds exactly the bundle that was checked and shown, and
a bundle replaced between plan and apply fails the build instead of silently trusting another CA.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from toolhive_apply.manifest.collector_ca import bundle_digest, read_collector_ca
from toolhive_apply.providers.workload.package_dockerfiles import CA_IN_CONTEXT, uses_ca

if TYPE_CHECKING:
    from toolhive_apply.providers.workload.package_build_model import PackageBuild

CA_CHANGED: Final = "changed since the plan was made (plan again, then apply)"


class ContextError(Exception):
    """The context cannot be made as planned (the CA bundle is unreadable or changed)."""


def ca_digest(path: str) -> str | None:
    """The digest of the CA bundle at `path` as the checks read it; None when it is not a bundle (preflight said
    why, so a plan never gets here with None; a build does, and refuses)."""
    text, _ = read_collector_ca(Path(path))
    return bundle_digest(text) if text is not None else None


def planned_ca(build: PackageBuild) -> str | None:
    """The CA bundle's text, when it is the one the plan hashed; ContextError otherwise (None: no bundle)."""
    if build.ca_bundle is None:
        return None
    text, problem = read_collector_ca(Path(build.ca_bundle))
    if text is None:
        raise ContextError(f"settings.packages.ca_bundles.{build.scheme}: {problem}")
    if bundle_digest(text) != build.ca_digest:
        raise ContextError(f"settings.packages.ca_bundles.{build.scheme}: {build.ca_bundle} {CA_CHANGED}")
    return text


def build_context(build: PackageBuild, fetched: Path | None = None) -> bytes:
    """The Dockerfile, (offline) the regular files of the offline directory or of `fetched` (the host's download
    from a private index), and (network builds with a bundle) the CA bundle, as a tar the engine reads."""
    ca = planned_ca(build) if uses_ca(build) else None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        add_file(archive, "Dockerfile", build.dockerfile().encode())
        if ca is not None:
            add_file(archive, CA_IN_CONTEXT, ca.encode("ascii"))
        source = fetched or (Path(build.offline_dir) if build.offline_dir else None)
        if source is not None:
            for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
                add_file(archive, f"offline/{path.relative_to(source)}", path.read_bytes())
            add_file(archive, "offline/.keep", b"")
    return buffer.getvalue()


def add_file(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(content), 0o644, 0
    archive.addfile(info, io.BytesIO(content))
