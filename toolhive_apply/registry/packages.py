"""Upstream registry `packages` entries as images: `oci` as it is, `npm` and `pypi` as ToolHive's npx:// and uvx://.

The resulting `npx://IDENTIFIER@VERSION` goes through the same strict parse and checks as a manifest's own image
(manifest/package_checks.py, run by preflight after registries are resolved), so a registry cannot put anything
into a generated Dockerfile that a manifest could not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

PACKAGE_SCHEMES: Final[Mapping[str, str]] = {"npm": "npx", "pypi": "uvx"}
"""registryType -> the image scheme ToolHive builds it with."""


def chosen_package(packages: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The package a workload runs: the first `oci` one (ToolHive's container servers), else the first npm/pypi."""
    for wanted in ("oci", *PACKAGE_SCHEMES):
        for package in packages:
            if isinstance(package, Mapping) and package.get("registryType") == wanted:
                return package
    return None


def package_image(package: Mapping[str, Any]) -> str:
    """The image reference of a chosen package: the OCI identifier, or `scheme://identifier[@version]`."""
    identifier = str(package["identifier"])
    scheme = PACKAGE_SCHEMES.get(str(package.get("registryType")))
    if scheme is None:
        return identifier
    version = package.get("version")
    return f"{scheme}://{identifier}" + (f"@{version}" if version else "")
