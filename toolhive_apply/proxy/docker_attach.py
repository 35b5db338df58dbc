"""Reach a container's stdin/stdout through the Docker Engine API on a mounted unix socket, with raw HTTP.

``POST /containers/{name}/attach`` with ``Upgrade: tcp`` hijacks the connection: after the 101 answer it carries stdin
one way and Docker's multiplexed stdout/stderr the other (see ``framing.py``). A plain ``inspect`` tells whether the
container runs and was created with stdin open, so the proxy waits instead of attaching to a dead server.
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
    endpoint: DockerEndpoint, method: str, path: str, extra: list[tuple[str, str]]
) -> tuple[int, Any, asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(endpoint.socket_path, limit=MAX_HEAD_BYTES), API_TIMEOUT
        )
    except (OSError, TimeoutError) as error:
        raise DockerApiError(f"cannot connect to the Docker socket {endpoint.socket_path}: {error}") from None
    headers = [("Host", "docker"), ("User-Agent", "toolhive-apply-proxy"), *extra]
    writer.write(encode_head(f"{method} {path} HTTP/1.1", headers))
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


async def attach_container(endpoint: DockerEndpoint, name: str) -> AttachedStream:
    """Attach to stdin, stdout and stderr of a running container (no TTY: output is multiplexed)."""
    path = f"{await endpoint.prefix()}/containers/{quote(name, safe='')}/attach?stream=1&stdin=1&stdout=1&stderr=1"
    extra = [("Connection", "Upgrade"), ("Upgrade", "tcp"), ("Content-Length", "0")]
    status, headers, reader, writer = await _exchange(endpoint, "POST", path, extra)
    if status in (101, 200):
        return AttachedStream(reader, writer)
    try:
        raise await _error(status, headers, reader, f"attach to container {name}")
    finally:
        writer.close()
