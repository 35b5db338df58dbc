"""The four contenders of bench/peers.py, each driven through its own command line as a user would.

Every tool gets the same N workloads: the same image, command, env and user labels (`bench.suite`, and
`bench.tool` naming the tool, so each tool's containers can be counted and cleaned up on their own). Each tool
keeps its own bookkeeping labels (hashes, project names) on top, as it always does.

The workload is the tests' tiny stdio MCP server (tests/conftest.py) with one addition: a SIGTERM handler. As
PID 1 without one, Python ignores SIGTERM, so every `docker stop` (compose and Ansible recreate and remove with
stop; toolhive-apply's replace stops the old server) would wait the full 10 s grace period and the "one changed"
and "destroy" columns would measure Docker's timeout instead of the tools.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import TINY_MCP_SERVER  # noqa: E402

IMAGE = "toolhive-apply-test/python:latest"
SERVER = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n" + TINY_MCP_SERVER
COMMAND = ["python3.11", "-c", SERVER]
SUITE_LABEL = "bench.suite"
SUITE = "peers"
TOOL_LABEL = "bench.tool"
PARALLELISM = 8  # toolhive-apply's and the floor's; compose keeps its own default (COMPOSE_PARALLEL_LIMIT=64)
PROXY_PORT_BASE = 14000  # explicit ports, outside the derived range other stacks on this engine may hold
PEERS_VENV = BENCH / ".peers-venv"


@dataclass(frozen=True)
class Workload:
    name: str
    env: dict[str, str]


def workloads_for(prefix: str, count: int, changed: bool = False) -> list[Workload]:
    """N workloads; `changed` gives the first one a new env value (the "one changed among N" scenario)."""
    return [Workload(f"{prefix}-{i:03d}", {"BENCH": "2" if changed and i == 0 else "1"}) for i in range(count)]


def measured_plan(directory: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Exit code, wall time, peak RSS and CPU (os.wait4 on this child alone) and the last output line of the real
    `plan --detailed-exitcode` CLI on `directory`'s stack.yaml."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "toolhive_apply", "plan", "--detailed-exitcode", "stack.yaml"],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        output.seek(0)
        lines = [line for line in output.read().decode(errors="replace").splitlines() if line.strip()]
    return {
        "exit_code": os.waitstatus_to_exitcode(status),  # 2 = changes (every workload to start)
        "wall_s": elapsed,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "cpu_s": usage.ru_utime + usage.ru_stime,  # the child's own CPU: what the load does not inflate much
        "last_line": lines[-1] if lines else "",
    }


class ToolFailedError(RuntimeError):
    """A tool exited with an unexpected status: the run stops rather than time a failure."""


def run(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )
    if done.returncode not in ok:
        raise ToolFailedError(
            f"{' '.join(cmd[:4])} ... exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


class Tool:
    """One contender for one N: writes its own input files, then runs its own commands."""

    key: ClassVar[str]
    title: ClassVar[str]
    containers_per_workload: ClassVar[int] = 1
    extra_containers: ClassVar[int] = 0
    """Running containers of the stack that belong to no one workload (toolhive-apply's group gateway)."""
    record_containers: ClassVar[int] = 0
    """Created, never started: toolhive-apply's stack record, kept when the manifest declares groups."""
    has_plan: ClassVar[bool] = True

    def __init__(self, count: int, directory: Path) -> None:
        self.count = count
        self.directory = directory / self.key
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = f"pb-{self.key}-{count}"

    def labels(self) -> dict[str, str]:
        return {SUITE_LABEL: SUITE, TOOL_LABEL: self.key}

    def selectors(self) -> list[dict[str, list[str]]]:
        """Docker list filters that together find every container of this tool (for checks and clean-up)."""
        return [{"label": [f"{TOOL_LABEL}={self.key}"]}]

    def write(self, workloads: list[Workload]) -> None:
        raise NotImplementedError

    def apply(self) -> None:
        raise NotImplementedError

    def plan(self) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError


class ToolhiveApply(Tool):
    key = "tha"
    title = "toolhive-apply"
    containers_per_workload = 3  # server + proxy + the stdio server's docker gate
    docker_timeout: float | None = None  # settings.docker.timeout; None = toolhive-apply's default (60 s)
    port_base = PROXY_PORT_BASE  # workload i publishes port_base + i
    tree: ClassVar[Path | None] = None
    """Another checkout of toolhive-apply to run instead of this one (base_tool)."""

    @property
    def stack(self) -> str:
        return self.prefix

    def selectors(self) -> list[dict[str, list[str]]]:
        return [{"label": [f"toolhive-apply.stack={self.stack}"]}]

    def write(self, workloads: list[Workload]) -> None:
        settings: dict[str, Any] = {
            "stack": self.stack,
            "defaults": {"parallelism": PARALLELISM},
            "proxy": {"base_image": IMAGE},
        }
        if self.docker_timeout is not None:
            settings["docker"] = {"timeout": self.docker_timeout}
        data = {
            "apiVersion": "toolhive-apply/v1",
            "settings": settings,
            "workloads": [
                {
                    "name": w.name,
                    "image": IMAGE,
                    "cmd_arguments": COMMAND,
                    "env_vars": w.env,
                    "labels": self.labels(),
                    "proxy_port": self.port_base + i,
                }
                for i, w in enumerate(workloads)
            ],
        }
        (self.directory / "stack.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def _cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        env = {"PYTHONPATH": str(self.tree)} if self.tree else None
        return run([sys.executable, "-m", "toolhive_apply", *args, "stack.yaml"], self.directory, ok, env)

    def apply(self) -> None:
        self._cli("apply", "--yes")

    def plan(self) -> None:
        self._cli("plan", "--detailed-exitcode")  # 0 = no changes; 2 (changes) fails the no-op check

    def destroy(self) -> None:
        self._cli("destroy", "--yes")


class ToolhiveApplyVmcp(ToolhiveApply):
    """The same workloads in one group served ``vmcp-only`` behind its gateway: no proxy and no host port per
    workload (issue #20 asks for this as its own column). apply cannot ask each server for MCP on a port of its
    own here; the gateway reaches them on the stack network."""

    key = "tha-vmcp"
    title = "toolhive-apply vmcp-only"
    containers_per_workload = 2  # server + its docker gate; no proxy
    extra_containers = 1  # the group's gateway
    record_containers = 1  # the stack record (providers/stack_record.py) holding the group
    gateway_port = PROXY_PORT_BASE - 1

    def write(self, workloads: list[Workload]) -> None:
        super().write(workloads)
        path = self.directory / "stack.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for entry in data["workloads"]:
            entry.pop("proxy_port")
            entry["group"] = "bench"
        data["groups"] = [{"name": "bench", "serve": "vmcp-only", "vmcp": {"port": self.gateway_port}}]
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def base_tool(number: int, tree: Path, label: str) -> type[ToolhiveApply]:
    """The same life cycle run by another checkout (`peers.py --base-tree DIR ...`): "no regression" side by side
    in one run (issue #15). Only its CLI runs from that tree; the in-process no-op plan is measured for this tree's
    column alone. Its stack and workloads are named by its key, so no two columns share a container name."""
    attributes = {"key": f"tha-base{number}", "title": f"toolhive-apply {label}", "tree": tree.resolve()}
    return type(f"ToolhiveApplyBase{number}", (ToolhiveApply,), attributes)


class Compose(Tool):
    key = "compose"
    title = "docker-compose 1.29"
    has_plan = False  # compose 1.29 has no dry run (`--dry-run` arrived in Compose v2.22): its no-op is `up -d`
    retried_down = 0  # how often `down` had to be run twice (class-wide count, reported by peers.py)

    def __init__(self, count: int, directory: Path) -> None:
        super().__init__(count, directory)
        # a project name of its own per life cycle: a network that dockerd failed to free earlier (it can leak an
        # endpoint when a run is interrupted) must not be reused, or every later `down` fails on it
        self.project = f"{self.prefix.replace('-', '')}x{os.urandom(3).hex()}"

    def write(self, workloads: list[Workload]) -> None:
        services = {
            f"w{i:03d}": {
                "image": IMAGE,
                "container_name": w.name,
                "command": COMMAND,
                "environment": w.env,
                "labels": self.labels(),
                "stdin_open": True,
                "restart": "unless-stopped",
            }
            for i, w in enumerate(workloads)
        }
        data = {"version": "2.4", "services": services}
        (self.directory / "docker-compose.yml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def _compose(self, *args: str) -> str:
        # compose 1.29 holds a slot of its global limit (COMPOSE_PARALLEL_LIMIT, default 64) per service while that
        # service's own nested create runs, and the nested create needs a slot too: with 64 or more services every
        # slot is held and `up -d` hangs forever (seen at N = 100). Raising the limit by N keeps compose's own
        # default of 64 creates at once; below 64 services the default is left as it is.
        env = {"COMPOSE_PARALLEL_LIMIT": str(self.count + 64)} if self.count >= 64 else {}
        return run(["docker-compose", "-p", self.project, "-f", "docker-compose.yml", *args], self.directory, env=env)

    def apply(self) -> None:
        self._compose("up", "-d")

    def plan(self) -> None:
        self.apply()

    def destroy(self) -> None:
        # dockerd 20.10 sometimes still holds endpoints of containers removed a moment ago ("network ... has active
        # endpoints", seen at N = 100): compose then fails after removing every container; a user runs `down` again,
        # and so does this, inside the timed destroy
        for attempt in range(3):
            try:
                self._compose("down")
                return
            except ToolFailedError as exc:
                if "has active endpoints" not in str(exc) or attempt == 2:
                    raise
                Compose.retried_down += 1
                time.sleep(1)


RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  vars_files: [workloads.json]
  tasks:
    - name: workloads
      community.docker.docker_container:
        name: "{{ item.name }}"
        image: "{{ image }}"
        command: "{{ command }}"
        env: "{{ item.env }}"
        labels: "{{ labels }}"
        interactive: true
        restart_policy: unless-stopped
        state: "{{ wanted_state | default('started') }}"
      loop: "{{ workloads }}"
      loop_control:
        label: "{{ item.name }}"
"""


class Ansible(Tool):
    key = "ansible"
    title = "Ansible (community.docker)"

    def write(self, workloads: list[Workload]) -> None:
        data = {
            "image": IMAGE,
            "command": COMMAND,
            "labels": self.labels(),
            "workloads": [{"name": w.name, "env": w.env} for w in workloads],
        }
        (self.directory / "workloads.json").write_text(json.dumps(data), encoding="utf-8")
        (self.directory / "playbook.yml").write_text(PLAYBOOK, encoding="utf-8")

    def _playbook(self, *args: str) -> tuple[int, int]:
        python = str(PEERS_VENV / "bin" / "python")
        output = run(
            [str(PEERS_VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", *args, "playbook.yml"],
            self.directory,
            env={
                "ANSIBLE_PYTHON_INTERPRETER": python,
                "ANSIBLE_LOCALHOST_WARNING": "False",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
            },
        )
        found = RECAP.search(output)
        if found is None or int(found.group(3)) or int(found.group(4)):
            raise ToolFailedError(f"ansible-playbook did not succeed:\n{output[-3000:]}")
        return int(found.group(1)), int(found.group(2))

    def apply(self) -> None:
        self._playbook()

    def plan(self) -> None:
        _, changed = self._playbook("--check")
        if changed:
            raise ToolFailedError(f"ansible check mode reports {changed} change(s) on an up-to-date stack")

    def destroy(self) -> None:
        self._playbook("-e", "wanted_state=absent")


class Floor(Tool):
    key = "floor"
    title = "docker-py floor"

    def write(self, workloads: list[Workload]) -> None:
        data = {
            "select": f"{TOOL_LABEL}={self.key}",
            "parallelism": PARALLELISM,
            "workloads": [
                {"name": w.name, "image": IMAGE, "command": COMMAND, "env": w.env, "labels": self.labels()}
                for w in workloads
            ],
        }
        (self.directory / "desired.json").write_text(json.dumps(data), encoding="utf-8")

    def _floor(self, action: str) -> None:
        run([sys.executable, str(BENCH / "floor.py"), action, "desired.json"], self.directory)

    def apply(self) -> None:
        self._floor("apply")

    def plan(self) -> None:
        self._floor("plan")

    def destroy(self) -> None:
        self._floor("destroy")


TOOLS: tuple[type[Tool], ...] = (ToolhiveApply, ToolhiveApplyVmcp, Compose, Ansible, Floor)


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One benchmark at a time: each run's clean-up removes every `pb-` stack, so a second run would wreck the first."""
    path = BENCH / "results" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit("another bench/peers.py or bench/footprint.py run is in progress") from None
        yield
