"""What shapes one package image (`uvx://`, `npx://`, `go://`): the frozen PackageBuild and how a workload's
settings derive it.

Its digest covers every field and the Dockerfile it renders to (package_dockerfiles.py), so the image's name and
label change with any input: a version, a base image's id, a file of the offline directory, the template. Building
it is package_images.py's job; this module only describes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from toolhive_apply.manifest.model import Settings, Workload
from toolhive_apply.manifest.package_refs import PackageRef, Scheme, parse_package_ref
from toolhive_apply.providers.workload.package_context import ca_digest
from toolhive_apply.providers.workload.package_dockerfiles import TEMPLATE_VERSION, render
from toolhive_apply.providers.workload.package_resolve import offline_version

REPOSITORY: Final = "toolhive-apply/pkg"
DEFAULT_BUILDERS: Final[Mapping[Scheme, str]] = {
    "uvx": "python:3.14-slim",
    "npx": "node:24-alpine",
    "go": "golang:1.27-alpine",
}
"""ToolHive's defaults (pkg/container/templates/runtime_config.go RuntimeDefaults)."""
DEFAULT_RUNTIMES: Final[Mapping[Scheme, str]] = {
    "uvx": "python:3.14-slim",
    "npx": "node:24-alpine",
    "go": "alpine:3.22",
}
"""ToolHive's runtime stages: the builder's image for Python and Node (the venv and node_modules need the same
interpreter), a bare Alpine for Go's static binary."""


@dataclass(frozen=True, slots=True)
class PackageBuild:
    """Everything that shapes one package image (the hash covers it all, and the rendered Dockerfile)."""

    scheme: Scheme
    name: str
    version: str | None
    builder_image: str
    runtime_image: str
    builder_id: str | None = None
    runtime_id: str | None = None
    build_with: tuple[str, ...] = ()
    runtime_env: tuple[tuple[str, str], ...] = ()
    index_url: str | None = None
    offline_dir: str | None = None
    offline_digest: str | None = None
    template: str = TEMPLATE_VERSION
    extra: Mapping[str, str] = field(default_factory=dict)
    resolved: str | None = None
    """What an unpinned ref resolves to in the offline source (package_resolve.py), installed exactly; None when
    pinned or when nothing local can tell (a network index). Left out of the hash and spec when None, so builds
    recorded before this field existed keep their hash."""
    index_user: str | None = None
    index_secret: str | None = None
    """settings.packages.index_auth: the username (plain) and the NAME of the password's secret; as `resolved`."""
    ca_bundle: str | None = None
    ca_digest: str | None = None
    """settings.packages.ca_bundles: the bundle's absolute path and SHA-256 (a new bundle rebuilds); as `resolved`."""

    @property
    def installs_offline(self) -> bool:
        """Installed from files in the context, with no network: offline_dir, or a host-fetched private index."""
        return bool(self.offline_dir or self.index_secret)

    @property
    def ref(self) -> PackageRef:
        return PackageRef(self.scheme, self.name, self.version)

    @property
    def install_ref(self) -> PackageRef:
        """The ref the package manager is given: the resolved version when there is one."""
        return PackageRef(self.scheme, self.name, self.resolved or self.version)

    def dockerfile(self) -> str:
        return render(self)

    @property
    def digest(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k not in _OPTIONAL or v is not None}
        canonical = json.dumps({**fields, "dockerfile": self.dockerfile()}, sort_keys=True, default=list)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}-{self.scheme}-{self.ref.slug}:{self.digest[:16]}"

    def as_spec(self) -> dict[str, Any]:
        """The workload spec's `package` entry: enough to build again from a saved plan, and what plan diffs."""
        data = asdict(self)
        data.pop("extra")
        for name in _OPTIONAL:
            if data[name] is None:
                data.pop(name)
        data["build_with"] = list(self.build_with)
        data["runtime_env"] = dict(self.runtime_env)
        data["ref"] = self.ref.text
        data["hash"] = self.digest
        return data

    @classmethod
    def from_spec(cls, data: Mapping[str, Any]) -> PackageBuild:
        keep = {k: v for k, v in data.items() if k not in ("ref", "hash")}
        keep["build_with"] = tuple(keep.get("build_with") or ())
        keep["runtime_env"] = tuple(sorted((keep.get("runtime_env") or {}).items()))
        return cls(**keep)


# absent from hash and spec while None:
_OPTIONAL: Final = ("resolved", "index_user", "index_secret", "ca_bundle", "ca_digest")


def package_build(workload: Workload, settings: Settings, image_ids: Mapping[str, str]) -> PackageBuild:
    """The build of a workload's package image under `settings`; base image ids from the engine's image list."""
    assert workload.image is not None
    ref = parse_package_ref(workload.image)  # checked by preflight already; this is the same parse
    config: Mapping[str, Any] = workload.runtime_config or {}
    packages = settings.packages
    builder = str(
        config.get("builder_image")
        or (packages.get("builder_images") or {}).get(ref.scheme)
        or DEFAULT_BUILDERS[ref.scheme]
    )
    runtime = str((packages.get("runtime_images") or {}).get(ref.scheme) or DEFAULT_RUNTIMES[ref.scheme])
    offline = packages.get("offline_dir")
    auth: Mapping[str, Any] = (packages.get("index_auth") or {}).get(ref.scheme) or {}
    resolved = offline_version(ref, Path(str(offline))) if offline and not ref.pinned else None
    ca = None if offline else (packages.get("ca_bundles") or {}).get(ref.scheme)  # offline: no connection to verify
    return PackageBuild(
        scheme=ref.scheme,
        name=ref.name,
        version=ref.version,
        builder_image=builder,
        runtime_image=runtime,
        builder_id=_local_id(image_ids, builder),
        runtime_id=_local_id(image_ids, runtime),
        build_with=tuple(str(entry) for entry in config.get("build_with") or ()),
        runtime_env=tuple(sorted((str(k), str(v)) for k, v in (config.get("runtime_env") or {}).items())),
        index_url=(packages.get("index_urls") or {}).get(ref.scheme),
        offline_dir=str(offline) if offline else None,
        offline_digest=directory_digest(Path(str(offline))) if offline else None,
        resolved=resolved,
        index_user=str(auth["username"]) if auth.get("username") is not None else None,
        index_secret=str(auth["password_secret"]) if auth.get("password_secret") else None,
        ca_bundle=str(ca) if ca else None,
        ca_digest=ca_digest(str(ca)) if ca else None,
    )


def _local_id(image_ids: Mapping[str, str], ref: str) -> str | None:
    return image_ids.get(ref) or (image_ids.get(f"{ref}:latest") if ":" not in ref.rsplit("/", 1)[-1] else None)


def directory_digest(directory: Path) -> str | None:
    """SHA-256 over the relative names and contents of the regular files under `directory` (None: not a
    directory): a wheel added, removed or replaced in the offline directory is a different build."""
    if not directory.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()
