"""Readiness learns deaths from the engine's event stream: one inspect per container while nothing happens, the same
crash report as the old polling when one dies, and polling again when the stream cannot be had (issue #20)."""

from __future__ import annotations

import queue
import socket
import threading
from typing import Any

import docker.errors

from toolhive_apply.providers.workload.readiness import wait_running, wait_until_ready
from toolhive_apply.providers.workload.spec_model import WorkloadSpec

SERVER = "a" * 64
PROXY = "b" * 64


class Stream:
    """What docker-py's events(decode=True) returns: an iterator of dicts, ended by close()."""

    def __init__(self) -> None:
        self.items: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> dict[str, Any]:
        item = self.items.get()
        if item is None:
            raise StopIteration
        return item

    def close(self) -> None:
        self.items.put(None)


class FakeEngine:
    def __init__(self, events_fail: bool = False) -> None:
        self.states = {c: {"Status": "running", "Running": True, "ExitCode": 0} for c in (SERVER, PROXY)}
        self.inspects = 0
        self.events_fail = events_fail
        self.stream = Stream()
        self.filters: dict[str, Any] = {}
        self.lock = threading.Lock()

    def events(self, filters: dict[str, Any], decode: bool) -> Stream:
        if self.events_fail:
            raise docker.errors.APIError("events not allowed here")
        assert decode
        self.filters = filters
        return self.stream

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        with self.lock:
            self.inspects += 1
            return {"State": dict(self.states[container_id]), "RestartCount": 0, "Name": f"/{container_id[:4]}"}

    def logs(self, container_id: str, **_: Any) -> bytes:
        return b"boom\n"

    def die(self, container_id: str, code: int) -> None:
        with self.lock:
            self.states[container_id] = {"Status": "exited", "Running": False, "ExitCode": code}
        self.stream.items.put({"Type": "container", "status": "die", "id": container_id})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed: the MCP probe never answers


def spec() -> WorkloadSpec:
    return WorkloadSpec.from_document(
        {"name": "w", "host": "127.0.0.1", "proxy_port": closed_port(), "proxy_mode": "streamable-http"}
    )


def test_while_nothing_dies_each_container_is_inspected_once_and_the_stream_is_filtered_on_them() -> None:
    engine = FakeEngine()
    problem = wait_until_ready(engine, [(SERVER, 0), (PROXY, 0)], spec(), timeout=1.0)  # type: ignore[arg-type]
    assert problem is not None and "not ready after 1 s" in problem
    assert engine.inspects == 2  # one per container, none per poll (the log tail is not an inspect)
    assert engine.filters["container"] == [SERVER, PROXY] and "die" in engine.filters["event"]


def test_a_death_seen_on_the_stream_is_reported_with_its_exit_code_and_log() -> None:
    engine = FakeEngine()
    threading.Timer(0.3, engine.die, (SERVER, 3)).start()
    problem = wait_until_ready(engine, [(SERVER, 0), (PROXY, 0)], spec(), timeout=10.0)  # type: ignore[arg-type]
    assert problem is not None
    assert problem.startswith("aaaa exited with code 3 before it was ready"), problem
    assert "boom" in problem


def test_without_an_event_stream_every_poll_inspects_as_before() -> None:
    engine = FakeEngine(events_fail=True)
    threading.Timer(0.6, engine.die, (PROXY, 1)).start()
    problem = wait_running(engine, [(SERVER, 0), (PROXY, 0)], timeout=0.3)  # type: ignore[arg-type]
    assert problem is None  # both run: no stream needed to say so
    problem = wait_until_ready(engine, [(SERVER, 0), (PROXY, 0)], spec(), timeout=5.0)  # type: ignore[arg-type]
    assert problem is not None and problem.startswith("bbbb exited with code 1"), problem
    assert engine.inspects > 4  # polled: the death was found without any event
