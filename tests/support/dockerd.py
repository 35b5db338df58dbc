"""Stopping and starting the machine's dockerd, for the tests that may (where the suite owns dockerd).

.ci/run starts dockerd itself and then sets TOOLHIVE_APPLY_TEST_RESTART_DOCKERD=1; anywhere else these tests skip,
since other people's containers depend on that engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

owns_dockerd = pytest.mark.skipif(
    os.environ.get("TOOLHIVE_APPLY_TEST_RESTART_DOCKERD") != "1" or not shutil.which("pkill"),
    reason="stops dockerd: only where the suite owns it (.ci/run sets TOOLHIVE_APPLY_TEST_RESTART_DOCKERD=1)",
)


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def stop_dockerd() -> None:
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-x", "dockerd"], check=False).returncode == 0:
        time.sleep(0.5)


def start_dockerd() -> None:
    """Start dockerd unless it answers; through a shell that exits at once, so it outlives the test as the first
    one did. A killed dockerd leaves pid files that would make the start fail."""
    if _docker_answers():
        return
    for stale in ("/var/run/docker.pid", "/var/run/docker/containerd/containerd.pid"):
        Path(stale).unlink(missing_ok=True)
    subprocess.run(["sh", "-c", "nohup dockerd >>/var/log/dockerd.log 2>&1 &"], check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _docker_answers():
            return
        time.sleep(1)
    pytest.fail("dockerd did not come back within 60 s")
