"""Where a package image meets the workload spec: the spec's `package` entry, the image the container runs, and
the build at apply time (from the spec alone, so a saved plan builds exactly what it showed).

The spec keeps `image: uvx://NAME@VERSION` as the user wrote it (export and `export --as-manifest` print it back);
`package.tag` is the built image the container is created from, and `package.hash` covers every input, so a new
version, base image or offline wheel is a changed spec: a planned replace whose fields name what moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from toolhive_apply.errors import ProviderError
from toolhive_apply.manifest.model import Settings, Workload
from toolhive_apply.manifest.package_checks import build_input_problems
from toolhive_apply.manifest.package_refs import is_package_image, parse_package_ref
from toolhive_apply.providers.docker.labels import LABEL_RESOLVED
from toolhive_apply.providers.workload.package_build_model import PackageBuild, directory_digest, package_build
from toolhive_apply.providers.workload.package_images import PackageBuildError, SecretLookup, ensure_package_image
from toolhive_apply.providers.workload.spec_model import WorkloadSpec, thaw


def package_fields(workload: Workload, settings: Settings, image_ids: Mapping[str, str]) -> dict[str, Any]:
    """`{"package": {...}}` for a package image (merged into the workload's spec), `{}` for any other."""
    if workload.url or not is_package_image(workload.image):
        return {}
    build = package_build(workload, settings, image_ids)
    return {"package": {**build.as_spec(), "tag": build.tag}}


def installed_note(api: docker.APIClient, name: str, spec: WorkloadSpec) -> str | None:
    """For an unpinned package nothing on the host resolves (a network index): the version its current image
    installed, from the image's label, so the plan says what runs and that a newer release waits for a rebuild."""
    package = spec.package
    if package is None or package.get("resolved") or parse_package_ref(str(package["ref"])).pinned:
        return None
    try:
        labels = (api.inspect_image(str(package["tag"])).get("Config") or {}).get("Labels") or {}
    except docker.errors.ImageNotFound:
        return None
    version = labels.get(LABEL_RESOLVED)
    if not version:
        return None
    return (
        f"workload {name!r}: {package['ref']} is unpinned and its image installed {version} when it was built; "
        "a newer release on the index is taken only when the image is rebuilt (add @VERSION to choose)"
    )


def package_secret(spec: WorkloadSpec) -> str | None:
    """The secret a package build reads (index_auth's password), so the workload is ordered after it."""
    package = spec.package
    return str(package["index_secret"]) if package is not None and package.get("index_secret") else None


def container_image(spec: WorkloadSpec) -> str:
    """The image the workload's container is created from: the built one for a package, else `image`."""
    if spec.package is not None:
        return str(spec.package["tag"])
    return str(spec.image)


def build_package(
    api: docker.APIClient,
    spec: WorkloadSpec,
    address: str,
    action: str,
    progress: Callable[[str], None],
    secret: SecretLookup | None = None,
) -> str:
    """Build the spec's package image (or find it built); ProviderError with the build's last lines. `secret`
    reads a secret by name: index_auth's password, used on the host only (package_fetch.py)."""
    assert spec.package is not None
    data = thaw(spec.package)
    tag = data.pop("tag")
    build = PackageBuild.from_spec(data)
    if build.tag != tag or build.digest != data.get("hash"):
        raise ProviderError(address, action, "the package build in this plan does not match its recorded hash")
    images = (build.builder_image, build.runtime_image)
    problems = build_input_problems(
        build.ref.text,
        images,
        build.build_with,
        build.runtime_env,
        build.index_url,
        build.index_secret,
        build.offline_dir,
    )
    canonical = all(parse_package_ref(ref.text) == ref for ref in (build.ref, build.install_ref))
    if problems or not canonical:
        raise ProviderError(address, action, "refusing to build: " + "; ".join(problems or ["not a canonical ref"]))
    if build.offline_dir and directory_digest(Path(build.offline_dir)) != build.offline_digest:
        raise ProviderError(
            address, action, f"{build.offline_dir} changed since the plan was made", hint="plan again, then apply"
        )
    progress(f"building {build.ref.text} on {build.builder_image} (image {tag})")
    try:
        return ensure_package_image(api, build, progress, secret)
    except PackageBuildError as exc:
        raise ProviderError(address, action, str(exc)) from None
