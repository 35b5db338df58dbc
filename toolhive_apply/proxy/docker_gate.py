"""Docker-gate mode: the one process of a stdio workload that holds the Docker socket, and what it lets through.

A stdio server is reached through the Docker API (attach, or exec for per-client processes), and whoever holds the
engine's socket owns the host. So the network-facing workload proxy does not hold it: this gate does, in its own
container with no network at all (``network_mode: none``), read-only, without capabilities, as a non-root user with
only the socket's group. It listens on a unix socket in a volume it shares with the proxy and offers, for the ONE
container named in its configuration (by engine id, so a renamed or replaced container is never reached):

* ``GET /version`` and ``GET /containers/{name}/json``: the API version; whether the container runs and was created
  with stdin open and no TTY. Answered from the gate's own inspect, scrubbed: never the environment (secrets), mounts,
  labels or anything else an inspect holds;
* ``POST /containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1`` (shared mode): the container's stdio;
* ``POST /containers/{name}/session`` (per-client mode): a fresh server process, an exec of the container's own
  command (read from the engine, not from the caller), at most ``max_processes`` at a time.

Everything else (another container, exec create, container create, /info, a body, a smuggling attempt) is refused,
and the request sent to the engine is always one the gate builds itself (``gate_request.py`` decides which).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from toolhive_apply.proxy.config import DEFAULT_MAX_PROCESSES, ConfigError, SessionMode
from toolhive_apply.proxy.docker_attach import (
    AttachedStream,
    DockerApiError,
    DockerEndpoint,
    attach_container,
    create_exec,
    exec_running,
    inspect_container,
    start_exec,
)
from toolhive_apply.proxy.gate_request import MAX_HEAD_BYTES, GateRefusedError, Operation, parse_request, routes

HEAD_TIMEOUT: Final = 10.0
DRAIN_GRACE: Final = 5.0
"""Seconds a relay waits, once the proxy closed its side, for the server's last output before it closes too."""
MAX_SPARE_CONNECTIONS: Final = 8
"""Connections beyond the per-client limit (inspect, version, attach) the gate serves at once."""
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_KEYS: Final = frozenset(
    {
        "mode",
        "name",
        "container",
        "container_name",
        "listen",
        "docker_socket",
        "docker_api_version",
        "session_mode",
        "max_processes",
        "log_level",
    }
)
_UPGRADED: Final = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)
_REASONS: Final = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests"}
_log = logging.getLogger("toolhive_apply.proxy.docker_gate")


@dataclass(frozen=True, slots=True)
class GateConfig:
    """The gate's fixed world: one container (``container`` is the engine's id, ``container_name`` what the proxy
    calls it), one listening socket, one engine socket, one session mode."""

    name: str
    container: str
    container_name: str
    listen: str
    docker_socket: str
    docker_api_version: str = "auto"
    session_mode: SessionMode = SessionMode.SHARED
    max_processes: int = DEFAULT_MAX_PROCESSES

    def operations(self) -> frozenset[Operation]:
        per_client = self.session_mode is SessionMode.PER_CLIENT
        return frozenset({Operation.VERSION, Operation.INSPECT, Operation.SESSION if per_client else Operation.ATTACH})


def load_gate_config(raw: Mapping[str, Any]) -> GateConfig:
    """The gate's configuration from THV_PROXY_CONFIG's docker-gate document; every problem reported at once."""
    problems = [f"unknown keys {sorted(set(raw) - _KEYS)}"] if set(raw) - _KEYS else []
    texts: dict[str, str] = {}
    for key in ("name", "container", "container_name", "listen", "docker_socket"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"{key}: required non-empty string")
            continue
        texts[key] = value
    for key in ("container", "container_name"):
        if key in texts and not _NAME.fullmatch(texts[key]):
            problems.append(f"{key}: not a Docker container name or id")
    for key in ("listen", "docker_socket"):
        if key in texts and not texts[key].startswith("/"):
            problems.append(f"{key}: must be an absolute path")
    try:
        mode = SessionMode(raw.get("session_mode", SessionMode.SHARED))
    except ValueError:
        problems.append(f"session_mode: must be one of {[str(m) for m in SessionMode]}")
        mode = SessionMode.SHARED
    limit = raw.get("max_processes", DEFAULT_MAX_PROCESSES)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 256:
        problems.append("max_processes: must be an integer from 1 to 256")
        limit = DEFAULT_MAX_PROCESSES
    version = raw.get("docker_api_version", "auto")
    if not isinstance(version, str) or not re.fullmatch(r"auto|v?[0-9]{1,3}\.[0-9]{1,3}", version):
        problems.append("docker_api_version: 'auto' or a version such as '1.41'")
        version = "auto"
    if problems:
        raise ConfigError(problems)
    return GateConfig(
        name=texts["name"],
        container=texts["container"],
        container_name=texts["container_name"],
        listen=texts["listen"],
        docker_socket=texts["docker_socket"],
        docker_api_version=version,
        session_mode=mode,
        max_processes=limit,
    )


def scrub_inspect(info: Mapping[str, Any]) -> dict[str, Any]:
    """The only facts of an inspect the proxy needs; built field by field, so nothing else can slip through."""
    raw_state, raw_config = info.get("State"), info.get("Config")
    state: Mapping[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    config: Mapping[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    status = state.get("Status")
    return {
        "State": {
            "Status": status if isinstance(status, str) and status.isalpha() else "unknown",
            "Running": state.get("Running") is True,
            "Paused": state.get("Paused") is True,
            "Restarting": state.get("Restarting") is True,
        },
        "Config": {"OpenStdin": config.get("OpenStdin") is True, "Tty": config.get("Tty") is True},
    }


def server_command(info: Mapping[str, Any]) -> list[str]:
    """The command the container itself runs (entrypoint + cmd as the engine resolved them), for an exec of it."""
    path, args = info.get("Path"), info.get("Args")
    if not isinstance(path, str) or not path or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise DockerApiError("the container has no command to start another process of")
    return [path, *args]


def _answer(status: int, body: Mapping[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    reason = _REASONS.get(status, "OK" if status == 200 else "Bad Gateway")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + payload


def _printable(text: str, limit: int = 300) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:limit]


class DockerGate:
    """Serves the operations of one GateConfig; per-client processes are counted until they are seen to exit."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.engine = DockerEndpoint(config.docker_socket, config.docker_api_version)
        self.table = routes(config.container_name, config.operations())
        self._connections = 0
        self._live: set[str] = set()
        self._lingering: set[str] = set()
        """Execs whose relay ended: the Docker API cannot kill an exec, so one that ignores the end of its stdin
        keeps its slot until it exits (or the container restarts)."""
        self._session_lock = asyncio.Lock()
        self.refused = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            if self._connections > self.config.max_processes + MAX_SPARE_CONNECTIONS:
                await self._send(writer, 429, "too many connections to the docker gate")
                return
            await self._serve(reader, writer)
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT)
            operation = parse_request(head, self.table)
        except TimeoutError:
            return
        except GateRefusedError as refusal:
            self.refused += 1
            _log.warning("refused: %s", _printable(refusal.reason))
            await self._send(writer, refusal.status, f"refused by the docker gate: {refusal.reason}")
            return
        try:
            if operation is Operation.VERSION:
                version = (await self.engine.prefix()).removeprefix("/v")
                writer.write(_answer(200, {"ApiVersion": version}))
            elif operation is Operation.INSPECT:
                writer.write(_answer(200, scrub_inspect(await inspect_container(self.engine, self.config.container))))
            elif operation is Operation.ATTACH:
                await self._relay(reader, writer, await attach_container(self.engine, self.config.container))
            else:
                await self._session(reader, writer)
            await writer.drain()
        except DockerApiError as error:
            status = error.status if error.status in (404, 409, 429) else 502
            await self._send(writer, status, str(error))

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._session_lock:
            for exec_id in list(self._lingering):
                if not await exec_running(self.engine, exec_id):
                    self._lingering.discard(exec_id)
            if len(self._live) + len(self._lingering) >= self.config.max_processes:
                busy = f"{len(self._live)} live and {len(self._lingering)} exiting"
                raise DockerApiError(f"per-client limit of {self.config.max_processes} server processes ({busy})", 429)
            info = await inspect_container(self.engine, self.config.container)
            if not scrub_inspect(info)["State"]["Running"]:
                raise DockerApiError(f"container {self.config.container_name} is not running", 409)
            exec_id = await create_exec(self.engine, self.config.container, server_command(info))
            stream = await start_exec(self.engine, exec_id)
            self._live.add(exec_id)
        _log.info("per-client server process %s started (%d live)", exec_id[:12], len(self._live))
        try:
            await self._relay(reader, writer, stream)
        finally:
            self._live.discard(exec_id)
            self._lingering.add(exec_id)
            _log.info("per-client server process %s: session ended", exec_id[:12])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: AttachedStream) -> None:
        """Bytes both ways until the server side ends; the proxy closing its side closes the server's stdin."""
        writer.write(_UPGRADED)
        up = asyncio.create_task(_pump(reader, stream.writer, half_close=True))
        down = asyncio.create_task(_pump(stream.reader, writer, half_close=False))
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down not in done:
                await asyncio.wait({down}, timeout=DRAIN_GRACE)
        finally:
            for task in (up, down):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await stream.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            writer.write(_answer(status, {"message": _printable(message)}))
            await writer.drain()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """The request head, line by line, so a bare LF or an oversized head is refused at once rather than waited on."""
    head = b""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise GateRefusedError(431, "request head too large") from None
        head += line
        if len(head) > MAX_HEAD_BYTES:
            raise GateRefusedError(431, "request head too large")
        if not line.endswith(b"\r\n"):
            raise GateRefusedError(400, "a line ends with a bare LF")
        if line == b"\r\n":
            return head


async def _pump(source: asyncio.StreamReader, target: asyncio.StreamWriter, *, half_close: bool) -> None:
    try:
        while chunk := await source.read(65536):
            target.write(chunk)
            await target.drain()
    except (OSError, ConnectionError):
        return
    if half_close and target.can_write_eof():
        with contextlib.suppress(OSError, ConnectionError):
            target.write_eof()


async def serve_gate(raw: Mapping[str, Any]) -> None:
    """Run the gate until SIGTERM. A stale socket file (from before a restart) is replaced."""
    config = load_gate_config(raw)
    gate = DockerGate(config)
    path = Path(config.listen)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = await asyncio.start_unix_server(gate.handle, path=str(path), limit=MAX_HEAD_BYTES)
    path.chmod(0o600)  # the proxy runs as the same uid; nobody else needs it
    _log.info(
        "docker gate %s for container %s (%s) listening on %s",
        config.name,
        config.container_name,
        config.session_mode,
        config.listen,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
