"""The gateway's stdio backend (``proxy/vmcp_stdio.py``) in process: the real attach code through a real docker gate,
in front of the fake Docker engine (``tests/support/fake_docker.py``), aggregated like any HTTP backend, and back
after the container's streams end (a restart) with no help from outside."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support.fake_docker import CONTAINER_ID, FakeEngine
from tests.unit.test_vmcp_gateway import call, tool_names, wait_for
from toolhive_apply.proxy.docker_gate import DockerGate, GateConfig
from toolhive_apply.proxy.health import Health
from toolhive_apply.proxy.vmcp_app import Gateway
from toolhive_apply.proxy.vmcp_config import BackendSpec, VmcpConfig, parse_vmcp
from toolhive_apply.proxy.vmcp_stdio import StdioBackendClient

Scenario = Callable[[Gateway, FakeEngine], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        engine = FakeEngine(tmp_path / "e.sock")
        await engine.start()
        listen = str(tmp_path / "g.sock")
        gate_config = GateConfig(
            name="fake-gate",
            container=CONTAINER_ID,
            container_name="fake",  # the backend's name is the workload's: the one name its gate lets through
            listen=listen,
            docker_socket=str(engine.socket_path),
        )
        gate = await asyncio.start_unix_server(DockerGate(gate_config).handle, path=listen)
        config = VmcpConfig((BackendSpec("fake", docker_socket=listen),), list_timeout=6.0, refresh_interval=60.0)
        gateway = Gateway("lab", config, Health("lab", "vmcp"))
        runner = asyncio.create_task(gateway.run())
        try:
            await asyncio.wait_for(scenario(gateway, engine), 20)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            gate.close()
            await engine.stop()

    asyncio.run(main())


def test_a_stdio_backend_is_listed_and_called_through_its_gate_like_an_http_one(tmp_path: Path) -> None:
    async def scenario(gateway: Gateway, engine: FakeEngine) -> None:
        await wait_for(lambda: _listed(gateway, ["fake_secret", "fake_slow"]), "the stdio backend's tools")
        delivered: list[tuple[str | None, dict[str, Any]]] = []
        gateway.listener = lambda client, message: delivered.append((client, message))
        meta = {"_meta": {"progressToken": "t1"}}
        answer = await call(gateway, "tools/call", {"name": "slow", "arguments": {}, **meta}, rid=3)
        assert "result" not in answer  # unprefixed: not the gateway's name for it
        answer = await call(gateway, "tools/call", {"name": "fake_slow", "arguments": {}, **meta}, rid=3)
        assert answer["id"] == 3 and answer["result"]["content"][0]["text"].startswith("done for ")
        progress = [m for c, m in delivered if m.get("method") == "notifications/progress" and c == "client"]
        assert progress and progress[0]["params"]["progressToken"] == "t1"
        assert engine.attaches == 1  # one shared attach for every call

    run(tmp_path, scenario)


def test_the_stdio_backend_reattaches_after_its_container_restarts(tmp_path: Path) -> None:
    async def scenario(gateway: Gateway, engine: FakeEngine) -> None:
        await wait_for(lambda: _listed(gateway, ["fake_secret", "fake_slow"]), "the stdio backend's tools")
        engine.drop_attachments()  # as a `docker restart` ends every attach stream
        await wait_for(lambda: _attached(engine, 2), "a second attach")
        await wait_for(lambda: _answers(gateway), "a call after the re-attach")
        client = gateway.backends["fake"].client
        assert isinstance(client, StdioBackendClient) and client.attach_count == 2

    run(tmp_path, scenario)


def test_a_gateway_backend_is_a_url_or_a_gate_socket_never_both(tmp_path: Path) -> None:
    problems: list[str] = []
    raw = {
        "backends": [
            {"name": "a", "docker_socket": "/run/toolhive-gates/a/docker.sock"},
            {"name": "b", "url": "http://b:1/mcp"},
        ]
    }
    parsed = parse_vmcp(raw, problems)
    assert parsed is not None and not problems
    assert [(b.name, b.stdio) for b in parsed.backends] == [("a", True), ("b", False)]
    bad = {
        "backends": [
            {"name": "a", "docker_socket": "rel.sock"},
            {"name": "b", "url": "http://b/", "docker_socket": "/s"},
        ]
    }
    assert parse_vmcp(bad, problems) is None
    assert any("docker_socket: must be an absolute path" in p for p in problems)
    assert any("exactly 'name' and one of 'url' or 'docker_socket'" in p for p in problems)


async def _listed(gateway: Gateway, names: list[str]) -> bool:
    return sorted(await tool_names(gateway)) == names


async def _attached(engine: FakeEngine, count: int) -> bool:
    return engine.attaches >= count


async def _answers(gateway: Gateway) -> bool:
    answer = await call(gateway, "tools/call", {"name": "fake_slow", "arguments": {}, "_meta": {"progressToken": 1}})
    return "result" in answer
