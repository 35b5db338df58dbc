"""How the consumers read a mount, written independently of toolhive_apply/manifest/mounts.py, for the tests.

`docker_reading` follows moby's Linux `ParseMountRaw` + `parseMountSpec` (volume/mounts/linux_parser.go) for a
HostConfig.Binds entry; tests/integration/test_mount_parsing.py checks it against the real engine, so the unit
fuzzers can use it in place of Docker. `toolhive_reading` follows toolhive-core `MountDeclaration.Parse` for a
permission-profile entry (Linux paths only). `exposes_host` is a deliberately small, separately written list of
host paths that must never reach a container unacknowledged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_LOCAL_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_RW = {"rw", "ro"}
_LABEL = {"z", "Z"}
_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_COPY = {"nocopy"}
_CONSISTENCY = {"consistent", "cached", "delegated"}


class RefusedError(Exception):
    """The consumer would refuse this declaration."""


@dataclass(frozen=True)
class Reading:
    kind: str  # "bind" or "volume"
    source: str  # bind: the cleaned host path as given (not symlink-resolved); volume: the name
    target: str
    rw: bool


def go_clean(path: str) -> str:
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    joined = "/".join(parts)
    return ("/" + joined) if rooted else (joined or ".")


def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for option in mode.split(","):
        for index, options in enumerate((_RW, _LABEL, _PROPAGATION, _COPY, _CONSISTENCY)):
            if option in options:
                counts[index] += 1
                break
        else:
            return False
    return all(c <= 1 for c in counts)


def docker_reading(raw: str) -> Reading:
    """What dockerd makes of one Binds entry, or RefusedError."""
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise RefusedError("empty source")
    mode = ""
    if len(arr) == 1:
        source, target = "", arr[0]
    elif len(arr) == 2:
        if _valid_mode(arr[1]):
            raise RefusedError("destination + mode")
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise RefusedError("too many colons")
    if not _valid_mode(mode):
        raise RefusedError(f"invalid mode {mode!r}")
    if not target or go_clean(target.replace("\\", "/")) == "/":
        raise RefusedError("target is root or empty")
    if not target.replace("\\", "/").startswith("/"):
        raise RefusedError("target not absolute")
    kind = "bind" if source.startswith("/") else "volume"
    options = mode.split(",")
    if kind == "bind" and "nocopy" in options:
        raise RefusedError("nocopy on a bind")
    rw = "ro" not in options
    if kind == "volume" and not source and not rw:
        raise RefusedError("read-only anonymous volume")
    if kind == "volume" and source and not _LOCAL_VOLUME_NAME.match(source):
        raise RefusedError("not a local volume name")  # the local driver refuses it when creating the volume
    return Reading(kind, go_clean(source) if kind == "bind" else source, go_clean(target), rw)


_WINDOWS = re.compile(r"^[a-zA-Z]:[/\\]")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*$")
_INJECTION = re.compile(r"[$&;|]|\$\(|`")


def toolhive_reading(declaration: str) -> tuple[str, str] | None:
    """(source, target) as ToolHive parses a profile entry; None for a resource URI (its Docker runtime skips
    those); RefusedError for what it rejects."""
    if "://" in declaration:
        scheme, _, rest = declaration.partition("://")
        if _SCHEME.match(scheme):
            for index in [i for i, c in enumerate(rest) if c == ":"][::-1]:
                container = rest[index + 1 :]
                valid = container.startswith("/") or (container and ":" not in container)
                if valid and rest[:index]:
                    return None
    if _INJECTION.search(declaration) or "\x00" in declaration:
        raise RefusedError("injection")
    colons = declaration.count(":")
    if colons == 0:
        cleaned = go_clean(declaration) if declaration else "."
        return cleaned, cleaned
    if _WINDOWS.match(declaration):
        raise RefusedError("windows path")
    if colons > 1:
        raise RefusedError("multiple colons")
    host, _, container = declaration.partition(":")
    if not host or not container:
        raise RefusedError("empty side")
    return go_clean(host), go_clean(container)


def host_path(source: str, base_dir: Path) -> str:
    """Where a bind of `source` lands: relative to base_dir, Go-cleaned, then every symlink followed."""
    joined = source if source.startswith("/") else f"{base_dir}/{source}"
    return os.path.realpath(go_clean(joined))


_SOCKETS = {os.path.realpath(p) for p in ("/var/run/docker.sock", "/run/docker.sock")}
_TREES = ("/proc", "/sys", "/dev", os.path.realpath("/var/run"), "/var/lib/docker")


def exposes_host(path: str, rw: bool) -> bool:
    """True for a host path that must never be mounted without an acknowledgement."""
    if path in _SOCKETS or path == "/":
        return True
    if any(path == tree or path.startswith(tree + "/") for tree in _TREES):
        return True
    return rw and (path == "/etc" or path.startswith("/etc/"))
