"""Benchmark: tools/call through the proxy container vs a direct stdio session with the same server, in one run.

Run by hand (not by CI): `python bench/proxy_overhead.py [--calls 200] [--max-seconds 30] [--clients 4]`.
It needs the local test images (`python tests/images/build_images.py`) and a Docker engine.

Both sides use the real MCP SDK client on the handshake protocol (``mode="legacy"``) and call
``get_current_time(timezone="UTC")`` of mcp-server-time sequentially in one session, after a warm-up:
* direct: ``stdio_client`` over ``docker run -i --rm --network none toolhive-apply-test/time:latest``;
* proxy: streamable HTTP to the proxy container (stdio mode, attached through its docker gate), which
  multiplexes the same kind of server; plus a run with several concurrent client sessions through the proxy.
Each phase stops after ``--calls`` calls or ``--max-seconds``, whichever comes first. Everything created is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import docker.errors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp.client import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from tests.support.mcp_client import wait_until_ready  # noqa: E402
from toolhive_apply.providers.docker.client import connect  # noqa: E402
from toolhive_apply.providers.workload.create_args import GATE_SOCKET, HELPER_USER, gate_host_config_args, gate_volume  # noqa: E402
from toolhive_apply.providers.workload.proxy_image import ensure_proxy_image  # noqa: E402

PYTHON_IMAGE = "toolhive-apply-test/python:latest"
TIME_IMAGE = "toolhive-apply-test/time:latest"
SOCKET = "/var/run/docker.sock"
WARMUP = 5
ARGS = {"timezone": "UTC"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def timed_calls(client: Client, calls: int, deadline: float) -> list[float]:
    """Latencies (s) of up to ``calls`` sequential tool calls, stopping at ``deadline`` (monotonic)."""
    for _ in range(WARMUP):
        await client.call_tool("get_current_time", ARGS)
    latencies: list[float] = []
    while len(latencies) < calls and time.monotonic() < deadline:
        started = time.perf_counter()
        result = await client.call_tool("get_current_time", ARGS)
        latencies.append(time.perf_counter() - started)
        assert not result.is_error, result
    return latencies


def run_session(connect_client: Callable[[], Client], calls: int, seconds: float) -> tuple[list[float], float]:
    async def main() -> tuple[list[float], float]:
        async with connect_client() as client:
            started = time.perf_counter()
            latencies = await timed_calls(client, calls, time.monotonic() + seconds)
            return latencies, time.perf_counter() - started

    return anyio.run(main)


def run_concurrent(url: str, clients: int, calls: int, seconds: float) -> tuple[list[float], float]:
    """``clients`` sessions through the proxy at once; wall time covers the timed calls of all of them."""

    async def main() -> tuple[list[float], float]:
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def one() -> None:
            async with Client(streamable_http_client(url), mode="legacy") as client:
                latencies.extend(await timed_calls(client, calls // clients, deadline))

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(one)
        return latencies, time.perf_counter() - started

    return anyio.run(main)


def row(name: str, latencies: list[float], wall: float) -> str:
    if not latencies:
        return f"| {name} | 0 | - | - | - |"
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    rate = len(latencies) / wall
    median = statistics.median(latencies) * 1000
    return f"| {name} | {len(latencies)} | {rate:.0f} | {median:.2f} | {p95 * 1000:.2f} |"


class Stack:
    """The proxy image, a network, the time server and the proxy container; ``close`` removes them."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.prefix = f"thvbench-{uuid.uuid4().hex[:6]}"
        self.image = ensure_proxy_image(api, PYTHON_IMAGE, tag=f"toolhive-apply-bench/proxy:{self.prefix}")
        self.port = free_port()
        self.names = [f"{self.prefix}-time", f"{self.prefix}-proxy", f"{self.prefix}-gate"]
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        api = self.api
        api.create_network(f"{self.prefix}-net")
        config = {
            "name": "bench",
            "mode": "stdio",
            "listen_port": 8080,
            "container": self.names[0],
            "docker_socket": GATE_SOCKET,
        }
        server = api.create_container(
            TIME_IMAGE,
            name=self.names[0],
            stdin_open=True,
            detach=True,
            host_config=api.create_host_config(network_mode=f"{self.prefix}-net"),
        )
        api.create_container(
            self.image,
            name=self.names[1],
            environment={"THV_PROXY_CONFIG": json.dumps(config)},
            ports=[8080],
            host_config=api.create_host_config(
                network_mode=f"{self.prefix}-net",
                port_bindings={8080: ("127.0.0.1", self.port)},
                mounts=[gate_volume()],
                read_only=True,
                cap_drop=["ALL"],
            ),
        )
        gate = {  # as the engine lays a stdio workload out: the proxy reaches the server through its docker gate
            "name": self.names[2],
            "mode": "docker-gate",
            "container": server["Id"],
            "container_name": self.names[0],
            "listen": GATE_SOCKET,
            "docker_socket": SOCKET,
        }
        gate_host = gate_host_config_args((SOCKET, os.stat(SOCKET).st_gid), self.names[1])
        api.create_container(
            self.image,
            name=self.names[2],
            user=HELPER_USER,
            environment={"THV_PROXY_CONFIG": json.dumps(gate)},
            host_config=api.create_host_config(**gate_host),
        )
        for name in self.names:
            api.start(name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def close(self) -> None:
        """Remove whatever exists of the stack (also after a partial set-up)."""
        for remove in (
            *(lambda name=name: self.api.remove_container(name, force=True, v=True) for name in self.names),
            lambda: self.api.remove_network(f"{self.prefix}-net"),
            lambda: self.api.remove_image(self.image, force=True),
        ):
            with contextlib.suppress(docker.errors.APIError):
                remove()


def measure(label: str, action: Callable[[], tuple[list[float], float]]) -> tuple[list[float], float]:
    print(f"[bench] {label} ...", file=sys.stderr, flush=True)
    return action()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per phase (default 200)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time bound per phase (default 30)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent sessions in the last phase (default 4)")
    args = parser.parse_args()

    api = connect()
    stack = Stack(api)
    try:
        wait_until_ready(stack.url, timeout=60)
        direct_command = ["docker", "run", "-i", "--rm", "--network", "none", TIME_IMAGE]
        params = StdioServerParameters(command=direct_command[0], args=direct_command[1:])
        direct = measure(
            "direct stdio",
            lambda: run_session(lambda: Client(stdio_client(params), mode="legacy"), args.calls, args.max_seconds),
        )
        proxied = measure(
            "through the proxy",
            lambda: run_session(
                lambda: Client(streamable_http_client(stack.url), mode="legacy"), args.calls, args.max_seconds
            ),
        )
        concurrent = measure(
            f"{args.clients} clients through the proxy",
            lambda: run_concurrent(stack.url, args.clients, args.calls, args.max_seconds),
        )
    finally:
        stack.close()

    print("| path | calls | calls/s | median ms | p95 ms |")
    print("|---|---|---|---|---|")
    print(row("direct stdio session (docker run -i)", *direct))
    print(row("proxy container, 1 session (streamable HTTP)", *proxied))
    print(row(f"proxy container, {args.clients} concurrent sessions", *concurrent))
    overhead = (statistics.median(proxied[0]) - statistics.median(direct[0])) * 1000 if proxied[0] and direct[0] else 0
    print(f"\nmedian overhead per call through the proxy: {overhead:+.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
