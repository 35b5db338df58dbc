"""The whole stdio path in process: the real attach code, backend and hub, through a real docker gate, in front
of a fake Docker engine on a unix socket (``tests/support/fake_docker.py``) that plays scripted MCP servers behind
Docker's attach and exec protocols (101 upgrade, 8-byte frame headers, replies split across frames, stderr output).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support.fake_docker import CONTAINER_ID, INIT_RESULT, FakeEngine
from toolhive_apply.proxy.config import Mode, ProxyConfig, SessionMode, ToolOverride, Transport
from toolhive_apply.proxy.docker_gate import DockerGate, GateConfig
from toolhive_apply.proxy.health import Health, Status
from toolhive_apply.proxy.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, SERVER_UNAVAILABLE
from toolhive_apply.proxy.sessions import ClientSession, SessionHub
from toolhive_apply.proxy.stdio_backend import StdioBackend
from toolhive_apply.proxy.stdio_per_client import PerClientBackend
from toolhive_apply.proxy.tools import ToolPolicy

Scenario = Callable[[FakeEngine, StdioBackend, SessionHub], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, mode: SessionMode = SessionMode.SHARED, max_processes: int = 16) -> None:
    async def main() -> None:
        engine = FakeEngine(tmp_path / "e.sock")
        await engine.start()
        gate_config = GateConfig(
            name="fake-gate",
            container=CONTAINER_ID,  # the gate acts on the id it was made for, whatever the proxy calls it
            container_name="fake",
            listen=str(tmp_path / "g.sock"),
            docker_socket=str(engine.socket_path),
            session_mode=mode,
            max_processes=max_processes,
        )
        gate = await asyncio.start_unix_server(DockerGate(gate_config).handle, path=gate_config.listen)
        config = ProxyConfig(
            name="fake",
            mode=Mode.STDIO,
            proxy_mode=Transport.STREAMABLE_HTTP,
            listen_port=1,
            container="fake",
            docker_socket=gate_config.listen,
            session_mode=mode,
            max_processes=max_processes,
            tools=frozenset({"slow", "visible", "whoami", "shout"}),
            tools_override={"secret": ToolOverride(name="visible")},
        )
        health = Health("fake", "stdio")
        backend = (PerClientBackend if mode is SessionMode.PER_CLIENT else StdioBackend)(config, health)
        hub = SessionHub(backend, ToolPolicy.from_config(config), health)
        backend.is_session = lambda key: key in hub.sessions
        loop_task = asyncio.create_task(backend.run())
        try:
            assert await health.wait_running(5), health.detail
            await asyncio.wait_for(scenario(engine, backend, hub), 10)
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            gate.close()
            await engine.stop()

    asyncio.run(main())


def request(request_id: object, method: str, **params: object) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_the_server_is_initialized_once_and_each_client_is_answered_from_that(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        for _ in range(3):
            session = hub.create()
            reply = await hub.handle(session.id, session, request(1, "initialize", protocolVersion="2025-11-25"))
            assert reply is not None
            assert reply.message["result"]["serverInfo"] == INIT_RESULT["serverInfo"]
            assert reply.message["result"]["protocolVersion"] == "2025-06-18"  # not newer than the server
            await hub.handle(session.id, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        methods = [m.get("method") for m in engine.received]
        assert methods.count("initialize") == 1 and methods.count("notifications/initialized") == 1
        assert engine.received[0]["params"]["capabilities"] == {}

    run(tmp_path, scenario)


def test_progress_server_requests_and_broadcasts_are_routed_sensibly(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        first, second = hub.create(), hub.create()
        first.listeners = second.listeners = 1  # both have an event stream open
        level = await hub.handle(first.id, first, request(0, "logging/setLevel", level="info"))
        assert level is not None and level.message["result"] == {}
        call = request(1, "tools/call", name="slow", _meta={"progressToken": 1})
        replies = await asyncio.gather(hub.handle(first.id, first, call), hub.handle(second.id, second, call))
        assert all(r is not None and r.message["id"] == 1 for r in replies)
        texts = {r.message["result"]["content"][0]["text"] for r in replies if r is not None}
        forwarded = {f"done for {m['id']}" for m in engine.received if m.get("method") == "tools/call"}
        assert texts == forwarded and len(texts) == 2  # each client got one of the two distinct answers
        first_events = [first.outbox.get_nowait() for _ in range(first.outbox.qsize())]
        second_events = [second.outbox.get_nowait() for _ in range(second.outbox.qsize())]
        for events in (first_events, second_events):
            progress = [e for e in events if isinstance(e, dict) and e.get("method") == "notifications/progress"]
            assert [p["params"]["progressToken"] for p in progress] == [1]  # its own progress, original token
        logs = [[e for e in got if e.get("method") == "notifications/message"] for got in (first_events, second_events)]
        assert [len(found) for found in logs] == [2, 0]  # log messages only for who asked for them, from both calls
        assert "logging/setLevel" not in [m.get("method") for m in engine.received]  # never forwarded
        await asyncio.sleep(0.1)  # the answers to the server's own requests are on their way through the gate
        answers = {m["id"]: m for m in engine.received if "id" in m and "method" not in m}
        assert answers["srv-1"]["result"] == {}
        assert answers["srv-2"]["error"]["code"] == METHOD_NOT_FOUND

    run(tmp_path, scenario)


def test_the_tool_policy_applies_on_the_shared_session(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        listed = await hub.handle(session.id, session, request(5, "tools/list"))
        assert listed is not None
        assert [t["name"] for t in listed.message["result"]["tools"]] == ["slow", "visible"]
        refused = await hub.handle(session.id, session, request(6, "tools/call", name="secret"))
        assert refused is not None and refused.message["error"]["message"] == "tool not found: secret"
        assert not any(m.get("params", {}).get("name") == "secret" for m in engine.received)

    run(tmp_path, scenario)


def test_cancellation_reaches_the_server_with_the_proxy_id(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        pending = asyncio.create_task(hub.handle(session.id, session, request("q", "hang")))
        await asyncio.sleep(0.1)
        forwarded = next(m for m in engine.received if m.get("method") == "hang")
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "q", "reason": "x"}}
        await hub.handle(session.id, session, cancel)
        reply = await pending
        assert reply is not None and reply.message["id"] == "q" and "cancelled" in reply.message["error"]["message"]
        await asyncio.sleep(0.1)
        notice = [
            {k: v for k, v in m.items() if k != "_process"}
            for m in engine.received
            if m.get("method") == "notifications/cancelled"
        ]
        assert notice == [
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": forwarded["id"], "reason": "x"},
            }
        ]

    run(tmp_path, scenario)


def test_a_dropped_attachment_fails_pending_requests_at_once_and_is_re_attached(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        pending = asyncio.create_task(hub.handle(session.id, session, request(1, "hang")))
        await asyncio.sleep(0.1)
        engine.drop_attachments()
        reply = await asyncio.wait_for(pending, 2)
        assert reply is not None and reply.unavailable and reply.message["error"]["code"] == SERVER_UNAVAILABLE
        deadline = asyncio.get_running_loop().time() + 5
        while (backend.attach_count < 2 or backend._health.status is not Status.RUNNING) and (
            asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
        assert backend.attach_count == 2 and engine.attaches == 2
        listed = await hub.handle(session.id, session, request(2, "tools/list"))
        assert listed is not None and "result" in listed.message
        assert [m.get("method") for m in engine.received].count("initialize") == 2

    run(tmp_path, scenario)


def events_of(session: ClientSession) -> list[dict[str, Any]]:
    """Everything queued for a session's event stream so far."""
    return [m for m in (session.outbox.get_nowait() for _ in range(session.outbox.qsize())) if isinstance(m, dict)]


def shout(text: str, request_id: int = 9) -> dict[str, Any]:
    return request(request_id, "tools/call", name="shout", arguments={"text": text})


def test_shared_log_levels_are_each_clients_own_and_never_reach_the_server(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        quiet, verbose, silent = hub.create(), hub.create(), hub.create()
        quiet.listeners = verbose.listeners = silent.listeners = 1
        for session, level in ((quiet, "error"), (verbose, "debug")):
            reply = await hub.handle(session.id, session, request(1, "logging/setLevel", level=level))
            assert reply is not None and reply.message == {"jsonrpc": "2.0", "id": 1, "result": {}}
        bad = await hub.handle(quiet.id, quiet, request(2, "logging/setLevel", level="loud"))
        assert bad is not None and bad.message["error"]["code"] == INVALID_PARAMS
        await hub.handle(quiet.id, quiet, shout("quiet's arguments"))
        got = {name: events_of(s) for name, s in (("quiet", quiet), ("verbose", verbose), ("silent", silent))}
        messages = {
            name: [e["params"]["data"] for e in found if e["method"] == "notifications/message"]
            for name, found in got.items()
        }
        assert messages == {"quiet": [], "verbose": ["quiet's arguments"], "silent": []}
        assert "logging/setLevel" not in [m.get("method") for m in engine.received]

    run(tmp_path, scenario)


def test_shared_subscriptions_are_counted_and_updates_go_to_subscribers_only(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        first, second, other = hub.create(), hub.create(), hub.create()
        first.listeners = second.listeners = other.listeners = 1
        for session in (first, second):
            reply = await hub.handle(session.id, session, request(1, "resources/subscribe", uri="file:///a"))
            assert reply is not None and reply.message["result"] == {}
        sent = [m.get("method") for m in engine.received]
        assert sent.count("resources/subscribe") == 1
        await hub.handle(other.id, other, shout("file:///a"))
        updated = {
            name: [e["params"]["uri"] for e in events_of(s) if e["method"] == "notifications/resources/updated"]
            for name, s in (("first", first), ("second", second), ("other", other))
        }
        assert updated == {"first": ["file:///a"], "second": ["file:///a"], "other": []}
        await hub.handle(second.id, second, request(2, "resources/unsubscribe", uri="file:///a"))
        assert "resources/unsubscribe" not in [m.get("method") for m in engine.received]  # first still wants it
        hub.close(first.id)  # the last subscriber's session ends: the server is told
        await asyncio.sleep(0.2)
        assert [m.get("params") for m in engine.received if m.get("method") == "resources/unsubscribe"] == [
            {"uri": "file:///a"}
        ]

    run(tmp_path, scenario)


def test_a_restarted_shared_server_is_subscribed_again(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        await hub.handle(session.id, session, request(1, "resources/subscribe", uri="file:///b"))
        engine.drop_attachments()
        deadline = asyncio.get_running_loop().time() + 5
        while engine.attaches < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        subscribed = [(m["_process"], m["params"]) for m in engine.received if m.get("method") == "resources/subscribe"]
        assert subscribed == [("attach", {"uri": "file:///b"})] * 2

    run(tmp_path, scenario)


def test_per_client_sessions_each_get_their_own_process_and_only_their_own_notifications(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        first, second = hub.create(), hub.create()
        first.listeners = second.listeners = 1
        for session in (first, second):
            reply = await hub.handle(session.id, session, request(1, "initialize", protocolVersion="2025-06-18"))
            assert reply is not None and reply.message["result"]["serverInfo"] == INIT_RESULT["serverInfo"]
        whoami = request(2, "tools/call", name="whoami")
        identities = []
        for session in (first, second):
            reply = await hub.handle(session.id, session, whoami)
            assert reply is not None
            identities.append(reply.message["result"]["content"][0]["text"])
        assert identities[0] != identities[1] and all(i.startswith("exec") for i in identities)
        assert engine.attaches == 0  # never the container's own process
        await hub.handle(first.id, first, request(3, "logging/setLevel", level="debug"))
        await hub.handle(first.id, first, shout("first's arguments"))
        assert [e["params"]["data"] for e in events_of(first) if e["method"] == "notifications/message"] == [
            "first's arguments"
        ]
        assert events_of(second) == []
        set_level = [m["_process"] for m in engine.received if m.get("method") == "logging/setLevel"]
        assert set_level == [identities[0]]  # forwarded, to first's own process only
        await hub.handle(first.id, first, {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})
        hub.close(first.id)
        deadline = asyncio.get_running_loop().time() + 5
        while engine.execs[identities[0]] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert engine.execs == {"exec1": False, identities[0]: False, identities[1]: True}  # exec1: the probe
        assert "notifications/roots/list_changed" not in [m.get("method") for m in engine.received]

    run(tmp_path, scenario, mode=SessionMode.PER_CLIENT)


def test_per_client_processes_are_bounded_and_a_closed_session_frees_its_slot(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        sessions = [hub.create() for _ in range(3)]
        replies = [await hub.handle(s.id, s, request(1, "tools/call", name="whoami")) for s in sessions]
        assert [r is not None and "result" in r.message for r in replies] == [True, True, False]
        refused = replies[2]
        assert refused is not None and refused.unavailable and "in use" in refused.message["error"]["message"]
        hub.close(sessions[0].id)
        await asyncio.sleep(0.2)
        again = await hub.handle(sessions[2].id, sessions[2], request(2, "tools/call", name="whoami"))
        assert again is not None and "result" in again.message, again

    run(tmp_path, scenario, mode=SessionMode.PER_CLIENT, max_processes=2)


def test_the_per_client_server_is_unavailable_while_its_container_is_down(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        engine.running = False
        reply = await hub.handle(session.id, session, request(1, "tools/call", name="whoami"))
        assert reply is not None and reply.unavailable and reply.message["error"]["code"] == SERVER_UNAVAILABLE
        assert "not running" in reply.message["error"]["message"]
        deadline = asyncio.get_running_loop().time() + 2  # the failed start made the proxy look at once
        while backend._health.status is Status.RUNNING and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert backend._health.status is Status.UNHEALTHY

    run(tmp_path, scenario, mode=SessionMode.PER_CLIENT)


def test_per_client_mode_refuses_requests_without_a_session_without_starting_a_process(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        before = dict(engine.execs)
        reply = await hub.handle("nosession-1", None, request(0, "server/discover"))
        assert reply is not None and reply.message["error"]["code"] == METHOD_NOT_FOUND  # clients fall back
        assert engine.execs == before

    run(tmp_path, scenario, mode=SessionMode.PER_CLIENT)
