"""Benchmark: tools/call latency through the proxy with no telemetry, a live OTLP collector, a dead one (nothing
listens) and a black hole (accepts connections, never answers), in one run and one process.

Run by hand (not by CI): `python bench/dead_collector.py [--calls 300] [--max-seconds 20]`. No Docker needed: the
real proxy (http mode) runs in process in front of the MCP SDK's own server on loopback, and the real SDK client
calls ``echo`` sequentially in one session per phase, after a warm-up. Tracing samples every request
(samplingRate 1) and metrics are pushed every 100 ms, so the sender thread is as busy as it can be. The claim under
test: exporting never blocks or slows a tool call, so the four medians should agree within noise.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp.client import Client  # noqa: E402

from tests.support.mcp_client import transport_for_url  # noqa: E402
from tests.unit.test_proxy_observe import base_config, free_port, otlp_receiver, proxy, upstream_server  # noqa: E402


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A TCP port that accepts and then says nothing (the collector's sender waits out its timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


async def timed_calls(url: str, calls: int, max_seconds: float) -> list[float]:
    async with Client(transport_for_url(url, 30), read_timeout_seconds=30) as client:
        await client.list_tools()
        for _ in range(10):
            await client.call_tool("echo", {"text": "warm"})
        times: list[float] = []
        deadline = time.monotonic() + max_seconds
        while len(times) < calls and time.monotonic() < deadline:
            started = time.perf_counter()
            await client.call_tool("echo", {"text": "x"})
            times.append(time.perf_counter() - started)
        return times


def telemetry(port: int) -> dict[str, Any]:
    return {
        "endpoint": f"http://127.0.0.1:{port}",
        "tracingEnabled": True,
        "metricsEnabled": True,
        "samplingRate": "1",
        "enablePrometheusMetricsPath": True,
    }


def phase(upstream_port: int, extra: dict[str, Any], calls: int, max_seconds: float) -> list[float]:
    environ = {"OTEL_METRIC_EXPORT_INTERVAL": "100"}
    with proxy(base_config(upstream_port, **extra), environ) as port:
        return anyio.run(timed_calls, f"http://127.0.0.1:{port}/mcp", calls, max_seconds)


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95) - 1] if len(ordered) >= 20 else ordered[-1]
    print(
        f"{name:<14} calls={len(times):<5} median={statistics.median(times) * 1000:7.2f} ms  p95={p95 * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with upstream_server() as upstream, otlp_receiver() as receiver, black_hole() as hole:
        phases = {
            "no telemetry": {},
            "live collector": {"telemetry": telemetry(receiver.port)},
            "dead collector": {"telemetry": telemetry(free_port())},
            "black hole": {"telemetry": telemetry(hole)},
        }
        for name, extra in phases.items():
            report(name, phase(upstream.port, extra, args.calls, args.max_seconds))


if __name__ == "__main__":
    main()
