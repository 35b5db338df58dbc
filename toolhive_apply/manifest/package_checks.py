"""The checks of package images (`uvx://`, `npx://`, `go://`), their `runtime_config` and `settings.packages`.

Run by preflight once registries have filled in their images, so a registry's `packages` entry is judged by the
same rules as a manifest's own image. Every value that reaches the generated Dockerfile is checked here against
the grammar its consumer uses (Docker's image references, PEP 508, env names) and refused otherwise: the build
never quotes user text into a shell, and nothing unchecked reaches it at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.errors import ManifestIssue
from toolhive_apply.manifest.collector_ca import read_collector_ca
from toolhive_apply.manifest.loader import format_path
from toolhive_apply.manifest.model import Manifest, Workload
from toolhive_apply.manifest.package_refs import SCHEMES, PackageRefError, is_package_image, parse_package_ref

# Docker's reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest]
_LABEL: Final = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN: Final = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?"
_PATH_PART: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE: Final = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_ENV_KEY: Final = re.compile(r"[A-Z][A-Z0-9_]{0,127}")
RESERVED_ENV: Final = frozenset(
    {"PATH", "HOME", "USER", "SHELL", "PWD", "HOSTNAME", "TERM", "LANG", "LC_ALL", "LD_PRELOAD", "LD_LIBRARY_PATH"}
    | {"PYTHONPATH", "PYTHONHOME", "NODE_PATH", "NODE_OPTIONS", "VIRTUAL_ENV"}
)
"""ToolHive's reserved names, plus those the generated images set themselves or that change what runs."""
_ENV_VALUE: Final = re.compile(r"[^\x00-\x1f\x7f\"$\\`]{0,4096}")
"""A value written into `ENV KEY="value"`: no quote, `$` (ENV substitutes variables), backslash or control
character, so the Dockerfile holds it literally."""
_BUILD_WITH: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\[\],<>=!~* -]{0,127}")
"""ToolHive's allow-list for build_with; each entry must also be a PEP 508 requirement without URL or marker."""
RUNTIME_CONFIG_KEYS: Final = ("builder_image", "additional_packages", "build_with", "runtime_env")


@dataclass(frozen=True, slots=True)
class PackageFindings:
    errors: tuple[ManifestIssue, ...]
    warnings: tuple[ManifestIssue, ...]


def image_reference_problem(image: str) -> str | None:
    """None when `image` is a Docker image reference as the engine parses it, else why not."""
    if not IMAGE_REFERENCE.fullmatch(image):
        return f"{image!r} is not a Docker image reference (such as python:3.13-slim or registry:5000/team/node:22)"
    return None


def has_digest(image: str) -> bool:
    return "@" in image and IMAGE_REFERENCE.fullmatch(image) is not None


def requirement_problem(entry: str) -> str | None:
    """A build_with entry: ToolHive's allow-list and a PEP 508 requirement with a name and versions only."""
    if not _BUILD_WITH.fullmatch(entry):
        return f"{entry!r} is not a requirement such as mcp<2 (letters, digits, extras and version operators only)"
    from packaging.requirements import InvalidRequirement, Requirement  # only a build_with entry needs it

    try:
        parsed = Requirement(entry)
    except InvalidRequirement as exc:
        return f"{entry!r} is not a PEP 508 requirement: {exc}"
    if parsed.url or parsed.marker:
        return f"{entry!r}: URLs and environment markers are not accepted"
    return None


def index_url_problem(url: str) -> str | None:
    """An index URL: http(s), a host, printable ASCII, and no credentials (they would be stored in the image's
    build history: the classic builder has no build secrets)."""
    if not re.fullmatch(r"[\x21-\x7e]+", url):
        return "an index URL is printable ASCII without spaces"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "an index URL is http(s)://host/..."
    if parts.username is not None or parts.password is not None:
        return (
            "credentials in an index URL would end up in the image's build history (Docker 20.10's builder has "
            "no build secrets): give the password as a secret in settings.packages.index_auth instead"
        )
    return None


def _issue(w: Workload, path: tuple[str | int, ...], message: str) -> ManifestIssue:
    return ManifestIssue(w.origin, format_path(("workloads", w.index, *path)), message)


def _runtime_config_issues(w: Workload, scheme: str) -> Iterator[ManifestIssue]:
    config: Mapping[str, Any] = w.runtime_config or {}
    where = ("runtime_config",)
    builder = config.get("builder_image")
    if builder is not None and (problem := image_reference_problem(str(builder))):
        yield _issue(w, (*where, "builder_image"), problem)
    if config.get("additional_packages"):
        yield _issue(
            w,
            (*where, "additional_packages"),
            "not supported: a build installs only the package itself, from its index or offline_dir (OS packages "
            "need the distribution's mirrors); bake them into a builder or runtime image instead",
        )
    for index, entry in enumerate(config.get("build_with") or ()):
        if scheme != "uvx":
            yield _issue(w, (*where, "build_with"), f"build_with is not supported for {scheme}:// builds (only uvx://)")
            break
        if problem := requirement_problem(str(entry)):
            yield _issue(w, (*where, "build_with", index), problem)
    for key, value in (config.get("runtime_env") or {}).items():
        if not _ENV_KEY.fullmatch(key):
            yield _issue(w, (*where, "runtime_env", key), f"{key!r}: runtime_env names are upper case, digits and _")
        elif key in RESERVED_ENV:
            yield _issue(w, (*where, "runtime_env", key), f"{key} is reserved: the image sets it itself")
        elif not _ENV_VALUE.fullmatch(str(value)):
            yield _issue(
                w,
                (*where, "runtime_env", key),
                "a runtime_env value may not hold quotes, '$', backslashes or control characters (it is baked "
                "into the image literally) and is at most 4096 characters",
            )


def _workload_findings(
    manifest: Manifest, w: Workload, from_registry: bool
) -> tuple[list[ManifestIssue], list[ManifestIssue]]:
    errors: list[ManifestIssue] = []
    warnings: list[ManifestIssue] = []
    field: tuple[str | int, ...] = ("server",) if from_registry else ("image",)
    image = w.image or ""
    if not is_package_image(image):
        if w.runtime_config:
            errors.append(_issue(w, ("runtime_config",), "runtime_config applies to uvx://, npx:// and go:// only"))
        if image and manifest.settings.require_pinned and not has_digest(image):
            errors.append(
                _issue(w, field, f"{image!r} has no digest (settings.images.require_pinned): use IMAGE@sha256:...")
            )
        return errors, warnings
    try:
        ref = parse_package_ref(image)
    except PackageRefError as exc:
        errors.append(_issue(w, field, str(exc)))
        return errors, warnings
    errors.extend(_runtime_config_issues(w, ref.scheme))
    if not ref.pinned:
        message = f"{ref.text} is not pinned to a version: each build takes the newest one"
        if manifest.settings.require_pinned:
            errors.append(_issue(w, field, f"{message} (settings.images.require_pinned): add @VERSION"))
        else:
            warnings.append(_issue(w, field, f"warning: {message}; add @VERSION to pin it"))
    return errors, warnings


def _settings_issues(manifest: Manifest) -> Iterator[ManifestIssue]:
    packages = manifest.settings.packages
    origin = manifest.positions.find(("settings", "packages")) or manifest.positions.find(("settings",))
    for section in ("builder_images", "runtime_images"):
        for scheme, image in (packages.get(section) or {}).items():
            if problem := image_reference_problem(str(image)):
                where = format_path(("settings", "packages", section, scheme))
                yield ManifestIssue(origin, where, problem)
    for scheme, url in (packages.get("index_urls") or {}).items():
        if problem := index_url_problem(str(url)):
            yield ManifestIssue(origin, format_path(("settings", "packages", "index_urls", scheme)), problem)
    for scheme, bundle in (packages.get("ca_bundles") or {}).items():
        at: tuple[str | int, ...] = ("settings", "packages", "ca_bundles", scheme)
        _, problem = read_collector_ca(Path(str(bundle)))
        if problem is not None:
            yield ManifestIssue(manifest.positions.find(at) or origin, format_path(at), problem)
    yield from _index_auth_issues(manifest, origin)
    offline = packages.get("offline_dir")
    if offline is not None and not Path(str(offline)).is_dir():
        where = format_path(("settings", "packages", "offline_dir"))
        yield ManifestIssue(origin, where, f"{offline} is not a directory on this machine")


_USERNAME: Final = re.compile(r"[\x21-\x7e]{1,256}")


def index_auth_problem(scheme: str, index_url: str | None, offline_dir: str | None) -> str | None:
    """index_auth is fetched outside the build (package_fetch.py, package_fetch_npm.py on the host; for go the
    builder image's go in a throwaway container, package_fetch_go.py), from an index URL, and not beside an
    offline_dir (one offline source per build, so what is installed has one origin)."""
    if not index_url:
        return f"index_auth.{scheme} needs settings.packages.index_urls.{scheme} (the private index it logs in to)"
    if offline_dir:
        return "index_auth and offline_dir are two sources for one build: use one of them"
    if scheme == "go":
        parts = urlsplit(index_url)
        if parts.scheme != "https":
            return "index_auth.go needs an https:// index_urls.go (Go sends credentials over HTTPS only)"
        if any(ch in index_url for ch in ",|?#"):
            return "index_auth.go needs index_urls.go to be one proxy URL (no ',', '|', query or fragment)"
    return None


def _index_auth_issues(manifest: Manifest, origin: Any) -> Iterator[ManifestIssue]:
    """settings.packages.index_auth: `{uvx: {username: NAME, password_secret: SECRET}}`, the secret declared."""
    packages = manifest.settings.packages
    declared = {s.key for s in manifest.secrets}
    for scheme, auth in (packages.get("index_auth") or {}).items():
        where = ("settings", "packages", "index_auth", scheme)
        problem = index_auth_problem(
            scheme, (packages.get("index_urls") or {}).get(scheme), packages.get("offline_dir")
        )
        if problem:
            yield ManifestIssue(manifest.positions.find(where) or origin, format_path(where), problem)
            continue
        username = auth.get("username")
        if username is not None and not _USERNAME.fullmatch(str(username)):
            yield ManifestIssue(origin, format_path((*where, "username")), "a username is printable ASCII, no spaces")
        if username is None and scheme == "go":
            message = "index_auth.go needs a username: Go sends a netrc login and password (HTTP basic auth)"
            yield ManifestIssue(manifest.positions.find(where) or origin, format_path((*where, "username")), message)
        secret = str(auth.get("password_secret"))
        if secret not in declared:
            known = f" (declared: {', '.join(sorted(declared))})" if declared else ""
            found = manifest.positions.find((*where, "password_secret")) or origin
            yield ManifestIssue(
                found,
                format_path((*where, "password_secret")),
                f"unknown secret {secret!r}: declare it under secrets{known}",
            )


def package_findings(manifest: Manifest, explain: Mapping[str, Mapping[str, str]]) -> PackageFindings:
    """Errors and warnings about package images; `explain` says which images a registry filled in."""
    errors: list[ManifestIssue] = []
    warnings: list[ManifestIssue] = []
    uses_packages = False
    for w in manifest.workloads:
        uses_packages = uses_packages or is_package_image(w.image)
        found, warned = _workload_findings(manifest, w, "image" in explain.get(w.name, {}))
        errors.extend(found)
        warnings.extend(warned)
    if uses_packages or manifest.settings.packages:
        errors.extend(_settings_issues(manifest))
    return PackageFindings(tuple(errors), tuple(warnings))


__all__ = ["SCHEMES", "PackageFindings", "has_digest", "image_reference_problem", "package_findings"]


def build_input_problems(
    ref_text: str,
    images: tuple[str, ...],
    build_with: tuple[str, ...],
    runtime_env: tuple[tuple[str, str], ...],
    index_url: str | None,
    index_secret: str | None = None,
    offline_dir: str | None = None,
) -> list[str]:
    """The same rules once more on what a build is about to use (a saved plan's spec, a registry's entry): the
    Dockerfile is generated from these values, so they are judged where they are consumed, too."""
    problems: list[str] = []
    try:
        ref = parse_package_ref(ref_text)
    except PackageRefError as exc:
        return [str(exc)]
    problems += [p for image in images if (p := image_reference_problem(image))]
    if build_with and ref.scheme != "uvx":
        problems.append(f"build_with is not supported for {ref.scheme}:// builds (only uvx://)")
    problems += [p for entry in build_with if (p := requirement_problem(entry))]
    for key, value in runtime_env:
        if not _ENV_KEY.fullmatch(key) or key in RESERVED_ENV or not _ENV_VALUE.fullmatch(value):
            problems.append(f"runtime_env {key!r} is not a name and value the image may carry")
    if index_url is not None and (problem := index_url_problem(index_url)):
        problems.append(problem)
    if index_secret is not None and (problem := index_auth_problem(ref.scheme, index_url, offline_dir)):
        problems.append(problem)
    return problems
