"""The docker gate decides on data what it lets through, and in process (in front of the fake engine) that a refused
request never reaches the engine and an allowed one reaches it only as a request the gate built itself."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.fake_docker import CONTAINER_ID, SECRET_ENV, FakeEngine
from toolhive_apply.proxy.config import ConfigError, SessionMode
from toolhive_apply.proxy.docker_gate import DockerGate, GateConfig, load_gate_config, scrub_inspect, server_command
from toolhive_apply.proxy.gate_request import GateRefusedError, Operation, parse_request, routes

SHARED = routes("time", {Operation.VERSION, Operation.INSPECT, Operation.ATTACH})
PER_CLIENT = routes("time", {Operation.VERSION, Operation.INSPECT, Operation.SESSION})
UPGRADE = "Connection: Upgrade\r\nUpgrade: tcp\r\n"
ATTACH = "POST /v1.41/containers/time/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1"


def head(line: str, headers: str = "Host: docker\r\n") -> bytes:
    return f"{line}\r\n{headers}\r\n".encode()


@pytest.mark.parametrize(
    ("raw", "table", "operation"),
    [
        (head("GET /version HTTP/1.1"), SHARED, Operation.VERSION),
        (head("GET /v1.41/version HTTP/1.1"), SHARED, Operation.VERSION),
        (head("GET /v1.44/containers/time/json HTTP/1.1", "Host: docker\r\nConnection: close\r\n"), SHARED, "inspect"),
        (head(ATTACH, f"Host: docker\r\n{UPGRADE}Content-Length: 0\r\n"), SHARED, Operation.ATTACH),
        (head("POST /v1.41/containers/time/session HTTP/1.1", f"Host: x\r\n{UPGRADE}"), PER_CLIENT, "session"),
    ],
)
def test_the_requests_the_proxy_sends_are_recognised(raw: bytes, table: dict, operation: str) -> None:  # type: ignore[type-arg]
    assert parse_request(raw, table) == operation


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (head("GET /containers/other/json HTTP/1.1"), 403),  # another container
        (head("GET /containers/time2/json HTTP/1.1"), 403),
        (head("GET /containers/time/../other/json HTTP/1.1"), 403),  # dot segments are not resolved, only refused
        (head("GET /containers/%74ime/json HTTP/1.1"), 403),  # nor percent-encoding
        (head("GET /containers/time/json?size=1 HTTP/1.1"), 403),
        (head("GET /containers/time/json/ HTTP/1.1"), 403),
        (head("POST /containers/time/exec HTTP/1.1", UPGRADE), 403),  # exec create
        (head("POST /containers/create HTTP/1.1"), 403),
        (head("POST /containers/time/start HTTP/1.1"), 403),
        (head("DELETE /containers/time HTTP/1.1"), 403),
        (head("GET /info HTTP/1.1"), 403),
        (head("GET /containers/json HTTP/1.1"), 403),
        (head("GET /v1.41/v1.41/version HTTP/1.1"), 403),
        (head("POST /containers/time/session HTTP/1.1", UPGRADE), 403),  # shared mode: no session
        (head(ATTACH.replace("stderr=1", "stderr=1&logs=1"), UPGRADE), 403),  # replays the log
        (head(ATTACH.replace("stream=1&", "detachKeys=a&stream=1&"), UPGRADE), 403),
        (head("get /version HTTP/1.1"), 403),
        (head("HEAD /version HTTP/1.1"), 403),
        (head("GET http://docker/version HTTP/1.1"), 400),  # absolute form
        (head("GET /version HTTP/1.0"), 400),
        (head("GET  /version HTTP/1.1"), 400),
        (head("GET /version HTTP/1.1 extra"), 400),
        (b"GET /version HTTP/1.1\nHost: docker\n\n", 400),  # bare LF
        (b"GET /version HTTP/1.1\r\nHost: docker\r\nX: a\rb\r\n\r\n", 400),  # bare CR inside a line
        (head("GET /version HTTP/1.1", "Host: do\x00cker\r\n"), 400),  # NUL
        (head("GET /version HTTP/1.1", "Host: docker\r\nX: caf\xe9\r\n"), 400),  # 8-bit
        (head("GET /version HTTP/1.1", "Host: docker\r\nX:\ta\r\n"), 400),  # tab
        (head("GET /version HTTP/1.1", "Host: docker\r\n folded\r\n"), 400),  # obs-fold
        (head("GET /version HTTP/1.1", "Host : docker\r\n"), 400),  # space before the colon
        (head("GET /version HTTP/1.1", "Host: a\r\nhost: b\r\n"), 400),  # a header twice
        (head("GET /version HTTP/1.1", "Transfer-Encoding: chunked\r\n"), 400),
        (head(ATTACH, f"{UPGRADE}Transfer-Encoding: chunked\r\n"), 400),
        (head("GET /version HTTP/1.1", "Content-Length: 5\r\n"), 400),
        (head("GET /version HTTP/1.1", "Content-Length: 00\r\n"), 400),
        (head("GET /version HTTP/1.1", "Expect: 100-continue\r\n"), 400),
        (head("GET /version HTTP/1.1", UPGRADE), 400),  # an upgrade the operation does not have
        (head(ATTACH), 400),  # attach without the upgrade
        (head(ATTACH, "Connection: keep-alive\r\nUpgrade: tcp\r\n"), 400),
        (head(ATTACH, "Connection: Upgrade\r\nUpgrade: h2c\r\n"), 400),
        (b"GET /version HTTP/1.1\r\n" + b"X-A: 1\r\n" * 40 + b"\r\n", 431),
        (b"GET /version HTTP/1.1\r\nHost: docker\r\n", 400),  # no blank line
    ],
)
def test_everything_else_is_refused(raw: bytes, status: int) -> None:
    with pytest.raises(GateRefusedError) as refused:
        parse_request(raw, SHARED)
    assert refused.value.status == status


def test_an_inspect_is_scrubbed_to_what_the_proxy_needs() -> None:
    info = {
        "Id": CONTAINER_ID,
        "Path": "python",
        "Args": ["-m", "server"],
        "State": {"Running": True, "Status": "running", "Pid": 42, "Error": "x"},
        "Config": {"OpenStdin": True, "Tty": False, "Env": [SECRET_ENV], "Labels": {"a": "b"}},
        "HostConfig": {"Binds": ["/:/host"]},
        "Mounts": [{"Source": "/"}],
    }
    assert scrub_inspect(info) == {
        "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False},
        "Config": {"OpenStdin": True, "Tty": False},
    }
    assert scrub_inspect({"State": {"Status": "run\r\nning", "Running": "yes"}, "Config": []})["State"] == {
        "Status": "unknown",
        "Running": False,
        "Paused": False,
        "Restarting": False,
    }
    assert server_command(info) == ["python", "-m", "server"]


def test_the_gate_configuration_is_checked() -> None:
    good = {
        "mode": "docker-gate",
        "name": "t-gate",
        "container": CONTAINER_ID,
        "container_name": "t",
        "listen": "/run/toolhive-gate/docker.sock",
        "docker_socket": "/var/run/docker.sock",
        "session_mode": "per-client",
        "max_processes": 4,
    }
    config = load_gate_config(good)
    assert (config.session_mode, config.max_processes, config.operations()) == (
        SessionMode.PER_CLIENT,
        4,
        {Operation.VERSION, Operation.INSPECT, Operation.SESSION},
    )
    with pytest.raises(ConfigError) as bad:
        load_gate_config({**good, "container": "../x", "listen": "relative", "max_processes": 0, "extra": 1})
    assert len(bad.value.problems) == 4


async def _exchange(path: str, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer.split(b"\r\n\r\n", 1)[1]


def test_in_front_of_an_engine_refusals_never_reach_it_and_answers_are_built_by_the_gate(tmp_path: Path) -> None:
    async def main() -> None:
        engine = FakeEngine(tmp_path / "e.sock")
        await engine.start()
        config = GateConfig("g", CONTAINER_ID, "time", str(tmp_path / "g.sock"), str(engine.socket_path))
        server = await asyncio.start_unix_server(DockerGate(config).handle, path=config.listen, limit=8192)
        try:
            for raw in (
                head("GET /containers/other/json HTTP/1.1"),
                head("POST /containers/create HTTP/1.1", "Content-Length: 2\r\n") + b"{}",
                head("GET /containers/time/json HTTP/1.1", "Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n",
                b"GET /containers/time/json HTTP/1.1\r\nHost: a\r\n\r\nGET /info HTTP/1.1\r\n\r\n",
                b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
                b"GET /version HTTP/1.1\nHost: docker\n\n",  # refused at once, not waited on
            ):
                status, _ = await _exchange(config.listen, raw)
                assert status in (200, 400, 403, 431), raw[:60]
            heads = [h.split(b"\r\n", 1)[0] for h in engine.heads]
            # only the one allowed inspect reached the engine, for the configured id, as the gate wrote it
            assert heads == [b"GET /version HTTP/1.1", f"GET /v1.41/containers/{CONTAINER_ID}/json HTTP/1.1".encode()]
            status, body = await _exchange(config.listen, head("GET /v1.41/containers/time/json HTTP/1.1"))
            assert status == 200 and SECRET_ENV.encode() not in body
            assert json.loads(body) == {
                "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False},
                "Config": {"OpenStdin": True, "Tty": False},
            }
        finally:
            server.close()
            await engine.stop()

    asyncio.run(main())
