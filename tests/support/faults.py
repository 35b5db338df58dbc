"""Helpers of the fault suite: isolated environments with a secret canary, background CLI runs that the fault hook
stops or kills, what a stack owns on the engine, and the broken dependencies themselves (a cuttable Docker socket,
a registry that never answers, a Vault proxy that seals the server after a chosen request, an unwritable file).

Nothing here mocks Docker or OpenBao: faults are injected between the tool and the real services.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import private_env
from toolhive_apply.providers.docker.client import FAULT_KILL_ENV, FAULT_SIGNAL_ENV

MUTATING = "POST,PUT,DELETE"  # the engine requests that change something; reads vary with timing, these do not
STOP_TIMEOUT = 120.0


# ---------------------------------------------------------------------------------------------------------------
# environment and background runs
# ---------------------------------------------------------------------------------------------------------------
def isolated_env(root: Path, canary: str) -> dict[str, str]:
    """XDG dirs, HOME and the encrypted store under `root`, and the canary in CANARY_VALUE: searchable afterwards."""
    for name in ("data", "state", "cache", "home"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return private_env(root, CANARY_VALUE=canary, NO_COLOR="1")


@dataclass
class Run:
    """A CLI run in the background; its stdout and stderr go to files (the crash log of a killed run)."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def wait(self, timeout: float = 300) -> int:
        return self.process.wait(timeout)

    @property
    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    @property
    def error_text(self) -> str:
        return self.stderr.read_text(errors="replace")

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT) -> None:
        """Until the fault hook stopped the process (state T); fails if it exits first."""
        deadline = time.monotonic() + timeout
        stat = Path(f"/proc/{self.process.pid}/stat")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the run exited ({self.process.returncode}) before the fault point:\n{self.output}")
            with contextlib.suppress(OSError):
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
                    return
            time.sleep(0.02)
        pytest.fail(f"the run did not reach the fault point within {timeout:g} s:\n{self.output}")


def start_cli(
    args: Iterable[str],
    env: dict[str, str],
    logs: Path,
    *,
    fault_after: int | None = None,
    fault_methods: str | None = MUTATING,
    fault_signal: str = "SIGKILL",
) -> Run:
    """`python -m toolhive_apply ARGS` in the background, with the Docker fault hook armed when `fault_after`."""
    logs.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.monotonic_ns()}"
    full = {**os.environ, "NO_COLOR": "1", **env}
    full.pop(FAULT_KILL_ENV, None)
    full.pop(FAULT_SIGNAL_ENV, None)
    if fault_after is not None:
        full[FAULT_KILL_ENV] = f"{fault_after}:{fault_methods}" if fault_methods else str(fault_after)
        full[FAULT_SIGNAL_ENV] = fault_signal
    out, err = logs / f"{stamp}.out", logs / f"{stamp}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "toolhive_apply", *args],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=full,
        )
    return Run(process, out, err)


HAND_WRITTEN = {"mcpServers": {"hand-written": {"url": "http://127.0.0.1:1/mcp"}}}


@dataclass
class FaultStack:
    """One stack under a private root: XDG dirs, HOME and the encrypted store with a secret canary, and a Cursor
    file that already holds a hand-written entry. Every CLI output is kept for the canary search at the end."""

    root: Path
    stack: str
    canary: str = field(default_factory=lambda: f"canary-{uuid.uuid4().hex}")
    outputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = isolated_env(self.root, self.canary)
        self.manifest_dir = self.root / "manifest"
        self.cursor = self.manifest_dir / "cursor" / "mcp.json"
        self.cursor.parent.mkdir(parents=True)
        self.cursor.write_text(json.dumps(HAND_WRITTEN, indent=2) + "\n", encoding="utf-8")

    def write(self, workloads: list[dict[str, Any]], **sections: Any) -> Path:
        """The manifest: `workloads`, the canary secret (from CANARY_VALUE) and the Cursor client, plus `sections`."""
        from tests.conftest import write_manifest

        sections.setdefault("secrets", [{"key": "canary", "from": {"env": "CANARY_VALUE"}}])
        sections.setdefault("clients", [{"name": "cursor", "config_path": str(self.cursor), "create": True}])
        return write_manifest(self.manifest_dir, self.stack, workloads, **sections)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Any:
        from tests.conftest import run_cli

        result = run_cli(*args, env={**self.env, **(env or {})})
        self.outputs.append(result.output)
        return result

    def start(self, args: Iterable[str], env: dict[str, str] | None = None, **fault: Any) -> Run:
        return start_cli(args, {**self.env, **(env or {})}, self.root / "logs", **fault)

    def finished(self, run: Run) -> int:
        code = run.wait()
        self.outputs.append(run.output)
        return code

    def assert_no_canary(self, api: Any, *extra_roots: Path) -> None:
        roots = [*(self.root / d for d in ("data", "state", "cache", "home", "manifest", "logs")), *extra_roots]
        assert_no_canary(self.canary, self.outputs, roots, api, [self.stack])


def pending_changes(path: Path, env: dict[str, str]) -> list[str]:
    """What a plan of `path` would change, made in this process (as `plan` does, without a process start)."""
    from unittest.mock import patch  # patches the environment only: the engine and the stores are the real ones

    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.operations import make_plan, targets_for

    with patch.dict(os.environ, env):
        manifest = load_manifest([path])
        targets = targets_for(manifest)
        try:
            plan = make_plan(manifest, targets)
        finally:
            targets.docker.close()
    return [f"{change.id}: {change.action.value} ({change.reason})" for change in plan.changes]


# ---------------------------------------------------------------------------------------------------------------
# what a stack owns
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inventory:
    containers: dict[str, str]  # name -> state
    networks: list[str]  # names, one per network (a duplicate shows twice)
    locked: bool

    @property
    def names(self) -> list[str]:
        return sorted(self.containers)

    @property
    def units(self) -> dict[str, str]:
        """The workloads' containers, without the never-started records (registries, the stack record)."""
        records = ("toolhive-apply-registry.", "toolhive-apply-stack.")
        return {name: state for name, state in self.containers.items() if not name.startswith(records)}


def inventory(api: Any, stack: str) -> Inventory:
    found = api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    containers = {c["Names"][0].lstrip("/"): c["State"] for c in found}
    networks = sorted(inventory_networks(api, stack).values())
    locked = bool(api.containers(all=True, filters={"name": [f"^/toolhive-apply-lock.{stack}$"]}))
    return Inventory(containers, networks, locked)


def purge_stack(api: Any, stack: str, timeout: float = 90.0) -> None:
    """Remove everything of `stack` (containers, networks, its lock), retrying network removal while dockerd is
    still letting go of endpoints of just-removed containers ("has active endpoints"), a race seen right after a
    crashed apply. The conftest's own teardown then finds nothing left."""
    import docker.errors

    deadline = time.monotonic() + timeout
    while True:
        for container in api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container["Id"], force=True, v=True)
        for lock in api.containers(all=True, filters={"name": [f"^/toolhive-apply-lock.{stack}$"]}):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(lock["Id"], force=True)
        networks = inventory_networks(api, stack)
        try:
            for network_id in networks:
                with contextlib.suppress(docker.errors.NotFound):
                    api.remove_network(network_id)
            return
        except docker.errors.APIError as exc:
            if time.monotonic() >= deadline:
                attached = {i: api.inspect_network(i).get("Containers") for i in networks}
                raise AssertionError(f"cannot remove the networks of {stack}: {exc}; attached: {attached}") from exc
            time.sleep(0.5)


def inventory_networks(api: Any, stack: str) -> dict[str, str]:
    """Id -> name of every network of `stack`: by label, and by the shared network's name."""
    by_label = api.networks(filters={"label": [f"toolhive-apply.stack={stack}"]})
    by_name = [n for n in api.networks(names=[f"toolhive-apply.{stack}"]) if n["Name"] == f"toolhive-apply.{stack}"]
    return {n["Id"]: n["Name"] for n in [*by_label, *by_name]}


def mcp_servers(path: Path) -> dict[str, Any]:
    """The servers of a Cursor-style file, as Cursor reads it (strict JSON)."""
    servers: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")).get("mcpServers", {})
    return servers


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def assert_no_canary(
    canary: str, outputs: Iterable[str], roots: Iterable[Path], api: Any, stacks: Iterable[str]
) -> None:
    """The secret canary is in no output, no file under `roots` (logs, state, backups, caches) and no label."""
    assert canary
    for index, text in enumerate(outputs):
        assert canary not in text, f"output #{index} leaks the canary:\n{text[-3000:]}"
    for file in files_under(*roots):
        assert canary.encode() not in file.read_bytes(), f"{file} leaks the canary"
    for stack in stacks:
        for container in api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]}):
            assert canary not in json.dumps(container["Labels"]), container["Names"]
        for lock in api.containers(all=True, filters={"name": [f"^/toolhive-apply-lock.{stack}$"]}):
            assert canary not in json.dumps(lock["Labels"])


# ---------------------------------------------------------------------------------------------------------------
# a Docker socket that can be cut
# ---------------------------------------------------------------------------------------------------------------
class SocketForwarder:
    """A unix socket that relays every connection to the real engine's socket, until `cut()` drops them all.

    To the tool this is dockerd going away: listening stops, the path disappears, and open (pooled, keep-alive)
    connections are reset, so the next request fails the way it fails when the engine stops.
    """

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.target = target
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut:
                    client.close()
                    upstream.close()
                    return
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, []
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.path.unlink(missing_ok=True)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


# ---------------------------------------------------------------------------------------------------------------
# a registry that stops answering
# ---------------------------------------------------------------------------------------------------------------
class _RegistryHandler(BaseHTTPRequestHandler):
    server: _RegistryServer

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.hanging.is_set():
            self.server.released.wait(60)  # accept and never answer: the client's timeout must fire
            return
        body = json.dumps(self.server.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


class _RegistryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, document: Any) -> None:
        super().__init__(("127.0.0.1", 0), _RegistryHandler)
        self.document = document
        self.hanging = threading.Event()
        self.released = threading.Event()
        self.requests = 0


@contextlib.contextmanager
def registry_server(document: Any) -> Iterator[_RegistryServer]:
    """A registry document over HTTP on 127.0.0.1; `server.hanging.set()` makes it accept and never answer."""
    server = _RegistryServer(document)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


def server_url(server: _RegistryServer, path: str = "/registry.json") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# ---------------------------------------------------------------------------------------------------------------
# a Vault proxy that breaks the server after a chosen request
# ---------------------------------------------------------------------------------------------------------------
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _VaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: VaultFaultProxy

    def log_message(self, *args: Any) -> None:
        return None

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        upstream = http.client.HTTPConnection(self.server.target_host, self.server.target_port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            status, reason, answer_headers = response.status, response.reason, response.getheaders()
        finally:
            upstream.close()
        self.server.seen.append((self.command, self.path.split("?")[0], status))
        # the fault strikes after the server did the work and before the client hears of it: deterministic
        self.server.maybe_strike(self.command, self.path.split("?")[0], status)
        self.send_response(status, reason)
        for key, value in answer_headers:
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def do_PUT(self) -> None:
        self._relay()

    def do_DELETE(self) -> None:
        self._relay()

    def do_LIST(self) -> None:
        self._relay()


class VaultFaultProxy(ThreadingHTTPServer):
    """An HTTP proxy in front of OpenBao; `arm(when, fault)` runs `fault()` once, right after the first request
    matching `when(method, path, status)` reached the server, before its answer is relayed."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _VaultHandler)
        parsed = urlparse(target)
        self.target_host = parsed.hostname or "127.0.0.1"
        self.target_port = int(parsed.port or 8200)
        self.seen: list[tuple[str, str, int]] = []
        self._when: Callable[[str, str, int], bool] | None = None
        self._fault: Callable[[], None] | None = None
        self._strike_lock = threading.Lock()
        self.struck = False

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def arm(self, when: Callable[[str, str, int], bool], fault: Callable[[], None]) -> None:
        self._when, self._fault, self.struck = when, fault, False

    def maybe_strike(self, method: str, path: str, status: int) -> None:
        with self._strike_lock:
            if self.struck or self._when is None or self._fault is None or not self._when(method, path, status):
                return
            self.struck = True
            self._fault()


@contextlib.contextmanager
def vault_fault_proxy(target: str) -> Iterator[VaultFaultProxy]:
    proxy = VaultFaultProxy(target)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


# ---------------------------------------------------------------------------------------------------------------
# a file nobody may write, not even root
# ---------------------------------------------------------------------------------------------------------------
def _chattr(flag: str, path: Path) -> bool:
    try:
        done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    except OSError:
        return False
    return done.returncode == 0


def _write_fails(path: Path) -> bool:
    probe = path / ".probe" if path.is_dir() else path
    try:
        if path.is_dir():
            probe.write_bytes(b"")
            probe.unlink()
        else:
            with probe.open("ab"):
                pass
    except OSError:
        return True
    return False


def _read_only_bind(path: Path) -> bool:
    """Bind-mount `path` onto itself read-only (root, where chattr is not supported, e.g. on overlayfs)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, check=False)
    if bound.returncode != 0:
        return False
    remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, check=False)
    if remounted.returncode != 0:
        subprocess.run(["umount", str(path)], capture_output=True, check=False)
        return False
    return True


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[str]:
    """Make `path` (a file or a directory) refuse writes even to root: `chattr +i`, else a read-only bind mount
    onto itself, else (not root) chmod. Skips the test when none of them really stops writes here. Yields how."""
    how = ""
    mode = path.stat().st_mode
    if _chattr("+i", path):
        how = "chattr +i"
    elif _read_only_bind(path):
        how = "read-only bind mount"
    elif os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
        how = "chmod"
    try:
        if not how or not _write_fails(path):
            pytest.skip(f"cannot make {path} unwritable here (no chattr +i, no read-only bind mount, running as root)")
        yield how
    finally:
        if how == "chattr +i":
            _chattr("-i", path)
        elif how == "read-only bind mount":
            if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        elif how == "chmod":
            path.chmod(mode)
