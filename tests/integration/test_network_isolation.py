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

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, PYTHON_IMAGE, TINY_MCP, run_cli, write_manifest
from tests.support.mcp_client import list_tools

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

    # an isolated HTTP server still serves clients through its proxy, and only through it
    port = json.loads(run_cli("export", "workload", "webby", "--stack", stack).stdout)["proxy_port"]
    assert list_tools(f"http://127.0.0.1:{port}/mcp")
    webby = _server(docker_api, stack, "webby")
    webby_ip = webby["NetworkSettings"]["Networks"][f"toolhive-apply.{stack}.webby.internal"]["IPAddress"]
    code, output = _exec(
        docker_api,
        f"{stack}-target-denied",
        ["python3.11", "-c", f"import socket; socket.create_connection(('{webby_ip}', 8080), 3)"],
    )
    assert code != 0 and ("timed out" in output or "unreachable" in output), output

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
