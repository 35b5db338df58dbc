"""Permission profiles enforced, not just written down: reachability tried from inside the MCP containers.

Two HTTP servers run in containers on the stack's outer network under the names `allowed.example` (also
`api.sub.example`) and `denied.example`, each listening on ports 8000 and 8001; only the egress proxy can resolve
and reach them. The isolated MCP containers then try to reach them every way there is: through the egress proxy
(allowed host and port, a subdomain rule, a denied host, a denied port, a raw IP, a CONNECT tunnel) and around it
(direct by name, direct by IP). A workload with profile `none` has no way out at all; inbound traffic reaches an
isolated server only through its proxy; a read-only mount cannot be written.

Only container-network traffic and ports published on 127.0.0.1 are used.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, PYTHON_IMAGE, TINY_MCP, run_cli, write_manifest
from tests.support.mcp_client import list_tools, wait_until_ready
from toolhive_apply.engine.resource import spec_hash
from toolhive_apply.providers.docker.host import network_gateways

pytestmark = pytest.mark.docker

TARGET_SERVER = (
    "import http.server, os, threading\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = f\"{os.environ['WHO']}:{self.server.server_port}\".encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "servers = [http.server.ThreadingHTTPServer(('0.0.0.0', p), H) for p in (8000, 8001)]\n"
    "threading.Thread(target=servers[1].serve_forever, daemon=True).start()\n"
    "servers[0].serve_forever()\n"
)

# Run inside an MCP container: one attempt, its outcome as JSON. `via`: env (the container's HTTP_PROXY, as any
# program would), direct (no proxy at all), tunnel (CONNECT through the egress proxy, then plain HTTP inside).
PROBE = (
    "import http.client, json, sys, urllib.error, urllib.request\n"
    "via, url = sys.argv[1], sys.argv[2]\n"
    "out = {'status': None, 'body': '', 'error': ''}\n"
    "try:\n"
    "    if via == 'tunnel':\n"
    "        import os, urllib.parse\n"
    "        proxy = urllib.parse.urlsplit(os.environ['HTTP_PROXY'])\n"
    "        target = urllib.parse.urlsplit(url)\n"
    "        conn = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=5)\n"
    "        conn.set_tunnel(target.hostname, target.port)\n"
    "        conn.request('GET', '/')\n"
    "        r = conn.getresponse(); out['status'] = r.status; out['body'] = r.read().decode()\n"
    "    else:\n"
    "        handlers = [urllib.request.ProxyHandler({})] if via == 'direct' else []\n"
    "        with urllib.request.build_opener(*handlers).open(url, timeout=5) as r:\n"
    "            out['status'] = r.status; out['body'] = r.read().decode()\n"
    "except urllib.error.HTTPError as e:\n"
    "    out['status'] = e.code; out['body'] = e.read().decode(errors='replace')\n"
    "except Exception as e:\n"
    "    out['error'] = f'{type(e).__name__}: {e}'\n"
    "print(json.dumps(out))\n"
)


WRITE = "import pathlib; pathlib.Path('/out/result.txt').write_text('written\\n')"

# Run inside a container: one TCP connect, its outcome as JSON. An IPv6 address may carry a zone (`%eth0`).
CONNECT_PROBE = (
    "import json, socket, sys\n"
    "host, port = sys.argv[1], int(sys.argv[2])\n"
    "out = {'connected': False, 'error': ''}\n"
    "try:\n"
    "    if ':' in host:\n"
    "        address, _, zone = host.partition('%')\n"
    "        s = socket.socket(socket.AF_INET6); s.settimeout(3)\n"
    "        s.connect((address, port, 0, socket.if_nametoindex(zone) if zone else 0))\n"
    "    else:\n"
    "        s = socket.create_connection((host, port), 3)\n"
    "    out['connected'] = True\n"
    "except Exception as e:\n"
    "    out['error'] = f'{type(e).__name__}: {e}'\n"
    "print(json.dumps(out))\n"
)
# The same, but only to a destination on the container's own links (SO_DONTROUTE): nothing is sent through a
# gateway, so nothing can leave the host.
ON_LINK_PROBE = CONNECT_PROBE.replace(
    "        s = socket.create_connection((host, port), 3)\n",
    "        s = socket.socket(); s.settimeout(3); s.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)\n"
    "        s.connect((host, port))\n",
)


def _host_routes_to(address: str) -> bool:
    """The host (the engine is local in these tests) has a route for `address` other than its default route."""
    target = ipaddress.IPv4Address(address)
    for line in Path("/proc/net/route").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        if int(mask) and ipaddress.IPv4Network(f"{destination}/{mask}").supernet_of(ipaddress.IPv4Network(target)):
            return True
    return False


def _exec(api: Any, container: str, cmd: list[str]) -> tuple[int, str]:
    created = api.exec_create(container, cmd)
    output = api.exec_start(created["Id"]).decode(errors="replace")
    return int(api.exec_inspect(created["Id"])["ExitCode"]), output


def _probe(api: Any, container: str, via: str, url: str) -> dict[str, Any]:
    code, output = _exec(api, container, ["python3.11", "-c", PROBE, via, url])
    assert code == 0, output
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _reached(result: dict[str, Any], who: str) -> bool:
    return result["status"] == 200 and result["body"].startswith(who)


def _blocked_by_proxy(result: dict[str, Any]) -> bool:
    return result["status"] == 403 and "egress" in result["body"]


def _failed(result: dict[str, Any]) -> bool:
    """Nothing answered at all: no name, no route."""
    return result["status"] is None and result["error"] != ""


def _start_targets(api: Any, stack: str) -> dict[str, str]:
    """The two stand-in hosts on the stack's outer network; returns their IPs by name."""
    network = f"toolhive-apply.{stack}"
    ips = {}
    for who, aliases in (("allowed", ["allowed.example", "api.sub.example"]), ("denied", ["denied.example"])):
        name = f"{stack}-target-{who}"
        created = api.create_container(
            PYTHON_IMAGE,
            ["python3.11", "-c", TARGET_SERVER],
            name=name,
            environment={"WHO": who},
            labels={"toolhive-apply.test-target": stack},
            host_config=api.create_host_config(network_mode=network),
            networking_config=api.create_networking_config({network: api.create_endpoint_config(aliases=aliases)}),
        )
        api.start(created["Id"])
        ips[who] = api.inspect_container(created["Id"])["NetworkSettings"]["Networks"][network]["IPAddress"]
    for who in ips:  # wait until both listen
        code, output = _exec(
            api,
            f"{stack}-target-{who}",
            [
                "python3.11",
                "-c",
                "import socket, time\n"
                "for _ in range(100):\n"
                "    try: socket.create_connection(('127.0.0.1', 8000), 1).close(); break\n"
                "    except OSError: time.sleep(0.1)\n",
            ],
        )
        assert code == 0, output
    return ips


@pytest.fixture
def targets_cleanup(docker_api: Any, stack: str) -> Any:
    yield
    for container in docker_api.containers(all=True, filters={"label": [f"toolhive-apply.test-target={stack}"]}):
        docker_api.remove_container(container["Id"], force=True)


def _workloads(tmp_path: Path, allow_host: list[str]) -> list[dict[str, Any]]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "hello.txt").write_text("read me\n")
    (tmp_path / "out").mkdir(exist_ok=True)
    return [
        {
            "name": "fetcher",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "network_isolation": True,
            "permission_profile": {"network": {"outbound": {"allow_host": allow_host, "allow_port": [8000]}}},
        },
        {
            "name": "sealed",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "network_isolation": True,
            "permission_profile": "none",
        },
        {
            "name": "webby",
            "image": HTTP_IMAGE,
            "transport": "streamable-http",
            "network_isolation": True,
            "permission_profile": {
                "read": ["./data:/data"],
                "write": ["./out:/out"],
                "network": {"outbound": {"allow_host": ["allowed.example"]}},
            },
        },
    ]


def _server(api: Any, stack: str, name: str) -> dict[str, Any]:
    found = api.containers(all=True, filters={"name": [f"^/{name}$"], "label": [f"toolhive-apply.stack={stack}"]})
    assert len(found) == 1, found
    return dict(api.inspect_container(found[0]["Id"]))


def test_isolated_workloads_reach_exactly_what_their_profiles_allow(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], targets_cleanup: None
) -> None:
    path = write_manifest(tmp_path, stack, _workloads(tmp_path, ["allowed.example", ".sub.example"]))
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    ips = _start_targets(docker_api, stack)
    internal = f"toolhive-apply.{stack}.fetcher.internal"

    # topology: the server is only on its internal network, which has no route out
    fetcher = _server(docker_api, stack, "fetcher")
    assert set(fetcher["NetworkSettings"]["Networks"]) == {internal}
    assert docker_api.inspect_network(internal)["Internal"] is True
    assert "HTTP_PROXY=http://fetcher-egress:3128" in fetcher["Config"]["Env"]

    # through the egress proxy, as any program honouring HTTP_PROXY would go
    assert _reached(_probe(docker_api, "fetcher", "env", "http://allowed.example:8000/"), "allowed:8000")
    assert _reached(_probe(docker_api, "fetcher", "env", "http://api.sub.example:8000/"), "allowed:8000")
    assert _blocked_by_proxy(_probe(docker_api, "fetcher", "env", "http://denied.example:8000/"))
    assert _blocked_by_proxy(_probe(docker_api, "fetcher", "env", "http://allowed.example:8001/"))
    assert _blocked_by_proxy(_probe(docker_api, "fetcher", "env", f"http://{ips['allowed']}:8000/"))
    assert _blocked_by_proxy(_probe(docker_api, "fetcher", "env", "http://sub.example.evil:8000/"))
    tunnel = _probe(docker_api, "fetcher", "tunnel", "http://allowed.example:8000/")
    assert _reached(tunnel, "allowed:8000"), tunnel
    denied_tunnel = _probe(docker_api, "fetcher", "tunnel", "http://denied.example:8000/")
    assert denied_tunnel["status"] is None and "403" in denied_tunnel["error"], denied_tunnel

    # around the proxy: no name resolution and no route, by name or by raw IP
    assert _failed(_probe(docker_api, "fetcher", "direct", "http://allowed.example:8000/"))
    assert _failed(_probe(docker_api, "fetcher", "direct", f"http://{ips['allowed']}:8000/"))
    assert _failed(_probe(docker_api, "fetcher", "direct", f"http://{ips['denied']}:8000/"))

    # profile none: no egress container, no proxy variables, nothing reachable at all
    sealed = _server(docker_api, stack, "sealed")
    assert not any(e.startswith(("HTTP_PROXY=", "http_proxy=")) for e in sealed["Config"]["Env"])
    assert not docker_api.containers(all=True, filters={"name": ["^/sealed-egress$"]})
    for url in (f"http://{ips['allowed']}:8000/", "http://allowed.example:8000/", "http://fetcher-egress:3128/health"):
        assert _failed(_probe(docker_api, "sealed", "direct", url)), url

    # an isolated HTTP server still serves clients through its proxy, and only through it: a stack container is
    # not on its bridge, and the host has no route into it (no address on the bridge: only the default route, off
    # the host, which this test must not use)
    port = json.loads(run_cli("export", "workload", "webby", "--stack", stack).stdout)["proxy_port"]
    assert list_tools(f"http://127.0.0.1:{port}/mcp")
    webby = _server(docker_api, stack, "webby")
    webby_ip = webby["NetworkSettings"]["Networks"][f"toolhive-apply.{stack}.webby.internal"]["IPAddress"]
    code, output = _exec(docker_api, f"{stack}-target-denied", ["python3.11", "-c", ON_LINK_PROBE, webby_ip, "8080"])
    assert code == 0 and json.loads(output)["error"].startswith("OSError: [Errno 101]"), output
    assert not _host_routes_to(webby_ip), webby_ip

    # mounts: read-only really is, read-write really is
    read = "import pathlib; print(pathlib.Path('/data/hello.txt').read_text()); pathlib.Path('/data/new').touch()"
    code, output = _exec(docker_api, "webby", ["python3.11", "-c", read])
    assert "read me" in output and code != 0 and "Read-only file system" in output, output
    code, output = _exec(docker_api, "webby", ["python3.11", "-c", WRITE])
    assert code == 0, output
    assert (tmp_path / "out" / "result.txt").read_text() == "written\n"
    assert not (tmp_path / "data" / "new").exists()


def test_a_profile_change_is_planned_attribute_by_attribute_and_applied_by_replacing(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str], targets_cleanup: None
) -> None:
    workloads = _workloads(tmp_path, ["allowed.example"])
    path = write_manifest(tmp_path, stack, workloads)
    assert run_cli("apply", str(path), "--yes").code == 0
    ips = _start_targets(docker_api, stack)
    assert _blocked_by_proxy(_probe(docker_api, "fetcher", "env", "http://denied.example:8000/"))

    # an escape made by hand (the server connected to a network with a route out) is drift: the unit is recreated
    docker_api.connect_container_to_network("fetcher", f"toolhive-apply.{stack}")
    assert _reached(_probe(docker_api, "fetcher", "direct", f"http://{ips['denied']}:8000/"), "denied:8000")
    drifted = json.loads(run_cli("plan", str(path), "--output", "json").stdout)["changes"]
    assert [(c["name"], c["action"], c["reason"]) for c in drifted] == [
        ("fetcher", "replace", f"drifted: attached to toolhive-apply.{stack}, toolhive-apply.{stack}.fetcher.internal")
    ]
    assert run_cli("apply", str(path), "--yes").code == 0
    assert _failed(_probe(docker_api, "fetcher", "direct", f"http://{ips['denied']}:8000/"))

    workloads[0]["permission_profile"]["network"]["outbound"]["allow_host"] = ["denied.example"]
    path = write_manifest(tmp_path, stack, workloads)
    planned = run_cli("plan", str(path), "--output", "json")
    assert planned.code == 0, planned
    changes = {c["name"]: c for c in json.loads(planned.stdout)["changes"]}
    assert set(changes) == {"fetcher"}, changes
    assert changes["fetcher"]["action"] == "replace"
    assert changes["fetcher"]["fields"] == [
        {
            "path": "permission_profile.network.outbound.allow_host",
            "before": ["allowed.example"],
            "after": ["denied.example"],
            "sensitive": False,
        }
    ]
    human = run_cli("plan", str(path))
    assert "permission_profile.network.outbound.allow_host" in human.stdout, human

    assert run_cli("apply", str(path), "--yes").code == 0
    assert _reached(_probe(docker_api, "fetcher", "env", "http://denied.example:8000/"), "denied:8000")
    assert _blocked_by_proxy(_probe(docker_api, "fetcher", "env", "http://allowed.example:8000/"))
    again = run_cli("plan", str(path), "--detailed-exitcode")
    assert again.code == 0, again

    # turning isolation off replaces the unit and takes its internal network and egress proxy away
    workloads[0]["network_isolation"] = False
    path = write_manifest(tmp_path, stack, workloads)
    assert run_cli("apply", str(path), "--yes").code == 0
    networks = {n["Name"] for n in docker_api.networks(filters={"label": [f"toolhive-apply.stack={stack}"]})}
    assert f"toolhive-apply.{stack}.fetcher.internal" not in networks
    assert f"toolhive-apply.{stack}.webby.internal" in networks
    assert not docker_api.containers(all=True, filters={"name": ["^/fetcher-egress$"]})


def test_removed_and_destroyed_isolated_workloads_leave_no_network_or_helper_behind(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    workloads = _workloads(tmp_path, ["allowed.example"])
    path = write_manifest(tmp_path, stack, workloads)
    assert run_cli("apply", str(path), "--yes").code == 0
    labelled = {"label": [f"toolhive-apply.stack={stack}"]}
    assert len(docker_api.networks(filters=labelled)) == 4  # the stack's own and three internal ones

    path = write_manifest(tmp_path, stack, [workloads[2]], settings={"stack": stack})
    removed = run_cli("apply", str(path), "--yes")
    assert removed.code == 0, removed
    names = {c["Names"][0].lstrip("/") for c in docker_api.containers(all=True, filters=labelled)}
    assert names == {"webby", "webby-proxy", "webby-egress"}, names
    assert {n["Name"] for n in docker_api.networks(filters=labelled)} == {
        f"toolhive-apply.{stack}",
        f"toolhive-apply.{stack}.webby.internal",
    }
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0

    destroyed = run_cli("destroy", str(path), "--yes")
    assert destroyed.code == 0, destroyed
    assert docker_api.containers(all=True, filters=labelled) == []
    assert docker_api.networks(filters=labelled) == []


# -- the Docker host ---------------------------------------------------------------------------------------------
class HostListener:
    """An HTTP listener in the test process on one address of the Docker host; it counts who reached it."""

    def __init__(self, address: str, zone: str | None = None) -> None:
        listener = self
        self.address = address
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.hits += 1
                body = f"host:{address}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

            def server_bind(self) -> None:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.socket.bind(self.server_address)
                self.server_port = self.socket.getsockname()[1]

        where: tuple[Any, ...] = (address, 0, 0, socket.if_nametoindex(zone)) if zone else (address, 0)
        self.server = Server(where, Handler, bind_and_activate=False)
        try:
            self.server.server_bind()
            self.server.server_activate()
        except OSError:
            self.server.server_close()
            raise
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _gateway(docker_api: Any, network: str) -> str:
    """As the engine side reads it (the default bridge lists only its subnet on this engine)."""
    (gateway,) = network_gateways([docker_api.inspect_network(network)])
    return str(gateway)


def _link_local(interface: str) -> str | None:
    """The host's IPv6 link-local address on `interface`, when it has one (from /proc/net/if_inet6)."""
    for line in Path("/proc/net/if_inet6").read_text(encoding="ascii").splitlines():
        fields = line.split()
        if fields[-1] == interface and fields[0].startswith("fe80"):
            return str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
    return None


def _bind_with_deadline(address: str, zone: str) -> HostListener:
    """A fresh link-local address is unusable until duplicate address detection is done: try for 15 s."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return HostListener(address, zone)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def probe_network(docker_api: Any, stack: str) -> Iterator[str]:
    """A Docker network the test makes (before apply, so the engine lists it): its gateway is the host's."""
    name = f"{stack}-probe"
    docker_api.create_network(name, driver="bridge", labels={"toolhive-apply.test-target": stack})
    yield name
    docker_api.remove_network(name)


def _host_workloads(stack: str) -> list[dict[str, Any]]:
    everything = {"insecure_allow_all": True, "allow_host": ["allowed.example"]}
    return [
        {
            "name": f"{stack}-roam",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "network_isolation": True,
            # allow-all reaches public addresses only; a private host must be listed beside it
            "permission_profile": {"network": {"outbound": everything}},
        },
        {
            "name": f"{stack}-hostly",
            "image": PYTHON_IMAGE,
            "cmd_arguments": TINY_MCP,
            "network_isolation": True,
            "allow_docker_gateway": True,
            "permission_profile": "none",
        },
    ]


def test_an_isolated_server_reaches_no_address_of_the_docker_host_and_its_egress_proxy_refuses_them(
    docker_api: Any,
    tmp_path: Path,
    stack: str,
    test_images: dict[str, str],
    targets_cleanup: None,
    probe_network: str,
) -> None:
    path = write_manifest(tmp_path, stack, _host_workloads(stack))
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    _start_targets(docker_api, stack)
    roam, hostly = f"{stack}-roam", f"{stack}-hostly"
    internal = docker_api.inspect_network(f"toolhive-apply.{stack}.{roam}.internal")
    internal_gateway = _gateway(docker_api, internal["Name"])
    bridge = f"br-{internal['Id'][:12]}"

    # the internal bridge carries no IPv4 address of the host: nothing can listen on its gateway address
    assert internal["Options"] == {"com.docker.network.bridge.inhibit_ipv4": "true"}
    with pytest.raises(OSError, match="Cannot assign requested address"):
        HostListener(internal_gateway)
    server = _server(docker_api, stack, roam)
    assert server["HostConfig"]["Sysctls"] == {
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
    }
    code, routes = _exec(docker_api, roam, ["python3.11", "-c", "print(open('/proc/net/route').read())"])
    gateway_hex = ipaddress.IPv4Address(internal_gateway).packed[::-1].hex().upper()
    assert code == 0 and f"eth0\t00000000\t{gateway_hex}" in routes, routes  # a default route to no one
    code, inet6 = _exec(docker_api, roam, ["python3.11", "-c", "print(repr(open('/proc/net/if_inet6').read()))"])
    assert code == 0 and inet6.strip() == "''", inet6  # no IPv6 address at all, not even ::1

    listeners = {
        "probe network gateway": HostListener(_gateway(docker_api, probe_network)),
        "docker0": HostListener(_gateway(docker_api, "bridge")),
        "stack network gateway": HostListener(_gateway(docker_api, f"toolhive-apply.{stack}")),
    }
    link_local = _link_local(bridge)
    assert link_local is not None, bridge
    listeners["internal bridge link-local"] = _bind_with_deadline(link_local, bridge)
    try:
        # directly: no route to any of them, IPv4 or IPv6
        for what, listener in listeners.items():
            target = f"{listener.address}%eth0" if what.endswith("link-local") else listener.address
            for name in (roam, hostly):
                code, output = _exec(docker_api, name, ["python3.11", "-c", CONNECT_PROBE, target, str(listener.port)])
                assert code == 0 and not json.loads(output)["connected"], (what, name, output)

        # through the egress proxy with allow-all: refused, by address and by ToolHive's names for the host
        for what, listener in listeners.items():
            if what.endswith("link-local"):
                continue  # a zone id is refused as malformed before any decision (unit-tested)
            url = f"http://{listener.address}:{listener.port}/"
            assert _blocked_by_proxy(_probe(docker_api, roam, "env", url)), what
        for name in ("host.docker.internal", "gateway.docker.internal"):
            assert _blocked_by_proxy(_probe(docker_api, roam, "env", f"http://{name}:{listeners['docker0'].port}/"))
        assert all(listener.hits == 0 for listener in listeners.values()), {w: x.hits for w, x in listeners.items()}
        # ... while a listed (private) host on the same network is reached, and an unlisted one is not
        assert _reached(_probe(docker_api, roam, "env", "http://allowed.example:8000/"), "allowed:8000")
        assert _blocked_by_proxy(_probe(docker_api, roam, "env", "http://denied.example:8000/"))

        # allow_docker_gateway opens the host's gateways (on any port) and ToolHive's names, nothing else
        for what in ("probe network gateway", "stack network gateway", "docker0"):
            listener = listeners[what]
            url = f"http://{listener.address}:{listener.port}/"
            assert _reached(_probe(docker_api, hostly, "env", url), f"host:{listener.address}"), what
        docker0 = listeners["docker0"]
        via_name = _probe(docker_api, hostly, "env", f"http://host.docker.internal:{docker0.port}/")
        assert _reached(via_name, f"host:{docker0.address}"), via_name
        assert _blocked_by_proxy(_probe(docker_api, hostly, "env", "http://allowed.example:8000/"))
    finally:
        for listener in listeners.values():
            listener.close()


def _make_network_old_shaped(docker_api: Any, stack: str, workload: str) -> None:
    """What a stack applied by an older version has: the internal network without inhibit_ipv4 (the host's
    address on its bridge) and the hash of that shape. Made by hand: stop the unit, remake the network, reattach."""
    name = f"toolhive-apply.{stack}.{workload}.internal"
    found = docker_api.inspect_network(name)
    unit = [c["Id"] for c in docker_api.containers(all=True, filters={"label": [f"toolhive-apply.name={workload}"]})]
    attached = [c for c in unit if name in docker_api.inspect_container(c)["NetworkSettings"]["Networks"]]
    for container in unit:
        docker_api.stop(container, timeout=2)
    docker_api.remove_network(found["Id"])
    older = {"driver": "bridge", "internal": True, "name": name}
    labels = {**found["Labels"], "toolhive-apply.config-hash": spec_hash(older)}
    docker_api.create_network(name, driver="bridge", internal=True, labels=labels)
    for container in attached:
        docker_api.disconnect_container_from_network(container, name, force=True)
        docker_api.connect_container_to_network(container, name)
    for container in unit:
        docker_api.start(container)
    assert docker_api.inspect_network(name)["Options"] == {}


def test_an_internal_network_of_an_older_shape_is_remade_and_a_failed_replace_rolls_back_onto_the_new_one(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    name = f"{stack}-old"
    network = f"toolhive-apply.{stack}.{name}.internal"
    workload: dict[str, Any] = {
        "name": name,
        "image": PYTHON_IMAGE,
        "cmd_arguments": TINY_MCP,
        "network_isolation": True,
        "permission_profile": {"network": {"outbound": {"allow_host": ["allowed.example"]}}},
    }
    path = write_manifest(tmp_path, stack, [workload])
    assert run_cli("apply", str(path), "--yes").code == 0
    port = json.loads(run_cli("export", "workload", name, "--stack", stack).stdout)["proxy_port"]
    drifted = f"drifted: internal network {network} lets the server reach the Docker host: remade"

    # a replace that fails: the old unit comes back, on the remade network (Docker cannot start it on the old one)
    _make_network_old_shaped(docker_api, stack, name)
    planned = json.loads(run_cli("plan", str(path), "--output", "json").stdout)["changes"]
    assert [(c["name"], c["action"], c["reason"]) for c in planned] == [(name, "replace", drifted)]
    broken = {**workload, "cmd_arguments": ["python3.11", "-c", "raise SystemExit(3)"], "ready_timeout": 15}
    failed = run_cli("apply", str(write_manifest(tmp_path / "broken", stack, [broken])), "--yes")
    assert failed.code == 1, failed
    remade = docker_api.inspect_network(network)
    assert remade["Options"] == {"com.docker.network.bridge.inhibit_ipv4": "true"}
    server = _server(docker_api, stack, name)
    assert server["State"]["Running"] and set(server["NetworkSettings"]["Networks"]) == {network}, failed
    assert server["NetworkSettings"]["Networks"][network]["NetworkID"] == remade["Id"]
    assert wait_until_ready(f"http://127.0.0.1:{port}/mcp") == []  # the old (tool-less) unit answers MCP again
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0  # and is what the manifest declares

    # a replace that succeeds: converges, and the next plan is empty
    _make_network_old_shaped(docker_api, stack, name)
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 2
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    assert docker_api.inspect_network(network)["Options"] == {"com.docker.network.bridge.inhibit_ipv4": "true"}
    assert wait_until_ready(f"http://127.0.0.1:{port}/mcp") == []
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0
