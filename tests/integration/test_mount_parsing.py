"""Mounts against the real engine: the Docker reading the unit fuzzers rely on is the engine's, a spelling that once
skipped the host-path check is refused before anything is created, and an accepted bind mounts exactly the host
path that was judged.

Containers in the first test are created, inspected and removed, never started.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.conftest import PYTHON_IMAGE, TINY_MCP, run_cli, write_manifest
from tests.support.docker_mounts import RefusedError, docker_reading
from toolhive_apply.manifest.mounts import mount_problems, workload_mounts

pytestmark = pytest.mark.docker


def _engine_reading(api: Any, bind: str, label: str) -> tuple[str, str, str, bool] | None:
    """(type, source or volume name, destination, rw) as dockerd records the bind, or None if it refuses it."""
    try:
        created = api.create_container(
            PYTHON_IMAGE, ["true"], host_config=api.create_host_config(binds=[bind]), labels={label: "1"}
        )
    except docker.errors.APIError:
        return None
    try:
        [mount] = api.inspect_container(created["Id"])["Mounts"]
    finally:
        api.remove_container(created["Id"], force=True, v=True)
    source = mount.get("Name") if mount["Type"] == "volume" else mount["Source"]
    return (mount["Type"], str(source), mount["Destination"], bool(mount["RW"]))


def _oracle(bind: str) -> tuple[str, str, str, bool] | None:
    try:
        reading = docker_reading(bind)
    except RefusedError:
        return None
    return (reading.kind, reading.source, reading.target, reading.rw)


def test_the_docker_reading_the_fuzzers_use_is_the_engine_s(
    docker_api: Any, tmp_path: Path, test_images: dict[str, str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    volume = f"thv-mount-test-{uuid.uuid4().hex[:8]}"
    label = f"toolhive-apply.test-mounts-{uuid.uuid4().hex[:8]}"
    a = str(tmp_path / "a")
    corpus = [
        "/var/run/docker.sock://x:rw",  # what the old code handed Docker for write: ['/var/run/docker.sock://x']
        f"{a}://x",
        f"/{a}//:/x//",
        f"{tmp_path}/link/..:/x",
        f"{a}/../a/.:/x:ro",
        f"{a}:/x:",
        f"{a}:/x:ro,rw",
        f"{a}:/x:RO",
        f"{a}:/x:rw,Z",
        f"{a}:/x:nocopy",
        f"{a}:/x:delegated",
        f"{a}:/x:rw,rw",
        f"{a}:/x:/y",
        f"{a}:/x:ro:rw",
        f"{a}:/",
        f"{a}:/x/..",
        f"{a}:rel",
        f"{a}:ro",
        "/x:ro",
        f"{volume}:/x:ro",
        "m:/x",
        "./rel:/x",
        "~/x:/y",
    ]
    try:
        for bind in corpus:
            assert _engine_reading(docker_api, bind, label) == _oracle(bind), bind
    finally:
        for container in docker_api.containers(all=True, filters={"label": [label]}):
            docker_api.remove_container(container["Id"], force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            docker_api.remove_volume(volume)
    assert _oracle("/var/run/docker.sock://x:rw") == ("bind", "/var/run/docker.sock", "/x", True)

    # and every bind the checks accept reads back, in the engine, as the Mount that was judged
    profile = {"read": [f"{tmp_path}/link/..//a/"], "write": [f"/{a}://rw"]}
    volumes = ("./link/../a:/v/:ro", "./a/.:/w:")
    assert list(mount_problems(tmp_path, profile, volumes, ())) == []
    for mount in workload_mounts(tmp_path, profile, volumes):
        assert _engine_reading(docker_api, mount.bind, label) == (
            "bind",
            mount.source,
            mount.target,
            not mount.read_only,
        )


def _refused_socket_workloads() -> list[dict[str, Any]]:
    return [
        {
            "name": "via-volume",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "volumes": ["/var/run/docker.sock://x"],
        },
        {
            "name": "via-profile",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "permission_profile": {"write": ["/var/run/docker.sock://x"], "read": ["//:/host"]},
        },
    ]


def test_a_spelling_that_skipped_the_check_is_refused_before_anything_is_created(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    path = write_manifest(tmp_path, stack, _refused_socket_workloads())
    result = run_cli("apply", str(path), "--yes")
    assert result.code == 1, result
    assert f"{path}:" in result.stderr
    assert "workloads[0].volumes[0]: mounting the Docker socket" in result.stderr
    assert "workloads[1].permission_profile.write[0]: mounting the Docker socket" in result.stderr
    assert "workloads[1].permission_profile.read[0]: mounting / would expose the host" in result.stderr
    assert docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}) == []


def test_an_accepted_bind_mounts_exactly_the_host_path_that_was_judged(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "hello.txt").write_text("read me\n")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    workloads = [
        {
            "name": "mounted",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "volumes": ["./data//sub/..//:/data//:ro"],
            "permission_profile": {"write": ["./link:/out/"]},
        }
    ]
    path = write_manifest(tmp_path, stack, workloads)
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied

    planned = json.loads(run_cli("export", "workload", "mounted", "--stack", stack).stdout)["volumes"]
    assert planned == [f"{tmp_path / 'data'}:/data:ro", f"{tmp_path / 'real'}:/out:rw"]
    [server] = docker_api.containers(
        all=True, filters={"name": ["^/mounted$"], "label": [f"toolhive-apply.stack={stack}"]}
    )
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in docker_api.inspect_container(server["Id"])["Mounts"]}
    assert mounts == {"/data": (str(tmp_path / "data"), False), "/out": (str(tmp_path / "real"), True)}

    script = (
        "import pathlib; print(pathlib.Path('/data/hello.txt').read_text()); pathlib.Path('/out/x').write_text('w')"
    )
    created = docker_api.exec_create(server["Id"], ["python3.11", "-c", script])
    output = docker_api.exec_start(created["Id"]).decode()
    assert docker_api.exec_inspect(created["Id"])["ExitCode"] == 0, output
    assert "read me" in output
    assert (tmp_path / "real" / "x").read_text() == "w"
