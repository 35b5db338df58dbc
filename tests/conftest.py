"""Shared fixtures: a real Docker engine, locally built MCP images, a unique stack per test.

Docker tests never mock the engine: they talk to the dockerd that `.ci/run` starts. Each test owns a
stack name of its own and everything labelled with it is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import hypothesis
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# CI (.ci/run sets HYPOTHESIS_PROFILE=ci) draws the same examples on every run, so a property test's verdict there is
# the code's, not the luck of a seed; a developer's runs keep drawing new ones, which is how new flaws are found
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    hypothesis.settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
sys.path.insert(0, str(ROOT))

import toolhive_apply.providers  # noqa: E402,F401 - registers each kind's field table with the engine

# A minimal stdio MCP server (initialize, tools/list, ping) in a few lines of Python: it starts in milliseconds,
# so tests and benchmarks can run a hundred real workloads on two cores.
TINY_MCP_SERVER = (
    "import json, sys\n"
    "for line in sys.stdin:\n"
    "    m = json.loads(line)\n"
    "    if 'id' not in m or 'method' not in m: continue\n"
    "    if m['method'] == 'initialize':\n"
    "        r = {'protocolVersion': m['params']['protocolVersion'], 'capabilities': {'tools': {}},\n"
    "             'serverInfo': {'name': 'tiny', 'version': '1'}}\n"
    "        out = {'jsonrpc': '2.0', 'id': m['id'], 'result': r}\n"
    "    elif m['method'] in ('tools/list', 'ping'):\n"
    "        out = {'jsonrpc': '2.0', 'id': m['id'], 'result': {'tools': []} if m['method'] == 'tools/list' else {}}\n"
    "    else:\n"
    "        out = {'jsonrpc': '2.0', 'id': m['id'], 'error': {'code': -32601, 'message': 'method not found'}}\n"
    "    print(json.dumps(out), flush=True)\n"
)
TINY_MCP = ["python3.11", "-c", TINY_MCP_SERVER]
HTTP_IMAGE = "toolhive-apply-test/http:latest"
TIME_IMAGE = "toolhive-apply-test/time:latest"
PYTHON_IMAGE = "toolhive-apply-test/python:latest"


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    """The low-level client of the real engine; the suite fails loudly if there is none. Closed at the end: its
    pooled unix-socket connections otherwise outlive the session and pytest reports them as unraisable."""
    from toolhive_apply.providers.docker.client import connect

    api = connect()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def test_images(docker_api: Any) -> dict[str, str]:
    from tests.images.build_images import ensure_images

    return ensure_images()


STORE_PASSWORD = "correct horse battery staple"


def private_env(root: Path, **extra: str) -> dict[str, str]:
    """An encrypted store with a password, and HOME and the XDG data, state and cache directories under `root`:
    nothing of the developer's is read or written, and a leak search can cover every file the run made."""
    return {
        "TOOLHIVE_SECRETS_PASSWORD": STORE_PASSWORD,
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "HOME": str(root / "home"),
        **extra,
    }


def remove_stack(api: Any, stack: str) -> None:
    for container in api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}):
        api.remove_container(container["Id"], force=True, v=True)
    for volume in (api.volumes(filters={"label": [f"toolhive-apply.stack={stack}"]}) or {}).get("Volumes") or ():
        api.remove_volume(volume["Name"], force=True)  # named gate volumes (stdio served vmcp-only)
    for network in api.networks(filters={"label": [f"toolhive-apply.stack={stack}"]}):
        api.remove_network(network["Id"])
    for network in api.networks(names=[f"toolhive-apply.{stack}"]):
        api.remove_network(network["Id"])
    for container in api.containers(all=True, filters={"name": [f"^/toolhive-apply-lock.{stack}$"]}):
        api.remove_container(container["Id"], force=True, v=True)


@pytest.fixture
def stack(docker_api: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    remove_stack(docker_api, name)


@pytest.fixture
def own_images(docker_api: Any, stack: str) -> Iterator[list[str]]:
    """Images a test built (append their ids or tags): removed after the stack's containers that use them."""
    made: list[str] = []
    yield made
    remove_stack(docker_api, stack)
    for image in made:
        with contextlib.suppress(docker.errors.APIError):
            docker_api.remove_image(image)


def write_manifest(directory: Path, stack: str, workloads: list[dict[str, Any]], **sections: Any) -> Path:
    """A manifest file for `stack`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = {"stack": stack, "proxy": {"base_image": PYTHON_IMAGE}, **sections.pop("settings", {})}
    data: dict[str, Any] = {"apiVersion": "toolhive-apply/v1", "settings": settings}
    data.update(sections)
    data["workloads"] = workloads
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """The real entry point in a subprocess: exit codes, stdout and stderr exactly as a user sees them."""
    import os
    import subprocess

    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "toolhive_apply", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return CliResult(done.returncode, done.stdout, done.stderr)
