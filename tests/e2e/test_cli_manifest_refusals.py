"""The CLI end to end for manifests that must be refused (issue #13): mounts of the host however spelled, env() of
the tool's own credentials, templates that would exhaust the machine, names that collide with our own objects.

Each is one positioned message per problem on stderr, exit 1, never a traceback, and nothing reaches Docker:
DOCKER_HOST points nowhere, so a plan that got past validation would fail differently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent.sock"}


def _manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text("apiVersion: toolhive-apply/v1\nsettings: {stack: refusals}\n" + body, encoding="utf-8")
    return path


def _refused(path: Path, *expected: str, command: str = "validate", env: dict[str, str] | None = None) -> str:
    result = run_cli(command, str(path), env={**NO_DOCKER, **(env or {})})
    assert result.code == 1, result
    assert result.stdout == ""
    for line in expected:
        assert f"{path}:{line}" in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_mount_of_the_host_is_refused_however_it_is_spelled(tmp_path: Path, command: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "sock").symlink_to("/var/run/docker.sock")
    path = _manifest(
        tmp_path,
        "workloads:\n"
        "  - name: a\n"
        "    image: x\n"
        "    volumes: ['/var/run/docker.sock://x', './sock:/s:ro', 'data:/d', './data:/d2:ro,rw']\n"
        "    permission_profile:\n"
        "      write: ['//var/run//docker.sock/://x', 'file:///etc:/etc']\n"
        "      read: ['./data/../sock:/s2', '/:/host']\n",
    )
    _refused(
        path,
        "4:5: workloads[0].volumes[0]: mounting the Docker socket would hand the server the whole host",
        "4:5: workloads[0].volumes[1]: mounting the Docker socket",
        "4:5: workloads[0].volumes[2]: 'data' would be a named Docker volume",
        "4:5: workloads[0].volumes[3]: Docker would refuse mode 'ro,rw'",
        "4:5: workloads[0].permission_profile.write[0]: mounting the Docker socket",
        "4:5: workloads[0].permission_profile.write[1]: resource URI mounts (scheme://...) are not supported",
        "4:5: workloads[0].permission_profile.read[0]: mounting the Docker socket",
        "4:5: workloads[0].permission_profile.read[1]: mounting / would expose the host itself",
        command=command,
    )
