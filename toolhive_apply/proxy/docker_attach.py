"""Reach a container's stdin/stdout through the Docker Engine API on a unix socket, with raw HTTP.

``POST /containers/{name}/attach`` with ``Upgrade: tcp`` hijacks the connection: after the 101 answer it carries stdin
one way and Docker's multiplexed stdout/stderr the other (see ``framing.py``). A plain ``inspect`` tells whether the
container runs and was created with stdin open, so the proxy waits instead of attaching to a dead server.

Two sides use this module. The workload proxy speaks to its docker gate (``docker_gate.py``), which answers the same
three requests for its one container (plus ``open_session``, the gate's own per-client request); the gate speaks to
the real engine, and alone also creates and starts execs (per-client server processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from toolhive_apply.proxy.httpwire import MAX_HEAD_BYTES, HttpWireError, encode_head, parse_head, read_body, read_head

API_TIMEOUT: Final = 10.0


class DockerApiError(Exception):
    """The engine refused a call or could not be reached; ``status`` is None when there was no HTTP answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DockerEndpoint:
    """The engine's unix socket and the API version to speak ("auto": the engine's own, asked once via /version).

    Negotiating matters: engine 29 refuses versions below 1.44 while engine 20.10 knows nothing above 1.41, and the
    few fields the proxy reads (State.Running, Config.OpenStdin, Config.Tty) and attach are the same in all of them.
    """

    def __init__(self, socket_path: str, api_version: str = "auto") -> None:
        self.socket_path = socket_path
        self.configured = api_version
        self._resolved: str | None = None if api_version == "auto" else api_version.removeprefix("v")

    async def prefix(self) -> str:
        if self._resolved is None:
            self._resolved = await self._negotiate()
        return f"/v{self._resolved}"

    async def _negotiate(self) -> str:
        status, headers, reader, writer = await _exchange(self, "GET", "/version", [("Connection", "close")])
        try:
            if status != 200:
                raise await _error(status, headers, reader, "ask the Docker engine for its API version")
            body = await asyncio.wait_for(read_body(reader, headers, until_eof=True, limit=1 << 20), API_TIMEOUT)
            version = json.loads(body).get("ApiVersion")
        except (HttpWireError, ValueError, TimeoutError, OSError, AttributeError) as error:
            raise DockerApiError(f"no API version from the Docker engine: {error!r}") from None
        finally:
            writer.close()
        if not isinstance(version, str) or not version:
            raise DockerApiError("the Docker engine did not report an API version")
        return version


@dataclass(slots=True)
class AttachedStream:
    """The hijacked attach connection: write JSON lines to stdin, read multiplexed frames."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def _exchange(
    endpoint: DockerEndpoint, method: str, path: str, extra: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, Any, asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(endpoint.socket_path, limit=MAX_HEAD_BYTES), API_TIMEOUT
        )
    except (OSError, TimeoutError) as error:
        raise DockerApiError(f"cannot connect to the Docker socket {endpoint.socket_path}: {error}") from None
    headers = [("Host", "docker"), ("User-Agent", "toolhive-apply-proxy"), *extra]
    if body:
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    writer.write(encode_head(f"{method} {path} HTTP/1.1", headers) + body)
    try:
        await writer.drain()
        start_line, response_headers = parse_head(await asyncio.wait_for(read_head(reader), API_TIMEOUT))
        status = int(start_line.split(" ", 2)[1])
    except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpWireError, ValueError, IndexError) as error:
        writer.close()
        raise DockerApiError(f"no valid answer from the Docker engine to {method} {path}: {error!r}") from None
    return status, response_headers, reader, writer


async def _error(status: int, headers: Any, reader: asyncio.StreamReader, what: str) -> DockerApiError:
    """A DockerApiError carrying the engine's own message ({"message": ...} bodies)."""
    message = f"HTTP {status}"
    with contextlib.suppress(Exception):
        body = await asyncio.wait_for(read_body(reader, headers, until_eof=True, limit=65536), API_TIMEOUT)
        message = str(json.loads(body).get("message", message))
    return DockerApiError(f"{what}: {message}", status)


async def inspect_container(endpoint: DockerEndpoint, name: str) -> dict[str, Any]:
    """``docker inspect`` of one container; DockerApiError with status 404 when it does not exist."""
    path = f"{await endpoint.prefix()}/containers/{quote(name, safe='')}/json"
    status, headers, reader, writer = await _exchange(endpoint, "GET", path, [("Connection", "close")])
    try:
        if status != 200:
            raise await _error(status, headers, reader, f"inspect container {name}")
        body = await asyncio.wait_for(read_body(reader, headers, until_eof=True, limit=16 << 20), API_TIMEOUT)
        data = json.loads(body)
    except (HttpWireError, ValueError, TimeoutError, OSError) as error:
        raise DockerApiError(f"inspect container {name}: {error!r}") from None
    finally:
        writer.close()
    if not isinstance(data, dict):
        raise DockerApiError(f"inspect container {name}: unexpected answer")
    return data


ATTACH_QUERY: Final = "stream=1&stdin=1&stdout=1&stderr=1"
"""The one attach the proxy makes: every stream, no logs replay, no detach keys (the gate accepts exactly this)."""
SESSION_SUFFIX: Final = "session"
"""``POST /containers/{name}/session``: the docker gate's own request for a fresh per-client server process."""
_UPGRADE: Final = [("Connection", "Upgrade"), ("Upgrade", "tcp")]


async def _hijack(endpoint: DockerEndpoint, path: str, what: str, body: bytes = b"") -> AttachedStream:
    """A POST answered with 101 (or 200 on old engines) whose connection then carries the raw streams."""
    extra = _UPGRADE if body else [*_UPGRADE, ("Content-Length", "0")]
    status, headers, reader, writer = await _exchange(endpoint, "POST", path, extra, body)
    if status in (101, 200):
        return AttachedStream(reader, writer)
    try:
        raise await _error(status, headers, reader, what)
    finally:
        writer.close()


async def attach_container(endpoint: DockerEndpoint, name: str) -> AttachedStream:
    """Attach to stdin, stdout and stderr of a running container (no TTY: output is multiplexed)."""
    path = f"{await endpoint.prefix()}/containers/{quote(name, safe='')}/attach?{ATTACH_QUERY}"
    return await _hijack(endpoint, path, f"attach to container {name}")


async def open_session(endpoint: DockerEndpoint, name: str) -> AttachedStream:
    """Per-client mode: the docker gate starts a fresh server process in ``name`` and hands over its streams."""
    path = f"{await endpoint.prefix()}/containers/{quote(name, safe='')}/{SESSION_SUFFIX}"
    return await _hijack(endpoint, path, f"start a server process in container {name}")


async def _json_call(endpoint: DockerEndpoint, method: str, path: str, what: str, body: bytes = b"") -> Any:
    extra = [("Connection", "close")]
    if method == "POST" and not body:
        extra.append(("Content-Length", "0"))
    status, headers, reader, writer = await _exchange(endpoint, method, path, extra, body)
    try:
        if status not in (200, 201):
            raise await _error(status, headers, reader, what)
        raw = await asyncio.wait_for(read_body(reader, headers, until_eof=True, limit=16 << 20), API_TIMEOUT)
        return json.loads(raw) if raw else {}
    except (HttpWireError, ValueError, TimeoutError, OSError) as error:
        raise DockerApiError(f"{what}: {error!r}") from None
    finally:
        writer.close()


async def create_exec(endpoint: DockerEndpoint, container: str, command: list[str]) -> str:
    """An exec of ``command`` in ``container`` with stdin open and no TTY (engine side: the gate only)."""
    body = json.dumps(
        {"AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False, "Cmd": command}
    ).encode()
    path = f"{await endpoint.prefix()}/containers/{quote(container, safe='')}/exec"
    answer = await _json_call(endpoint, "POST", path, f"create an exec in container {container}", body)
    exec_id = answer.get("Id") if isinstance(answer, dict) else None
    if not isinstance(exec_id, str) or not exec_id:
        raise DockerApiError(f"create an exec in container {container}: no exec id in the answer")
    return exec_id


async def start_exec(endpoint: DockerEndpoint, exec_id: str) -> AttachedStream:
    """Start an exec attached: the connection then carries its stdin and multiplexed stdout/stderr."""
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    path = f"{await endpoint.prefix()}/exec/{quote(exec_id, safe='')}/start"
    return await _hijack(endpoint, path, "start an exec", body)


async def exec_running(endpoint: DockerEndpoint, exec_id: str) -> bool:
    """Whether an exec's process still runs; False once it exited or the engine forgot it."""
    path = f"{await endpoint.prefix()}/exec/{quote(exec_id, safe='')}/json"
    try:
        answer = await _json_call(endpoint, "GET", path, "inspect an exec")
    except DockerApiError as error:
        if error.status == 404:
            return False
        raise
    return bool(isinstance(answer, dict) and answer.get("Running"))
