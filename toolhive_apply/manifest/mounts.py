"""Mount declarations parsed once, as their consumers read them, into the Mount that is both checked and applied.

`volumes` entries are read with Docker's own grammar (moby `volume/mounts/linux_parser.go`, `ParseMountRaw`):
`src:dst[:opts]`, split on every `:`; a source that is absolute (or, as the Docker CLI and compose read it,
starts with `.`) is a bind, anything else a named volume. Permission-profile `read`/`write` entries are read with
ToolHive's grammar (toolhive-core `permissions.MountDeclaration.Parse`): `path`, `host:container`, or a
`scheme://resource:container` resource URI, with the mode given by the list. Either way the result is one Mount
whose host path is resolved as Docker will resolve it; `workload_spec` renders that same Mount for Docker, so what
is judged here is what the container gets. Whatever would be read two ways, or skipped, is an error instead.

A bind mount of a path that does not exist makes Docker create an empty root-owned directory in its place (a typo
then silently mounts nothing), and some places hand the container the host itself (host_paths.py). Both are errors
unless the workload lists the path, or a parent of it, under `allow_host_paths`: an explicit, reviewable
acknowledgement, like `allow_privileged`.

Named volumes are refused, not passed on: ToolHive reads the same `data:/x` as a directory beside where it runs,
so the two readings differ, and a volume of that name may already exist with local-driver bind options
(`docker volume create -o o=bind -o device=/ ...`) that hand over any host path, which no manifest check can see.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from toolhive_apply.manifest.host_paths import (
    docker_clean,
    host_path_problem,
    is_acknowledged,
    resolve_host_path,
    symlink_within,
)
from toolhive_apply.manifest.loader import FieldPath, format_path

SHELL_META: Final = re.compile(r"[$&;|`]|\$\(")  # ToolHive's own refusal (permissions.validatePath)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*://")  # ToolHive's resource URI scheme
VOLUME_NAME: Final = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # moby's local volume names

# Docker's mode options by class (linuxValidMountMode): at most one of each class
_MODE_CLASSES: Final = (
    frozenset({"rw", "ro"}),
    frozenset({"z", "Z"}),
    frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"}),
    frozenset({"nocopy"}),
    frozenset({"consistent", "cached", "delegated"}),
)
PASSED_OPTIONS: Final = frozenset({"ro", "rw"})  # what toolhive-apply hands to Docker (ToolHive has only `:ro`)


class MountError(ValueError):
    """A declaration Docker or ToolHive would refuse, or that would be read differently than it is written."""


class MountKind(StrEnum):
    BIND = "bind"
    VOLUME = "volume"


class Grammar(StrEnum):
    """Which consumer's reading a declaration gets, by the field it was written in."""

    VOLUME = "volumes"
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount as Docker will make it.

    For a bind, `source` is the host path Docker mounts: absolute, cleaned, symlinks followed. For a volume it is
    the volume's name. `target` is the container path as Docker cleans it. `options` are the Docker mode options
    as written (so the checks can refuse any that would not be passed on).
    """

    source: str
    target: str
    read_only: bool
    kind: MountKind = MountKind.BIND
    options: tuple[str, ...] = ()

    @property
    def bind(self) -> str:
        """The HostConfig.Binds entry; Docker reads it back as exactly this Mount (tests check with the engine)."""
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


@dataclass(frozen=True, slots=True)
class Declaration:
    """A mount as written, with the field it came from (relative to the workload) and so its grammar."""

    path: FieldPath
    text: str
    grammar: Grammar


def declarations(profile: Mapping[str, Any] | None, volumes: Sequence[str]) -> list[Declaration]:
    """Every mount a workload declares: profile read, profile write, then volumes (ToolHive's order)."""
    found: list[Declaration] = []
    if isinstance(profile, Mapping):
        for key, grammar in (("read", Grammar.READ), ("write", Grammar.WRITE)):
            entries = profile.get(key) or ()
            if isinstance(entries, (list, tuple)):
                found += [Declaration(("permission_profile", key, i), str(e), grammar) for i, e in enumerate(entries)]
    found += [Declaration(("volumes", i), str(v), Grammar.VOLUME) for i, v in enumerate(volumes)]
    return found


def _check_characters(text: str) -> None:
    if SHELL_META.search(text):
        raise MountError("mount contains shell metacharacters")
    if _CONTROL.search(text):
        raise MountError("mount contains control characters")
    if "\\" in text:
        raise MountError("mount contains a backslash (Docker would read it as a path separator in places)")


def _mode_options(mode: str) -> tuple[str, ...]:
    """Docker's reading of a mode string: empty, or comma-separated options, at most one of each class."""
    if mode == "":
        return ()
    options = tuple(mode.split(","))
    for option in options:
        if not any(option in options_class for options_class in _MODE_CLASSES):
            raise MountError(f"Docker would refuse mode {mode!r}: {option!r} is not a mount option")
    for options_class in _MODE_CLASSES:
        if sum(option in options_class for option in options) > 1:
            raise MountError(
                f"Docker would refuse mode {mode!r}: it gives {' and '.join(sorted(options_class & set(options)))}"
            )
    return options


def _target(target: str) -> str:
    if not target.startswith("/"):
        raise MountError(f"container path {target!r} must be absolute")
    cleaned = docker_clean(target)
    if cleaned == "/":
        raise MountError("the container path must not be / (Docker refuses it)")
    return cleaned


def _source(source: str, base_dir: Path) -> tuple[str, MountKind]:
    """A bind's resolved host path, or a volume's name; what neither reading makes clean is an error."""
    if source.startswith(("/", ".")):
        return resolve_host_path(source, base_dir), MountKind.BIND
    if source.startswith("~"):
        raise MountError(
            f"{source!r}: `~` is not expanded (Docker and ToolHive would both take it literally); "
            "write the absolute path, or ./path for one beside the manifest"
        )
    if VOLUME_NAME.match(source):
        return source, MountKind.VOLUME
    raise MountError(
        f"{source!r} is neither an absolute path, nor a ./relative path, nor a name Docker accepts for a volume"
    )


def parse_volume(text: str, base_dir: Path) -> Mount:
    """A `volumes` entry, as Docker reads `-v` / HostConfig.Binds (ParseMountRaw, Linux)."""
    _check_characters(text)
    if _SCHEME.match(text):
        raise MountError(_RESOURCE_URI)
    parts = text.split(":", 3)
    if parts[0] == "":
        raise MountError("the host side is empty")
    if len(parts) == 1:
        raise MountError(
            "a lone path is an anonymous volume to Docker (and a bind of the same path to ToolHive): "
            "write host-path:container-path"
        )
    if len(parts) == 4:
        raise MountError("more than two ':': expected host-path:container-path[:options]")
    if len(parts) == 2 and _is_mode(parts[1]):
        raise MountError(f"no container path: Docker would read {parts[1]!r} as the options")
    mode = parts[2] if len(parts) == 3 else ""
    options = _mode_options(mode)
    source, kind = _source(parts[0], base_dir)
    return Mount(source, _target(parts[1]), "ro" in options, kind, options)


def _is_mode(text: str) -> bool:
    try:
        _mode_options(text)
    except MountError:
        return False
    return True


_RESOURCE_URI: Final = (
    "resource URI mounts (scheme://...) are not supported: ToolHive's Docker runtime skips them, "
    "so nothing would be mounted"
)


def parse_profile_entry(text: str, writable: bool, base_dir: Path) -> Mount:
    """A permission-profile read/write entry, as ToolHive reads it (MountDeclaration.Parse)."""
    _check_characters(text)
    if _SCHEME.match(text):
        raise MountError(_RESOURCE_URI)
    colons = text.count(":")
    if colons > 1:
        raise MountError(
            "more than one ':': a profile entry is path or host-path:container-path "
            "(read-only or read-write comes from the read/write list)"
        )
    host, _, container = text.partition(":")
    if colons == 0:
        container = host
    if host == "":
        raise MountError("the host side is empty")
    source, kind = _source(host, base_dir)
    return Mount(source, _target(container), not writable, kind)


def parse_declaration(declaration: Declaration, base_dir: Path) -> Mount:
    if declaration.grammar is Grammar.VOLUME:
        return parse_volume(declaration.text, base_dir)
    return parse_profile_entry(declaration.text, declaration.grammar is Grammar.WRITE, base_dir)


def parsed_mounts(
    base_dir: Path, profile: Mapping[str, Any] | None, volumes: Sequence[str]
) -> Iterator[tuple[Declaration, Mount | MountError]]:
    """Each declaration with its Mount, or with why it has none."""
    for declaration in declarations(profile, volumes):
        try:
            yield declaration, parse_declaration(declaration, base_dir)
        except MountError as exc:
            yield declaration, exc


def workload_mounts(base_dir: Path, profile: Mapping[str, Any] | None, volumes: Sequence[str]) -> list[Mount]:
    """The mounts a container gets, one per target, sorted; a writable declaration of a target wins (ToolHive).

    Called on checked workloads only: a declaration that does not parse here was already reported, so it raises.
    """
    by_target: dict[str, Mount] = {}
    for _, mount in parsed_mounts(base_dir, profile, volumes):
        if isinstance(mount, MountError):
            raise mount
        if not mount.read_only or mount.target not in by_target:
            by_target[mount.target] = mount
    return [by_target[target] for target in sorted(by_target)]


def _policy_problem(mount: Mount, allowed: tuple[str, ...]) -> str | None:
    if mount.kind is MountKind.VOLUME:
        return (
            f"{mount.source!r} would be a named Docker volume (to ToolHive, a directory where it runs); named "
            "volumes are not supported: write ./" + mount.source + " for a directory beside the manifest, or an "
            "absolute path"
        )
    dropped = sorted(set(mount.options) - PASSED_OPTIONS)
    if dropped:
        return f"mount option {', '.join(dropped)} is not supported (only ro or rw are passed to Docker)"
    if is_acknowledged(mount.source, allowed):
        return None
    problem = host_path_problem(mount.source, not mount.read_only)
    return f"{problem} (list it under allow_host_paths to accept this)" if problem else None


def _acknowledgement_problem(entry: str, base_dir: Path) -> str | None:
    if not entry.startswith(("/", ".")):
        return f"{entry!r} is not an absolute or ./relative path"
    link = symlink_within(docker_clean(entry if entry.startswith("/") else f"{base_dir}/{entry}"), base_dir)
    if link is not None:
        return (
            f"{entry!r} passes through the symlink {link} beside the manifest, which hides what it acknowledges: "
            f"write the path it leads to ({resolve_host_path(entry, base_dir)})"
        )
    return None


def allow_host_path_problems(base_dir: Path, allow_host_paths: Sequence[str]) -> Iterator[tuple[FieldPath, str]]:
    """An acknowledgement is a host path, spelled as a mount source is (absolute or ./relative) and, since a
    reviewer reads it, not through a symlink of the manifest's own directory (`./data -> /` would acknowledge /)."""
    for index, entry in enumerate(allow_host_paths):
        problem = _acknowledgement_problem(entry, base_dir)
        if problem:
            yield ("allow_host_paths", index), problem


def mount_problems(
    base_dir: Path, profile: Mapping[str, Any] | None, volumes: Sequence[str], allow_host_paths: Sequence[str]
) -> Iterator[tuple[FieldPath, str]]:
    """(field path relative to the workload, message) for every mount that must not be made as written."""
    allowed = tuple(
        resolve_host_path(p, base_dir) for p in allow_host_paths if _acknowledgement_problem(p, base_dir) is None
    )
    by_target: dict[str, tuple[Declaration, Mount]] = {}
    for declaration, mount in parsed_mounts(base_dir, profile, volumes):
        if isinstance(mount, MountError):
            yield declaration.path, str(mount)
            continue
        problem = _policy_problem(mount, allowed)
        if problem:
            yield declaration.path, problem
            continue
        first = by_target.setdefault(mount.target, (declaration, mount))
        if first[1].source != mount.source:
            where = format_path(first[0].path)
            yield declaration.path, f"container path {mount.target} is already mounted from {first[1].source} ({where})"
