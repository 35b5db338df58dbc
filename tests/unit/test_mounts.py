"""Mount declarations: one parse, as Docker (volumes) and ToolHive (profile read/write) read them, then judged by
the host path Docker will mount. The Docker reading used here (tests/support/docker_mounts.py) is checked against
the real engine in tests/integration/test_mount_parsing.py.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.docker_mounts import (
    Reading,
    RefusedError,
    docker_reading,
    exposes_host,
    go_clean,
    host_path,
    toolhive_reading,
)
from toolhive_apply.manifest.mounts import (
    Mount,
    MountError,
    MountKind,
    allow_host_path_problems,
    mount_problems,
    parse_profile_entry,
    parse_volume,
    workload_mounts,
)


def _scratch() -> Path:
    """A manifest directory with innocent data and symlinks that lead out of it."""
    base = Path(tempfile.mkdtemp(prefix="thv-mounts-")).resolve()
    (base / "data" / "sub").mkdir(parents=True)
    (base / "out").mkdir()
    (base / "sock").symlink_to("/var/run/docker.sock")
    (base / "up").symlink_to("/")
    (base / "proc").symlink_to("/proc")
    (base / "inner").symlink_to(base / "data")
    (base / "loop").symlink_to(base / "loop")
    (base / "dangling").symlink_to("/run/nothing-here")
    return base


BASE = _scratch()


def _problems(volumes: tuple[str, ...] = (), read: tuple[str, ...] = (), write: tuple[str, ...] = ()) -> list[str]:
    profile = {"read": list(read), "write": list(write)}
    return [message for _, message in mount_problems(BASE, profile, volumes, ())]


# -- the spellings that used to skip the check ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "spelling",
    [
        "/var/run/docker.sock://x",  # Docker: bind of the socket at //x (= /x)
        "/var/run/docker.sock://x:rw",
        "//var/run/docker.sock:/x",
        "/var/run//docker.sock/:/x",
        "/tmp/../var/run/docker.sock:/x",
        "/run/docker.sock:/x",
        "./sock:/x",
        "./up/var/run/docker.sock:/x",
        "./data/../sock:/x",
        f"{BASE}/inner/../sock:/x",
    ],
)
def test_every_spelling_of_the_docker_socket_is_refused_in_every_field(spelling: str) -> None:
    assert any("Docker socket" in p for p in _problems(volumes=(spelling,))), spelling
    entry = spelling.rsplit(":rw", 1)[0]
    assert any("Docker socket" in p for p in _problems(write=(entry,))), entry
    assert any("Docker socket" in p for p in _problems(read=(entry,))), entry


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ("/:/host", "mounting / would expose the host"),
        ("//:/host", "mounting / would expose the host"),
        ("./up:/host", "mounting / would expose the host"),
        ("./up/:/host:ro", "mounting / would expose the host"),
        ("/var/lib:/x:ro", "it contains /var/lib/"),  # a parent of Docker's data hands it over too
        ("/var:/x:ro", "would expose the host"),
        ("./proc:/p:ro", "mounting /proc would expose the host"),
        ("/sys/fs/../..:/x:ro", "mounting / would expose the host"),
        ("/etc/ssl:/ssl", "writable mount of /etc/ssl"),
        ("/etc/ssl:/ssl:", "writable mount of /etc/ssl"),  # an empty mode is read-write to Docker
        ("/etc/ssl:/ssl:rw,rprivate", "not supported"),
        ("/etc/ssl:/ssl:z", "not supported"),
        ("/tmp:/x:ro,rw", "Docker would refuse mode"),
        ("/tmp:/x:RO", "Docker would refuse mode"),
        ("/tmp:/x:nocopy,nocopy", "Docker would refuse mode"),
        ("/tmp:/x:/y", "Docker would refuse mode"),
        ("/tmp:/x:ro:rw", "more than two"),
        ("/tmp:ro", "no container path"),
        ("/tmp", "anonymous volume"),
        ("/tmp:/", "must not be /"),
        ("/tmp:/x/..", "must not be /"),
        ("/tmp:x", "must be absolute"),
        ("data:/x", "named Docker volume"),
        ("~/data:/x", "`~` is not expanded"),
        ("data/sub:/x", "neither an absolute path"),
        ("volume://name:/x", "resource URI"),
        ("./loop:/x", "does not exist"),
        ("./dangling:/x:ro", "mounting /run/nothing-here would expose the host"),
        ("./missing:/x", "does not exist"),
        ("/tmp/$(id):/x", "shell metacharacters"),
        ("/tmp\\x:/x", "backslash"),
        ("/tmp\n:/x", "control characters"),
    ],
)
def test_volumes_are_read_as_docker_reads_them(volume: str, expected: str) -> None:
    problems = _problems(volumes=(volume,))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("file:///etc/shadow:/x", "resource URI"),
        ("volume://data:/data", "resource URI"),
        ("/tmp:/x:ro", "more than one ':'"),
        ("/etc/ssl:/ssl:rw", "more than one ':'"),
        ("./data", "must be absolute"),
        ("data:/x", "named Docker volume"),
        ("/etc", "mounting /etc would expose the host"),
        ("/etc/ssl/certs", "writable mount of /etc/ssl/certs"),
    ],
)
def test_profile_entries_are_read_as_toolhive_reads_them(entry: str, expected: str) -> None:
    problems = _problems(write=(entry,))
    assert any(expected in p for p in problems), problems


def test_what_is_allowed_parses_to_the_mount_that_is_applied() -> None:
    mounts = workload_mounts(
        BASE,
        {"read": ["./data//sub/..//:/data//", "/etc/ssl/certs"], "write": ["./out:/out/"]},
        ("./inner/sub:/sub:ro", "./data:/data"),
    )
    assert mounts == [
        Mount(str(BASE / "data"), "/data", False, MountKind.BIND, ()),  # write wins over read (ToolHive)
        Mount(os.path.realpath("/etc/ssl/certs"), "/etc/ssl/certs", True),
        Mount(str(BASE / "out"), "/out", False),
        Mount(str(BASE / "data" / "sub"), "/sub", True, MountKind.BIND, ("ro",)),  # the symlink, followed
    ]
    assert [m.bind for m in mounts][2] == f"{BASE}/out:/out:rw"
    assert _problems(read=("./data//sub/..//:/data//",), write=("./out:/out/",), volumes=("./inner/sub:/sub:ro",)) == []


def test_one_container_path_from_two_sources_is_ambiguous() -> None:
    problems = _problems(read=("./data:/x",), volumes=("./out:/x/",))
    assert problems == [f"container path /x is already mounted from {BASE / 'data'} (permission_profile.read[0])"]
    assert _problems(read=("./data:/x",), write=("./inner:/x",)) == []  # the same directory: write wins


def test_an_acknowledged_host_path_is_accepted_however_it_is_spelled() -> None:
    profile = {"write": ["//var/run/docker.sock:/s", "./proc/self:/p"]}
    assert [m for _, m in mount_problems(BASE, profile, (), ("/run/docker.sock", "/proc"))] == []
    assert len(list(mount_problems(BASE, profile, (), ("/run/docker",)))) == 2
    assert list(mount_problems(BASE, None, ("data:/x",), ("./data",)))  # a named volume is no host path
    problems = dict(allow_host_path_problems(BASE, ("~/x", "data", "./data", "/x", "./up", "./up/etc", "/var/run")))
    assert set(problems) == {("allow_host_paths", i) for i in (0, 1, 4, 5)}  # /var/run: not beside the manifest
    assert f"passes through the symlink {BASE}/up beside the manifest" in problems[("allow_host_paths", 4)]
    assert list(mount_problems(BASE, None, ("/etc/ssl:/s",), ("./up/etc",)))  # and it acknowledges nothing


def test_a_unix_socket_anywhere_is_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        assert any("the socket" in m for _, m in mount_problems(tmp_path, None, (f"{path}:/s:ro",), ()))
    finally:
        server.close()


# -- properties ----------------------------------------------------------------------------------------------------
SOURCES = [
    "/var/run/docker.sock",
    "//var/run/docker.sock",
    "/run/docker.sock/",
    "/",
    "//",
    "/.",
    "/proc",
    "/proc/self/..",
    "/sys",
    "/etc",
    "/etc/ssl",
    "/tmp",
    "/var/lib",
    "/var/lib/docker/volumes",
    ".",
    "..",
    "./sock",
    "./up",
    "./up/etc/ssl",
    "./up/tmp",
    "./proc",
    "./data",
    "./data/",
    "./data/../sock",
    "./inner/..",
    "./inner//sub",
    "./loop",
    "./dangling",
    "./missing",
    "data",
    "~",
    "volume",
    "file",
    "",
]
TARGETS = ["/x", "//x", "/x/", "/x/../y", "/", "x", "//", "/x//y", "", "/a/b/..", "/x://y", ".."]
MODES = ["", "ro", "rw", "ro,rw", "z", "Z", "rprivate", "nocopy", "delegated", "ro,", "RO", "shared", "ro,z"]
PIECES = st.sampled_from([*SOURCES, *TARGETS, *MODES, ":", "://", "/", ".", ",", "~"])

declaration = st.one_of(
    st.builds(lambda s, t: f"{s}:{t}", st.sampled_from(SOURCES), st.sampled_from(TARGETS)),
    st.builds(
        lambda s, t, m: f"{s}:{t}:{m}", st.sampled_from(SOURCES), st.sampled_from(TARGETS), st.sampled_from(MODES)
    ),
    st.sampled_from(SOURCES),
    st.lists(PIECES, max_size=6).map("".join),
    st.text(alphabet="/.:~,rowZz-sock", max_size=16),
)


def _cli_reading(raw: str) -> Reading:
    """`docker run -v` (and compose): a source starting with `.` is made absolute first, then dockerd reads it."""
    return docker_reading(f"{BASE}/{raw}" if raw.startswith(".") else raw)


def _docker_exposes(raw: str) -> bool:
    try:
        reading = _cli_reading(raw)
    except RefusedError:
        return False
    return reading.kind == "bind" and exposes_host(host_path(reading.source, BASE), reading.rw)


def _toolhive_exposes(raw: str, writable: bool) -> bool:
    try:
        reading = toolhive_reading(raw)
    except RefusedError:
        return False
    return reading is not None and exposes_host(host_path(reading[0], BASE), writable)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declaration, st.sampled_from(["volumes", "read", "write"]))
def test_no_declaration_that_mounts_the_host_gets_through(raw: str, field: str) -> None:
    """Whatever the spelling: if the consumer's reading mounts a forbidden host path, the checks refuse it; if the
    checks accept it, Docker reads the rendered bind as exactly the Mount that was judged."""
    volumes = (raw,) if field == "volumes" else ()
    profile = {field: [raw]} if field != "volumes" else None
    problems = list(mount_problems(BASE, profile, volumes, ()))
    exposed = _docker_exposes(raw) if field == "volumes" else _toolhive_exposes(raw, field == "write")
    if exposed:
        assert problems, raw
    if problems:
        return
    [mount] = workload_mounts(BASE, profile, volumes)
    applied = docker_reading(mount.bind)
    assert (applied.kind, applied.source, applied.target, applied.rw) == (
        "bind",
        mount.source,
        mount.target,
        not mount.read_only,
    )
    assert not exposes_host(mount.source, not mount.read_only)
    # and the Mount is the consumer's own reading of the declaration, resolved
    if field == "volumes":
        declared = _cli_reading(raw)
        assert (host_path(declared.source, BASE), declared.target, declared.rw) == (
            mount.source,
            mount.target,
            not mount.read_only,
        )
    else:
        reading = toolhive_reading(raw)
        assert reading is not None
        assert (host_path(reading[0], BASE), go_clean(reading[1])) == (mount.source, mount.target)


@given(st.text(max_size=40))
def test_any_text_parses_to_a_mount_or_a_mount_error(raw: str) -> None:
    for parse in (lambda: parse_volume(raw, BASE), lambda: parse_profile_entry(raw, True, BASE)):
        try:
            mount = parse()
        except MountError:
            continue
        assert mount.target.startswith("/") and ":" not in mount.bind.split(":", 1)[1].rsplit(":", 1)[0]


@pytest.mark.parametrize("inside", [".ssh", ".docker", ".aws", ".vault-token", ".local/share/toolhive"])
def test_credentials_in_a_home_directory_are_refused_and_so_is_the_directory_holding_them(
    tmp_path: Path, inside: str
) -> None:
    home = tmp_path / "home"
    (home / "project").mkdir(parents=True)
    (home / inside).parent.mkdir(parents=True, exist_ok=True)
    (home / inside).mkdir()
    for volume in (f"{home}:/h:ro", f"{home}/{inside}:/c:ro", f"./home/project/../{inside}/.:/c:ro"):
        [(_, message)] = mount_problems(tmp_path, None, (volume,), ())
        assert f"the credentials in {home}/{inside}" in message, (volume, message)
    assert list(mount_problems(tmp_path, None, (f"{home}/project:/p:ro",), ())) == []


@pytest.mark.parametrize("path", ["/root/.ssh", "/etc/shadow", "/etc/ssh", "/etc/sudoers.d", "/root"])
def test_host_secrets_are_refused_even_read_only(path: str) -> None:
    assert any("would expose the host" in p for p in _problems(volumes=(f"{path}:/x:ro",)))
