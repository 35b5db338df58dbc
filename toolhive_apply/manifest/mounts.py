"""Which host paths a workload may mount: checked for inline profiles at validate time and for registry profiles
when they are resolved, with the same rules and messages.

A bind mount of a path that does not exist makes Docker create an empty root-owned directory in its place (a typo
then silently mounts nothing), and some places hand the container the host itself (the Docker socket, /proc,
/etc as a whole, Docker's own data). Both are errors unless the workload lists the path, or a parent of it, under
`allow_host_paths`: an explicit, reviewable acknowledgement, like `allow_privileged`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

DOCKER_SOCKETS: Final = frozenset(
    {
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/var/run/containerd/containerd.sock",
    }
)
# the path itself or anything below it hands over the host
FORBIDDEN_TREES: Final = ("/proc", "/sys", "/dev", "/boot", "/var/lib/docker", "/var/lib/containerd", "/run/docker")
# the path itself only: mounting the whole of it is never what was meant
FORBIDDEN_EXACT: Final = frozenset({"/", "/etc", "/root", "/home", "/usr", "/var", "/run", "/var/run"})
# writable only with an acknowledgement: system locations
FORBIDDEN_WRITE_TREES: Final = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/var/log")
SHELL_META: Final = re.compile(r"[$&;|`]|\$\(")


def host_part(declaration: str) -> str | None:
    """The host side of `/path`, `host:container` or `host:container:ro`; None for `scheme://` resource mounts."""
    if "://" in declaration:
        return None
    return declaration.split(":", 1)[0]


def resolve_host(host: str, base_dir: Path) -> Path:
    return (base_dir / host).resolve() if not host.startswith("/") else Path(host).resolve()


def _under(path: Path, tree: str) -> bool:
    return path == Path(tree) or Path(tree) in path.parents


def _allowed(path: Path, allowed: tuple[Path, ...]) -> bool:
    return any(path == a or a in path.parents for a in allowed)


def mount_problems(
    base_dir: Path, profile: Mapping[str, Any] | None, volumes: tuple[str, ...], allow_host_paths: tuple[str, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(field path relative to the workload, message) for every mount that must not be made as written."""
    declarations: list[tuple[tuple[str | int, ...], str, bool]] = []
    for index, volume in enumerate(volumes):
        declarations.append((("volumes", index), volume, not volume.endswith(":ro")))
    if isinstance(profile, Mapping):
        for key, writable in (("read", False), ("write", True)):
            for index, entry in enumerate(profile.get(key) or ()):
                declarations.append((("permission_profile", key, index), str(entry), writable))
    allowed = tuple(resolve_host(p, base_dir) for p in allow_host_paths)
    for path, declaration, writable in declarations:
        if SHELL_META.search(declaration) or "\x00" in declaration:
            yield path, "mount contains shell metacharacters"
            continue
        host = host_part(declaration)
        if host is None or not host:
            continue
        source = resolve_host(host, base_dir)
        if _allowed(source, allowed):
            continue
        problem = _problem(source, writable)
        if problem:
            yield path, f"{problem} (list it under allow_host_paths to accept this)"


def _problem(source: Path, writable: bool) -> str | None:
    text = str(source)
    if text in DOCKER_SOCKETS:
        return "mounting the Docker socket would hand the server the whole host"
    if text in FORBIDDEN_EXACT or any(_under(source, tree) for tree in FORBIDDEN_TREES):
        return f"mounting {text} would expose the host itself"
    if writable and any(_under(source, tree) for tree in FORBIDDEN_WRITE_TREES):
        return f"a writable mount of {text} lets the server change the host's system files"
    if not source.exists():
        return f"host path {text} does not exist (Docker would create an empty directory there)"
    return None
