"""`uvx://PKG[@VER]`, `npx://PKG[@VER]` and `go://MODULE[@VER]`: ToolHive's protocol-scheme images, parsed strictly.

Why strict: the package name and version end up in a generated Dockerfile and on a package manager's command
line. Each part is judged by its own ecosystem's rule (PEP 508 names and PEP 440 versions, npm's package-name
rules and semver, Go module paths and semantic import versions) and anything else is refused here, at the field,
instead of being quoted later: a name that passes contains no quote, space, `$`, backslash, newline or option
dash at its start, so it cannot reach a shell or a second argument (the Dockerfile uses exec-form RUN anyway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from packaging.version import InvalidVersion, Version

Scheme = Literal["uvx", "npx", "go"]
SCHEMES: Final[tuple[Scheme, ...]] = ("uvx", "npx", "go")
MAX_NAME: Final = 214
"""npm's limit for a whole (scoped) name; PyPI and Go names of that length are already absurd."""
MAX_VERSION: Final = 64

# PEP 508 names (https://peps.python.org/pep-0508/#names), ASCII only.
_PYPI_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# npm's validate-npm-package-name for new packages: lower case, URL-safe, no leading dot or underscore.
_NPM_PART: Final = r"[a-z0-9~-][a-z0-9._~-]*"
_NPM_NAME: Final = re.compile(rf"(?:@{_NPM_PART}/)?{_NPM_PART}")
_SEMVER: Final = re.compile(
    r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_NPM_TAG: Final = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
# Go module paths (golang.org/x/mod/module.CheckPath): a first element with a dot, lower-case host characters,
# then path elements of letters, digits and `-._~`; no element starts or ends with a dot.
_GO_HOST: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_GO_ELEMENT: Final = re.compile(r"[A-Za-z0-9_~-](?:[A-Za-z0-9._~-]*[A-Za-z0-9_~-])?")
_GO_VERSION: Final = re.compile(r"v" + _SEMVER.pattern)
_GO_MAJOR: Final = re.compile(r"v[2-9][0-9]*|v[1-9][0-9]+")
UNPINNED: Final = "latest"


class PackageRefError(ValueError):
    """A protocol-scheme image that is not one: the message says which part and why."""


@dataclass(frozen=True, slots=True)
class PackageRef:
    """One package as the ecosystem names it; `version` None means "whatever is newest" (unpinned)."""

    scheme: Scheme
    name: str
    version: str | None

    @property
    def pinned(self) -> bool:
        return self.version is not None and not (self.scheme == "npx" and _SEMVER.fullmatch(self.version) is None)

    @property
    def text(self) -> str:
        """The canonical spelling (`uvx://mcp-server-time@2026.10.19`), as plan and labels show it."""
        return f"{self.scheme}://{self.name}" + (f"@{self.version}" if self.version else "")

    @property
    def requirement(self) -> str:
        """What the package manager is asked to install: `name==ver` (pip), `name@ver` (npm, go)."""
        if self.scheme == "uvx":
            return f"{self.name}=={self.version}" if self.version else self.name
        if self.scheme == "go":
            return f"{self.name}@{self.version or UNPINNED}"
        return f"{self.name}@{self.version}" if self.version else self.name

    @property
    def executable(self) -> str:
        """The command the image runs, as ToolHive derives it: the PyPI name, the npm package (through npx), or
        the Go module's last path element that is not a major-version suffix (`.../server/v2` runs `server`)."""
        if self.scheme != "go":
            return self.name
        elements = self.name.split("/")
        if len(elements) > 2 and _GO_MAJOR.fullmatch(elements[-1]):
            return elements[-2]
        return elements[-1]

    @property
    def slug(self) -> str:
        """The name folded into Docker's repository alphabet (for the built image's name)."""
        folded = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        return folded[:80] or "package"


def is_package_image(image: str | None) -> bool:
    """A `scheme://` image reference, whether or not it parses (a bad one must reach parse_package_ref's error)."""
    return bool(image) and "://" in str(image)


def parse_package_ref(text: str) -> PackageRef:
    """`uvx://NAME[@VERSION]` and the like -> PackageRef; PackageRefError names the offending part."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SCHEMES:
        raise PackageRefError(f"unknown image scheme {scheme!r}: use uvx://, npx://, go:// or a plain image reference")
    if rest != rest.strip() or not rest:
        raise PackageRefError(f"{scheme}:// needs a package name (no spaces around it)")
    name, version = _split_version(rest)
    if len(name) > MAX_NAME:
        raise PackageRefError(f"package name is longer than {MAX_NAME} characters")
    if version is not None and (not version or len(version) > MAX_VERSION):
        raise PackageRefError(f"the version after @ must be 1 to {MAX_VERSION} characters")
    checked: PackageRef = {"uvx": _pypi, "npx": _npm, "go": _go}[scheme](name, version)
    return checked


def _split_version(rest: str) -> tuple[str, str | None]:
    """`name@version`; a leading `@` is an npm scope, not a version."""
    at = rest.rfind("@")
    if at <= 0:
        return rest, None
    return rest[:at], rest[at + 1 :]


def _pypi(name: str, version: str | None) -> PackageRef:
    if not _PYPI_NAME.fullmatch(name):
        raise PackageRefError(
            f"{name!r} is not a PyPI package name (PEP 508: letters, digits, '.', '_' and '-', starting and ending "
            "with a letter or digit; extras and URLs are not accepted)"
        )
    if version is None:
        return PackageRef("uvx", name, None)
    if not re.fullmatch(r"[0-9A-Za-z.+!_-]+", version):
        raise PackageRefError(f"{version!r} is not a PEP 440 version (pin one exact version, such as 1.2.0)")
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise PackageRefError(f"{version!r} is not a PEP 440 version (pin one exact version, such as 1.2.0)") from None
    return PackageRef("uvx", name, str(parsed))  # normalised: 1.0.0-rc1 and 1.0.0rc1 are the same release


def _npm(name: str, version: str | None) -> PackageRef:
    if not _NPM_NAME.fullmatch(name):
        raise PackageRefError(
            f"{name!r} is not an npm package name (lower case letters, digits and '-._~', optionally "
            "@scope/ before it; no leading '.' or '_')"
        )
    if version is None or _SEMVER.fullmatch(version) or (_NPM_TAG.fullmatch(version) and "." not in version):
        return PackageRef("npx", name, version)
    raise PackageRefError(
        f"{version!r} is neither an exact semver version (1.2.3) nor a dist-tag (latest, next): ranges are not "
        "accepted, the image must name what it installs"
    )


def _go(name: str, version: str | None) -> PackageRef:
    elements = name.split("/")
    if len(elements) < 2 or not _GO_HOST.fullmatch(elements[0]):
        raise PackageRefError(
            f"{name!r} is not a Go module path (a host with a dot, such as github.com, then path elements)"
        )
    bad = next((e for e in elements[1:] if not _GO_ELEMENT.fullmatch(e) or ".." in e), None)
    if bad is not None:
        raise PackageRefError(f"{bad!r} is not a Go module path element (letters, digits and '-._~')")
    if version is None or version == UNPINNED:
        return PackageRef("go", name, None)
    if not _GO_VERSION.fullmatch(version):
        raise PackageRefError(f"{version!r} is not a Go module version (v1.2.3, or latest)")
    return PackageRef("go", name, version)
