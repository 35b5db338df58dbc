"""The version an unpinned package resolves to in an offline source, found on the host at plan time.

Why at plan time: an offline directory is a complete, local index, so the host can answer "what would `latest` be"
exactly as the package manager inside the build will, without a network. The answer becomes the build's `resolved`
version: the build installs exactly it (a saved plan builds what it showed), the image is labelled with it, and
when the directory later offers a newer release the spec's `package.resolved` changes, so the plan reads
`package.resolved: "1.2.0" -> "1.3.0"` on a planned replace.

The rules follow each package manager's choice of "newest" in such a source:
- pip `--no-index --find-links DIR`: the highest final release (pre-releases only when nothing else) among the
  wheels and sdists of the (normalised) name at the top of DIR;
- npm `--offline --cache DIR/npm-cache`: the packument's dist-tag (`latest` unless the ref names another tag);
- go with `GOPROXY=file://DIR/goproxy`: the highest release in `MODULE/@v/list` (pre-releases only when nothing
  else), the module path case-escaped as the proxy protocol spells it.
None when the source does not hold the package (the build then fails, clearly, with the package manager's words).
Wheel tags are not judged here: a newest wheel the builder's Python cannot install fails its build, naming it.
Against a network index nothing is resolved here: the host does not query indexes on its own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from toolhive_apply.manifest.package_refs import PackageRef

NPM_CACHE = "npm-cache"
GO_PROXY = "goproxy"
_NPM_REGISTRY_KEY = re.compile(r"make-fetch-happen:request-cache:https?://[^ ]+?/(@[^/]+(?:/|%2[fF])[^/]+|[^/@]+)$")


def offline_version(ref: PackageRef, offline_dir: Path) -> str | None:
    """The version `ref` (unpinned, or an npm dist-tag) resolves to in `offline_dir`; None when it holds none."""
    if ref.scheme == "uvx":
        return _newest(_pypi_versions(ref.name, offline_dir))
    if ref.scheme == "go":
        return _go_latest(ref.name, offline_dir / GO_PROXY)
    return _npm_tag(ref.name, ref.version or "latest", offline_dir / NPM_CACHE)


def _newest(versions: list[Version]) -> str | None:
    finals = [v for v in versions if not v.is_prerelease]
    chosen = max(finals or versions, default=None)
    return str(chosen) if chosen is not None else None


def _pypi_versions(name: str, directory: Path) -> list[Version]:
    wanted = canonicalize_name(name)
    found: list[Version] = []
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        with contextlib.suppress(InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            if path.name.endswith(".whl"):
                dist, version, _build, _tags = parse_wheel_filename(path.name)
            elif path.name.endswith((".tar.gz", ".zip")):
                dist, version = parse_sdist_filename(path.name)
            else:
                continue
            if dist == wanted:
                found.append(version)
    return found


def _go_escape(module: str) -> str:
    """The module proxy protocol's case encoding: an upper-case letter is `!` and its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), module)


def _go_latest(module: str, proxy: Path) -> str | None:
    listing = proxy / _go_escape(module) / "@v" / "list"
    if not listing.is_file():
        return None
    versions = []
    for line in listing.read_text(errors="replace").split():
        with contextlib.suppress(InvalidVersion):
            versions.append((Version(line.removeprefix("v").split("+", 1)[0]), line))
    finals = [pair for pair in versions if not pair[0].is_prerelease]
    chosen = max(finals or versions, default=None, key=lambda pair: pair[0])
    return chosen[1] if chosen else None


def _npm_tag(name: str, tag: str, cache: Path) -> str | None:
    """dist-tags[tag] of `name`'s packument in an npm cache (cacache: index-v5 entries point at content-v2)."""
    packument = _npm_packument(name, cache)
    if packument is None:
        return None
    version = (packument.get("dist-tags") or {}).get(tag)
    return str(version) if isinstance(version, str) else None


def _npm_packument(name: str, cache: Path) -> dict[str, Any] | None:
    index = cache / "_cacache" / "index-v5"
    if not index.is_dir():
        return None
    newest: tuple[float, str] | None = None
    for bucket in index.rglob("*"):
        if not bucket.is_file():
            continue
        for line in bucket.read_text(errors="replace").splitlines():
            _hash, _sep, text = line.partition("\t")
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                entry = json.loads(text)
                match = _NPM_REGISTRY_KEY.match(str(entry.get("key")))
                if not match or match.group(1).replace("%2f", "/").replace("%2F", "/") != name:
                    continue
                if entry.get("integrity") and (newest is None or float(entry.get("time", 0)) >= newest[0]):
                    newest = (float(entry.get("time", 0)), str(entry["integrity"]))
    return _cacache_json(cache, newest[1]) if newest else None


def _cacache_json(cache: Path, integrity: str) -> dict[str, Any] | None:
    """The JSON content stored under an SRI `integrity` (`sha512-BASE64`) in cacache's content-v2 tree."""
    algorithm, _sep, encoded = integrity.split()[0].partition("-")
    if not re.fullmatch(r"sha(1|256|384|512)", algorithm):
        return None
    try:
        digest = base64.b64decode(encoded, validate=True).hex()
        content = cache / "_cacache" / "content-v2" / algorithm / digest[:2] / digest[2:4] / digest[4:]
        data = json.loads(content.read_bytes())
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None
