"""Crash consistency: an apply killed with SIGKILL at random points leaves nothing a fresh apply cannot finish.

Each round kills an apply that is creating or replacing workload pairs, then checks that the next apply converges
(the dead run's lock is recognised as stale, a pair set aside by an interrupted replace is cleaned up), that no
container is orphaned or duplicated, and that a second plan has no changes. Bounded: 8 rounds, seeded delays.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, TINY_MCP, run_cli, write_manifest

pytestmark = pytest.mark.docker

ROUNDS = 8


def _manifest(tmp_path: Path, stack: str, generation: int) -> Path:
    workloads = [
        {"name": f"{stack}-{i}", "image": PYTHON_IMAGE, "cmd_arguments": TINY_MCP, "env_vars": {"GEN": str(generation)}}
        for i in range(3)
    ]
    return write_manifest(tmp_path, stack, workloads)


def _containers(api: Any, stack: str) -> list[str]:
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    return sorted(c["Names"][0].lstrip("/") for c in found)


def test_applies_killed_at_random_points_always_converge_on_the_next_apply(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    rng = random.Random(20261129)
    expected = sorted([f"{stack}-{i}" for i in range(3)] + [f"{stack}-{i}-proxy" for i in range(3)])
    for generation in range(ROUNDS):
        path = _manifest(tmp_path, stack, generation)
        victim = subprocess.Popen(
            [sys.executable, "-m", "toolhive_apply", "apply", str(path), "--yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
        time.sleep(rng.uniform(0.3, 2.5))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

        healed = run_cli("apply", str(path), "--yes", "--lock-timeout", "5")
        assert healed.code == 0, (generation, healed)
        assert _containers(docker_api, stack) == expected, generation
        again = run_cli("plan", str(path), "--detailed-exitcode")
        assert again.code == 0, (generation, again)
