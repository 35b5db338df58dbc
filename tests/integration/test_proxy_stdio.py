"""The proxy container in front of a real stdio MCP server (mcp-server-time), driven by the real MCP SDK client.

Each test runs the time server and the proxy on a private bridge network, the proxy reaching the server through its
docker gate (the only container with the Docker socket, with no network), read-only, without capabilities,
non-root, published on 127.0.0.1 only. The last tests apply real stacks and look at the layout from inside: what
the proxy may ask its gate, and that a stdio server cannot reach its proxy.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE, TIME_IMAGE, run_cli, write_manifest
from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import Proxy, ProxyStack, ready
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.proxy.jsonrpc import SERVER_UNAVAILABLE

# The shared fixtures, bound here so pytest finds them for this module.
proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

TIME_TOOLS = {"get_current_time", "convert_time"}
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
).encode()
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def stdio_proxy(stack: ProxyStack, **config: Any) -> Proxy:
    server = stack.start_stdio_server()
    return stack.start_proxy({"name": server, "mode": "stdio", "container": server, **config}, socket_access=True)


def utc_now(url: str, tool: str = "get_current_time", timezone: str = "UTC") -> dict[str, Any]:
    return dict(json.loads(call_tool(url, tool, {"timezone": timezone})))


def test_the_sdk_client_lists_and_calls_tools_over_streamable_http(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    assert set(ready(proxy, proxy_stack)) == TIME_TOOLS
    assert utc_now(proxy.url())["timezone"] == "UTC"
    status, health = proxy.health()
    assert (status, health["status"], health["server"]["name"]) == (200, "running", "mcp-time")
    assert health["sessions"] == 0  # the SDK client ends its session with DELETE
    settings = proxy_stack.api.inspect_container(proxy.name)
    assert settings["Config"]["User"] == "65532:65532"
    assert settings["HostConfig"]["ReadonlyRootfs"] is True
    assert settings["HostConfig"]["CapDrop"] == ["ALL"]
    assert settings["NetworkSettings"]["Ports"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(proxy.port)}]
    assert_no_docker_access(settings)


def test_the_sdk_client_lists_and_calls_tools_over_legacy_sse(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack, proxy_mode="sse")
    url = proxy.url("/sse") + f"#{proxy.name}"  # the URL shape ToolHive gives clients
    assert set(ready(proxy, proxy_stack, path="/sse")) == TIME_TOOLS
    assert json.loads(call_tool(url, "get_current_time", {"timezone": "Asia/Tokyo"}))["timezone"] == "Asia/Tokyo"
    assert proxy.health()[0] == 200


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_concurrent_clients_never_get_each_others_answers(proxy_stack: ProxyStack, path: str) -> None:
    proxy = stdio_proxy(proxy_stack, proxy_mode="sse" if path == "/sse" else "streamable-http")
    ready(proxy, proxy_stack, path=path)
    zones = ["Europe/Paris", "Asia/Tokyo", "America/New_York", "UTC"]
    results: dict[str, list[str]] = {zone: [] for zone in zones}
    errors: list[BaseException] = []

    def client(zone: str) -> None:
        try:
            for _ in range(5):
                results[zone].append(utc_now(proxy.url(path), timezone=zone)["timezone"])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(zone,)) for zone in zones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert results == {zone: [zone] * 5 for zone in zones}


def test_renamed_and_filtered_tools_are_what_the_sdk_client_sees(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(
        proxy_stack,
        tools=["now"],
        tools_override={"get_current_time": {"name": "now", "description": "The time, now."}},
    )
    assert ready(proxy, proxy_stack) == ["now"]
    assert utc_now(proxy.url(), tool="now")["timezone"] == "UTC"
    for hidden in ("convert_time", "get_current_time"):
        with pytest.raises(Exception, match=f"tool not found: {hidden}"):
            call_tool(proxy.url(), hidden, {"timezone": "UTC"})
    listed = json.loads(_raw_tools_list(proxy))
    assert [(t["name"], t["description"]) for t in listed["result"]["tools"]] == [("now", "The time, now.")]


def _raw_tools_list(proxy: Proxy) -> bytes:
    status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
    assert status == 200
    session = {**JSON_HEADERS, "Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
    body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()
    status, _, answer = proxy.request("POST", "/mcp", body, session)
    assert status == 200
    return answer


def test_restarting_the_server_and_then_the_proxy_heals_without_any_manual_step(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    server = proxy_stack.containers[0]
    ready(proxy, proxy_stack)
    assert proxy.health()[1]["attachments"] == 1

    proxy_stack.api.restart(server, timeout=5)
    assert set(ready(proxy, proxy_stack, timeout=30)) == TIME_TOOLS
    assert utc_now(proxy.url())["timezone"] == "UTC"
    assert proxy.wait_health("running")["attachments"] == 2  # re-attached and re-initialized the new process

    proxy_stack.api.restart(proxy.name, timeout=5)
    assert set(ready(proxy, proxy_stack, timeout=30)) == TIME_TOOLS  # same published port, same server process
    assert utc_now(proxy.url())["timezone"] == "UTC"


def test_health_follows_the_server_and_requests_fail_fast_while_it_is_down(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    server = proxy_stack.containers[0]
    ready(proxy, proxy_stack)
    assert proxy.health()[0] == 200

    proxy_stack.api.stop(server, timeout=5)
    down = proxy.wait_health("unhealthy", timeout=15)
    assert "not running" in down["detail"] or "detached" in down["detail"]
    assert proxy.health()[0] == 503
    started = time.monotonic()
    status, headers, body = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
    assert time.monotonic() - started < 7
    assert status == 503 and "mcp-session-id" not in headers
    assert json.loads(body)["error"]["code"] == SERVER_UNAVAILABLE

    proxy_stack.api.start(server)
    proxy.wait_health("running", timeout=30)
    assert set(list_tools(proxy.url())) == TIME_TOOLS


def test_origins_body_size_and_sessions_are_enforced_on_the_wire(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack, max_body_bytes=4096)
    ready(proxy, proxy_stack)

    status, _, body = proxy.request("POST", "/mcp", INITIALIZE, {**JSON_HEADERS, "Origin": "http://evil.example"})
    assert status == 403 and b"origin" in body
    status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, {**JSON_HEADERS, "Origin": "http://localhost:6274"})
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:6274"

    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 5000}}).encode()
    status, _, body = proxy.request("POST", "/mcp", big, JSON_HEADERS)
    assert status == 413 and json.loads(body)["error"]["code"] == -32600

    tools_list = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()
    assert proxy.request("POST", "/mcp", tools_list, JSON_HEADERS)[0] == 400  # no session
    assert proxy.request("POST", "/mcp", tools_list, {**JSON_HEADERS, "Mcp-Session-Id": "nope"})[0] == 404

    # a method this protocol era does not know, sent without a session, gets the server's own JSON-RPC error
    discover = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {}}).encode()
    status, _, body = proxy.request("POST", "/mcp", discover, {**JSON_HEADERS, "MCP-Protocol-Version": "2026-07-28"})
    assert status == 200 and json.loads(body)["id"] == 0 and "error" in json.loads(body)

    status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
    session = {**JSON_HEADERS, "Mcp-Session-Id": headers["mcp-session-id"]}
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    assert proxy.request("POST", "/mcp", initialized, session)[0] == 202
    assert proxy.request("DELETE", "/mcp", None, session)[0] == 200
    assert proxy.request("POST", "/mcp", tools_list, session)[0] == 404


def test_restarting_the_gate_is_healed_by_re_attaching(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    ready(proxy, proxy_stack)
    proxy_stack.api.restart(f"{proxy_stack.prefix}-gate", timeout=5)
    proxy.wait_health("running", timeout=30)
    assert utc_now(proxy.url())["timezone"] == "UTC"


# ---------------------------------------------------------------------------------------------------- the gate

GATE_PROBE = r"""
import json, os, socket, sys
requests = json.loads(sys.argv[1])
found = {"docker_socket": os.path.exists("/var/run/docker.sock"), "groups": os.getgroups()}
for name, raw in requests.items():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect("/run/toolhive-gate/docker.sock")
    s.sendall(raw.encode("latin-1"))
    data = b""
    try:
        while len(data) < 65536:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"HTTP/1.1 101"):
                break
    except socket.timeout:
        pass
    s.close()
    found[name] = data.decode("latin-1")
print(json.dumps(found))
"""
UPGRADE = "Connection: Upgrade\r\nUpgrade: tcp\r\n"


def gate_requests(own: str, other: str) -> dict[str, str]:
    """What a compromised proxy might ask its gate, raw: only ``own_inspect`` (and attach) may pass."""
    attach = "attach?stream=1&stdin=1&stdout=1&stderr=1"

    def req(line: str, headers: str = "", body: str = "") -> str:
        return f"{line}\r\nHost: docker\r\n{headers}\r\n{body}"

    return {
        "own_inspect": req(f"GET /v1.41/containers/{own}/json HTTP/1.1"),
        "other_inspect": req(f"GET /v1.41/containers/{other}/json HTTP/1.1"),
        "other_attach": req(f"POST /v1.41/containers/{other}/{attach} HTTP/1.1", UPGRADE),
        "other_by_traversal": req(f"GET /v1.41/containers/{own}/../{other}/json HTTP/1.1"),
        "exec_create": req(
            f"POST /v1.41/containers/{own}/exec HTTP/1.1",
            "Content-Type: application/json\r\nContent-Length: 19\r\n",
            '{"Cmd": ["id"]}    ',
        ),
        "container_create": req("POST /v1.41/containers/create HTTP/1.1", "Content-Length: 2\r\n", "{}"),
        "container_list": req("GET /v1.41/containers/json HTTP/1.1"),
        "info": req("GET /v1.41/info HTTP/1.1"),
        "ping": req("GET /_ping HTTP/1.1"),
        "session_in_shared_mode": req(f"POST /v1.41/containers/{own}/session HTTP/1.1", UPGRADE),
        "attach_with_logs": req(f"POST /v1.41/containers/{own}/{attach}&logs=1 HTTP/1.1", UPGRADE),
        "chunked": req(f"GET /v1.41/containers/{own}/json HTTP/1.1", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        "with_body": req(f"GET /v1.41/containers/{own}/json HTTP/1.1", "Content-Length: 4\r\n", "abcd"),
        "bare_lf": f"GET /v1.41/containers/{own}/json HTTP/1.1\nHost: docker\n\n",
        "header_in_path": req(f"GET /v1.41/containers/{own}/json%0d%0aX-Injected:%201 HTTP/1.1"),
        "two_hosts": req(f"GET /v1.41/containers/{own}/json HTTP/1.1", "Host: other\r\n"),
        "pipelined": req(f"GET /v1.41/containers/{own}/json HTTP/1.1") + req("GET /v1.41/info HTTP/1.1"),
    }


def probe_gate(api: Any, proxy: str, own: str, other: str) -> dict[str, Any]:
    """Run GATE_PROBE inside the proxy container: what its gate answers to each of gate_requests."""
    exec_id = api.exec_create(proxy, ["python", "-S", "-c", GATE_PROBE, json.dumps(gate_requests(own, other))])
    output = api.exec_start(exec_id["Id"]).decode()
    return dict(json.loads(output.strip().splitlines()[-1]))


def status_of(answer: str) -> int:
    return int(answer.split(" ", 2)[1]) if answer.startswith("HTTP/1.1 ") else 0


def assert_the_gate_refuses_all_but_its_own(found: dict[str, Any], socket_group: int) -> None:
    assert found.pop("docker_socket") is False and socket_group not in found.pop("groups")
    statuses = {name: status_of(answer) for name, answer in found.items()}
    assert statuses == {
        "own_inspect": 200,
        "other_inspect": 403,
        "other_attach": 403,
        "other_by_traversal": 403,
        "exec_create": 403,
        "container_create": 403,
        "container_list": 403,
        "info": 403,
        "ping": 403,
        "session_in_shared_mode": 403,
        "attach_with_logs": 403,
        "chunked": 400,
        "with_body": 400,
        "bare_lf": 400,
        "header_in_path": 403,
        "two_hosts": 400,
        "pipelined": 200,
    }
    assert found["pipelined"].count("HTTP/1.1") == 1  # one request per connection: the second is never read
    body = json.loads(found["own_inspect"].split("\r\n\r\n", 1)[1])
    assert body == {
        "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False},
        "Config": {"OpenStdin": True, "Tty": False},
    }


def test_from_inside_the_proxy_the_gate_allows_its_own_container_only(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    ready(proxy, proxy_stack)
    own = proxy_stack.containers[0]
    found = probe_gate(proxy_stack.api, proxy.name, own, other=proxy.name)
    assert_the_gate_refuses_all_but_its_own(found, os.stat("/var/run/docker.sock").st_gid)
    assert utc_now(proxy.url())["timezone"] == "UTC"  # and the proxy still works


# ---------------------------------------------------------------------------------------------------- per client

NOTIFY_SERVER = r"""
import json, os, sys
level = "none"
def send(m):
    print(json.dumps(m), flush=True)
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m or "method" not in m:
        continue
    reply = {"jsonrpc": "2.0", "id": m["id"], "result": {}}
    if m["method"] == "initialize":
        caps = {"tools": {}, "logging": {}}
        info = {"name": "notify", "version": "1"}
        reply["result"] = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": caps, "serverInfo": info}
    elif m["method"] == "tools/list":
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        names = ("whoami", "shout", "level")
        reply["result"] = {"tools": [{"name": n, "description": n, "inputSchema": schema} for n in names]}
    elif m["method"] == "logging/setLevel":
        level = m["params"]["level"]
    elif m["method"] == "tools/call":
        name, args = m["params"]["name"], m["params"].get("arguments") or {}
        if name == "shout":
            log = {"level": "info", "data": args["text"]}
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": log})
        text = {"whoami": str(os.getpid()), "level": level}.get(name, "ok")
        reply["result"] = {"content": [{"type": "text", "text": text}]}
    elif m["method"] != "ping":
        reply = {"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32601, "message": "method not found"}}
    send(reply)
"""


class Session:
    """One raw streamable-HTTP MCP session with its event stream open, collecting what the proxy sends it."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
        assert status == 200
        self.headers = {
            **JSON_HEADERS,
            "Mcp-Session-Id": headers["mcp-session-id"],
            "MCP-Protocol-Version": "2025-06-18",
        }
        self.events: list[dict[str, Any]] = []
        self._stream = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        self._stream.request("GET", "/mcp", headers={**self.headers, "Accept": "text/event-stream"})
        response = self._stream.getresponse()
        assert response.status == 200
        self._reader = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._reader.start()
        self._next = 10

    def _read(self, response: http.client.HTTPResponse) -> None:
        # AttributeError: http.client's way of saying that close() in another thread took the socket away
        with contextlib.suppress(OSError, ValueError, AttributeError, http.client.HTTPException):
            for line in response:
                if line.startswith(b"data:"):
                    self.events.append(json.loads(line[5:]))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params}).encode()
        status, _, answer = self.proxy.request("POST", "/mcp", body, self.headers)
        assert status == 200, answer
        return dict(json.loads(answer))

    def tool(self, name: str, **arguments: Any) -> str:
        return str(self.call("tools/call", name=name, arguments=arguments)["result"]["content"][0]["text"])

    def logs(self) -> list[str]:
        return [str(e["params"]["data"]) for e in self.events if e.get("method") == "notifications/message"]

    def close(self) -> None:
        self.proxy.request("DELETE", "/mcp", None, self.headers)
        self._stream.close()


def notify_proxy(stack: ProxyStack, session_mode: str) -> Proxy:
    host_config = stack.api.create_host_config(network_mode=stack.network, cap_drop=["ALL"])
    server = stack._run(
        f"{stack.prefix}-notify",
        PYTHON_IMAGE,
        host_config,
        command=["python3.11", "-c", NOTIFY_SERVER],
        stdin_open=True,
        detach=True,
        tty=False,
    )
    config = {"name": server, "mode": "stdio", "container": server, "session_mode": session_mode}
    proxy = stack.start_proxy(config, socket_access=True)
    proxy.wait_health("running", timeout=60)
    return proxy


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_per_client_sessions_have_their_own_process_and_never_see_each_others_notifications(
    proxy_stack: ProxyStack,
) -> None:
    proxy = notify_proxy(proxy_stack, "per-client")
    first, second = Session(proxy), Session(proxy)
    try:
        assert first.tool("whoami") != second.tool("whoami")  # two processes
        for session in (first, second):
            assert session.call("logging/setLevel", level="debug")["result"] == {}
        assert first.tool("level") == "debug"  # forwarded to its own process, which is its alone
        first.tool("shout", text="first's arguments")
        second.tool("shout", text="second's arguments")
        wait_for(lambda: first.logs() and second.logs())
        time.sleep(0.5)  # anything misrouted would have arrived by now
        assert (first.logs(), second.logs()) == (["first's arguments"], ["second's arguments"])
    finally:
        first.close()
        second.close()
    assert set(list_tools(proxy.url())) == {"whoami", "shout", "level"}  # the SDK client, with a process of its own
    assert call_tool(proxy.url(), "level", {}) == "none"
    proxy_stack.api.restart(f"{proxy_stack.prefix}-notify", timeout=5)  # every process goes with the container
    assert set(ready(proxy, proxy_stack, timeout=60)) == {"whoami", "shout", "level"}


def test_shared_mode_keeps_log_levels_per_client_and_away_from_the_server(proxy_stack: ProxyStack) -> None:
    proxy = notify_proxy(proxy_stack, "shared")
    asked, silent = Session(proxy), Session(proxy)
    try:
        assert asked.tool("whoami") == silent.tool("whoami")  # one shared process
        assert asked.call("logging/setLevel", level="info")["result"] == {}
        assert asked.tool("level") == "none"  # answered by the proxy: the shared server's level did not change
        silent.tool("shout", text="silent's arguments")
        wait_for(lambda: asked.logs())
        time.sleep(0.5)
        assert (asked.logs(), silent.logs()) == (["silent's arguments"], [])
    finally:
        asked.close()
        silent.close()


# ---------------------------------------------------------------------------------------------------- applied stacks


def test_an_applied_stdio_workload_keeps_the_socket_in_its_gate_and_its_server_away_from_its_proxy(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    plain, isolated = f"{stack}-plain", f"{stack}-iso"
    workloads = [
        {"name": plain, "image": TIME_IMAGE, "env_vars": {"CANARY": f"canary-{stack}"}},
        {"name": isolated, "image": TIME_IMAGE, "network_isolation": True, "permission_profile": "none"},
    ]
    path = write_manifest(tmp_path, stack, workloads)
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    socket_group = os.stat("/var/run/docker.sock").st_gid
    volumes = set()
    for name in (plain, isolated):
        proxy, gate = docker_api.inspect_container(f"{name}-proxy"), docker_api.inspect_container(f"{name}-gate")
        assert_no_docker_access(proxy)
        host = gate["HostConfig"]
        assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"], gate["Config"]["User"]) == (
            "none",
            True,
            ["ALL"],
            "65532:65532",
        )
        assert host["Binds"] == ["/var/run/docker.sock:/var/run/docker.sock:ro"]
        assert host["GroupAdd"] == [str(socket_group)] and host["PortBindings"] in (None, {})
        shared = {m["Name"] for m in proxy["Mounts"]} & {m["Name"] for m in gate["Mounts"] if m["Type"] == "volume"}
        assert len(shared) == 1
        volumes |= shared
        server = docker_api.inspect_container(name)
        proxy_networks = set(proxy["NetworkSettings"]["Networks"])
        assert not proxy_networks & set(server["NetworkSettings"]["Networks"])  # no network in common
    assert set(docker_api.inspect_container(plain)["NetworkSettings"]["Networks"]) == {"bridge"}

    found = probe_gate(docker_api, f"{plain}-proxy", plain, other=isolated)
    assert_the_gate_refuses_all_but_its_own(found, socket_group)
    assert f"canary-{stack}" not in json.dumps(found)

    for name in (plain, isolated):  # from inside each server, no proxy listener answers (by name or by address)
        targets = [(f"{n}-proxy", 8080) for n in (plain, isolated)]
        targets += [(ip["IPAddress"], 8080) for n in (plain, isolated) for ip in _networks(docker_api, f"{n}-proxy")]
        assert reachable(docker_api, name, targets) == dict.fromkeys(f"{h}:{p}" for h, p in targets), name

    urls = {
        w["name"]: w["url"] for w in json.loads(run_cli("export", "workloads", "--stack", stack).stdout)["workloads"]
    }
    for name in (plain, isolated):
        assert json.loads(call_tool(urls[name], "get_current_time", {"timezone": "UTC"}))["timezone"] == "UTC"
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0
    assert run_cli("destroy", str(path), "--yes").code == 0
    assert not volumes & {v["Name"] for v in docker_api.volumes()["Volumes"] or []}  # went with their containers


def _networks(api: Any, container: str) -> list[dict[str, Any]]:
    return list(api.inspect_container(container)["NetworkSettings"]["Networks"].values())


REACH = r"""
import json, socket, sys
found = {}
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=2).close()
        found[f"{host}:{port}"] = "connected"
    except OSError as error:
        found[f"{host}:{port}"] = None
print(json.dumps(found))
"""


def reachable(api: Any, container: str, targets: list[tuple[str, int]]) -> dict[str, str | None]:
    """From inside ``container``: which of ``targets`` accept a TCP connection (None: refused, unknown or no route)."""
    exec_id = api.exec_create(container, ["python3.11", "-c", REACH, json.dumps(targets)])
    return dict(json.loads(api.exec_start(exec_id["Id"]).decode().strip().splitlines()[-1]))


def assert_no_docker_access(settings: dict[str, Any]) -> None:
    """A network-facing proxy: no Docker socket mounted, no extra group (the socket's in particular)."""
    host = settings["HostConfig"]
    assert not host.get("Binds") and not host.get("GroupAdd") and not host.get("VolumesFrom"), host
    assert [m["Type"] for m in settings["Mounts"]] == ["volume"]  # the gate's socket directory only
    assert all("docker" not in str(m.get("Source")).replace("/var/lib/docker/volumes", "") for m in settings["Mounts"])
