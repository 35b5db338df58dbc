"""Which host paths a container may be handed: the judgement of one resolved host path.

Judged on the path Docker will actually mount (lexically cleaned as Docker cleans it, then with every symlink
followed, as the kernel follows them), never on the spelling: `//var/run/docker.sock`, `/tmp/../run/docker.sock`
and a symlink to it are the same socket. Known places are compared both as spelled here and as they resolve on
this host (`/var/run` is a symlink to `/run` on most systems), so a relocated Docker data root is still caught.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Final

DOCKER_SOCKETS: Final = frozenset(
    {
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/var/run/containerd/containerd.sock",
        "/run/podman/podman.sock",
    }
)
# the path itself or anything below it hands over the host (runtime sockets: D-Bus, systemd, container engines)
FORBIDDEN_TREES: Final = (
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/var/lib/kubelet",
    "/root",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/kubernetes",
)
# where credentials live in any home directory (and toolhive's and toolhive-apply's own stores): refused, and so
# is a directory that holds one (mounting a home directory hands over its .ssh)
CREDENTIAL_NAMES: Final = frozenset(
    {".ssh", ".gnupg", ".aws", ".kube", ".docker", ".vault-token", ".netrc", ".git-credentials", ".pgpass"}
)
CREDENTIAL_DIRS: Final = (".local/share/toolhive", ".config/toolhive", ".local/state/toolhive-apply")
# the path itself only: mounting the whole of it is never what was meant
FORBIDDEN_EXACT: Final = frozenset({"/etc", "/root", "/home", "/usr", "/var"})
# writable only with an acknowledgement: system locations
FORBIDDEN_WRITE_TREES: Final = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt", "/var/log", "/root")


def docker_clean(path: str) -> str:
    """Go's `path.Clean`, which Docker applies to a bind source: lexical, so `link/..` is the link's directory.

    posixpath.normpath keeps a leading `//` (POSIX leaves it implementation-defined); Go folds it to `/`.
    """
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if path.startswith("/") else cleaned


def resolve_host_path(source: str, base_dir: Path) -> str:
    """The host path Docker mounts for `source`: relative to the manifest's directory, cleaned, symlinks followed."""
    joined = source if source.startswith("/") else f"{base_dir}/{source}"
    return os.path.realpath(docker_clean(joined))


def symlink_within(path: str, directory: Path) -> str | None:
    """The first symlink among the components of the cleaned absolute `path` that lies inside `directory`."""
    root = str(directory)
    current = ""
    for part in path.strip("/").split("/"):
        current = f"{current}/{part}"
        if _under(current, root) and current != root and Path(current).is_symlink():
            return current
    return None


@cache
def _spellings(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Each known path as written and as it resolves here (cached: these are system locations)."""
    return tuple(sorted({p for path in paths for p in (path, os.path.realpath(path))}))


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _first(path: str, trees: Iterable[str], *, contains: bool = False) -> str | None:
    """The first of `trees` that `path` lies under (or, with contains, that lies under `path`)."""
    for tree in trees:
        if _under(path, tree) or (contains and _under(tree, path)):
            return tree
    return None


def is_acknowledged(path: str, allowed: Iterable[str]) -> bool:
    """Listed under allow_host_paths, itself or through a parent."""
    return any(_under(path, entry) for entry in allowed)


def _credentials(path: str) -> str | None:
    """The credential store `path` is in, or directly holds (a home directory and its .ssh)."""
    parts = path.strip("/").split("/")
    for index, part in enumerate(parts):
        if part in CREDENTIAL_NAMES:
            return "/" + "/".join(parts[: index + 1])
    for tail in CREDENTIAL_DIRS:
        if f"/{tail}/" in f"{path}/":
            return path[: f"{path}/".index(f"/{tail}/") + len(tail) + 1]
    for name in (*sorted(CREDENTIAL_NAMES), *CREDENTIAL_DIRS):
        inside = f"{path.rstrip('/')}/{name}"
        if Path(inside).exists():
            return inside
    return None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(Path(path).stat().st_mode)
    except OSError:
        return False


def host_path_problem(path: str, writable: bool) -> str | None:
    """Why mounting the resolved host `path` (read-write when `writable`) must not happen unacknowledged."""
    sockets = _spellings(tuple(DOCKER_SOCKETS))
    if path in sockets:
        return "mounting the Docker socket would hand the server the whole host"
    if _is_socket(path):
        return f"mounting the socket {path} hands the server whatever listens on it"
    tree = _first(path, _spellings(FORBIDDEN_TREES) + sockets, contains=True)
    if tree is not None:
        inside = "" if _under(path, tree) or path == "/" else f" (it contains {tree})"
        return f"mounting {path} would expose the host itself{inside}"
    credentials = _credentials(path)
    if credentials is not None:
        return f"mounting {path} would hand the server the credentials in {credentials}"
    if path in _spellings(tuple(FORBIDDEN_EXACT)):
        return f"mounting {path} would expose the host itself"
    if writable and _first(path, _spellings(FORBIDDEN_WRITE_TREES)) is not None:
        return f"a writable mount of {path} lets the server change the host's system files"
    if not Path(path).exists():  # followed: a symlink loop resolves to itself and exists for no one
        return f"host path {path} does not exist (Docker would create an empty directory there)"
    return None
