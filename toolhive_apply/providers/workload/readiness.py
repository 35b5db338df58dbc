"""Waiting until a workload really serves: the container runs and, over HTTP, MCP `initialize` answers.

Every wait has a deadline, and a failure carries the last lines of the container's log so the user
sees why the server did not come up.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import docker.errors

from toolhive_apply.providers.docker.client import CountingAPIClient
from toolhive_apply.providers.workload.death_watch import DeathWatch
from toolhive_apply.providers.workload.spec import client_host
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.redact import redact

POLL_SECONDS = 0.25
FIRST_POLLS = 0.05
"""The first second is polled this often: a proxy usually answers within it (measured for issue #20: a one-changed
apply waited 0.125 s on average for the next 0.25 s poll), and a loopback `initialize` costs nothing of the engine."""
FIRST_POLL_WINDOW = 1.0
LOG_LINES = 10

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "toolhive-apply", "version": "readiness"},
    },
}


def _log_tail(api: CountingAPIClient, container_id: str) -> str:
    """The last lines the container wrote, scrubbed as raw text BEFORE they are split and re-indented: a
    multi-line secret (a PEM key, a JSON credentials file) printed by the server is only whole here."""
    try:
        raw = api.logs(container_id, stdout=True, stderr=True, tail=LOG_LINES)
    except docker.errors.APIError:
        return ""
    text = redact(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()
    return "\n  last log lines:\n    " + "\n    ".join(text.splitlines()[-LOG_LINES:]) if text else ""


def _state(api: CountingAPIClient, container_id: str) -> dict[str, Any]:
    """The container's State, plus its RestartCount (which Docker keeps beside State, not in it)."""
    inspected = api.inspect_container(container_id)
    return {**inspected["State"], "RestartCount": int(inspected.get("RestartCount", 0)), "Name": inspected["Name"]}


def _probe(connection: http.client.HTTPConnection, proxy_mode: str) -> int:
    """The status of the MCP endpoint's answer. A streamable session the probe opened is ended again (DELETE, as
    MCP clients end theirs), so readiness checks leave no session behind in the proxy or the server."""
    if proxy_mode == "sse":
        connection.request("GET", "/sse", headers={"Accept": "text/event-stream"})
        return connection.getresponse().status  # the SSE session ends when the connection closes
    connection.request(
        "POST",
        "/mcp",
        body=json.dumps(INITIALIZE),
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    response = connection.getresponse()
    response.read(65536)
    session = response.getheader("Mcp-Session-Id")
    if response.status == 200 and session:
        _end_session(connection, session)
    return response.status


def _end_session(connection: http.client.HTTPConnection, session: str) -> None:
    try:
        connection.request("DELETE", "/mcp", headers={"Mcp-Session-Id": session})
        connection.getresponse().read(65536)
    except (OSError, http.client.HTTPException, ValueError):
        pass  # best effort: the session expires with the proxy's session TTL anyway


def http_answers(host: str, port: int, proxy_mode: str, timeout: float = 2.0, authenticated: bool = False) -> bool:
    """True when the MCP endpoint answers: `initialize` on /mcp, or an event stream on /sse. An endpoint with OIDC
    cannot be initialized without a token (and apply has none): there the proxy's own /health must say its server
    is up, and MCP must answer with the 401 challenge."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if authenticated:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read(65536)
            if response.status != 200:
                return False
        status = _probe(connection, proxy_mode)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return status == (401 if authenticated else 200)


def _crashed(state: dict[str, Any], restarts_before: int) -> bool:
    """Exited, or brought back by the restart policy since we started waiting: either way it crashed."""
    if state.get("Status") in ("exited", "dead"):
        return True
    return bool(state.get("Restarting")) or int(state.get("RestartCount", 0)) > restarts_before


def _died(state: dict[str, Any], restarts_before: int) -> str:
    if state.get("Status") in ("exited", "dead"):
        return f"exited with code {state.get('ExitCode')}"
    times = max(1, int(state.get("RestartCount", 0)) - restarts_before)
    return f"exited and was restarted by Docker {times} time(s)"


class _Unit:
    """The containers of one wait and what is known of them: inspected once at the start, then again only when the
    event stream says one died (or on every poll while the stream is broken, or while one is not running yet)."""

    def __init__(self, api: CountingAPIClient, containers: list[tuple[str, int]]) -> None:
        self.api = api
        self.containers = containers
        self.watch = DeathWatch(api, [c for c, _ in containers])
        self.running: dict[str, bool] = {}

    def _reported_dead(self, container_id: str, dead: list[str]) -> bool:
        return any(d == container_id or d.startswith(container_id) for d in dead)

    def problem(self) -> str | None:
        """Why the unit cannot become ready (a container crashed), or None; updates `running`."""
        dead = self.watch.dead()
        for container_id, restarts_before in self.containers:
            died = self._reported_dead(container_id, dead)
            if container_id in self.running and self.running[container_id] and not died and not self.watch.broken:
                continue  # known running, and the stream has not said otherwise: no inspect
            state = _state(self.api, container_id)
            if died or _crashed(state, restarts_before):
                name = str(state.get("Name", "")).lstrip("/") or "container"
                return f"{name} {_died(state, restarts_before)} before it was ready{_log_tail(self.api, container_id)}"
            self.running[container_id] = bool(state.get("Running"))
        return None

    def all_running(self) -> bool:
        return all(self.running.get(c, False) for c, _ in self.containers)


def wait_until_ready(
    api: CountingAPIClient, containers: list[tuple[str, int]], spec: WorkloadSpec, timeout: float
) -> str | None:
    """None when the workload answers MCP through its proxy; otherwise a reason with the log tail.

    `containers` are (id, restart count before we started it) for the server and its proxy: a crash that the
    restart policy hides is still seen, as a die event or as a higher count.
    """
    started = time.monotonic()
    deadline = started + timeout
    host = client_host(spec)  # where clients connect: the same rule as their config files
    authenticated = (spec.endpoint or {}).get("auth") == "oidc"
    unit = _Unit(api, containers)
    try:
        while time.monotonic() < deadline:
            problem = unit.problem()
            if problem is not None:
                return problem
            if unit.all_running() and http_answers(
                host, int(spec.proxy_port), str(spec.proxy_mode), authenticated=authenticated
            ):
                return None
            time.sleep(_poll_delay(time.monotonic() - started))
    finally:
        unit.watch.close()
    server = containers[0][0]
    return f"MCP endpoint on {host}:{spec.proxy_port} not ready after {timeout:g} s{_log_tail(api, server)}"


def wait_running(api: CountingAPIClient, containers: list[tuple[str, int]], timeout: float) -> str | None:
    """None once every container runs (a unit with no published MCP port: served through a vMCP gateway only)."""
    started = time.monotonic()
    deadline = started + timeout
    unit = _Unit(api, containers)
    try:
        while time.monotonic() < deadline:
            problem = unit.problem()
            if problem is not None:
                return problem
            if unit.all_running():
                return None
            time.sleep(_poll_delay(time.monotonic() - started))
    finally:
        unit.watch.close()
    return f"containers not running after {timeout:g} s"


def _poll_delay(waited: float) -> float:
    return FIRST_POLLS if waited < FIRST_POLL_WINDOW else POLL_SECONDS
