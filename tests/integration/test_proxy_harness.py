"""Shared set-up for the proxy container tests (this module holds no tests).

Every test gets its own user-defined bridge network, MCP container and proxy container (and for a stdio server the
proxy's docker gate, laid out as the engine lays it out), all with unique names and removed afterwards; the proxy
image is built once per session FROM the local python test image (no registry) under a unique tag and removed at
the end. Containers are reached only through ports published on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import pytest

from tests.conftest import HTTP_IMAGE, PYTHON_IMAGE, TIME_IMAGE
from tests.support.mcp_client import wait_until_ready
from toolhive_apply.providers.workload.create_args import GATE_SOCKET, HELPER_USER, gate_host_config_args, gate_volume
from toolhive_apply.providers.workload.proxy_image import ensure_proxy_image, proxy_image_inputs_hash

DOCKER_SOCKET = "/var/run/docker.sock"
LISTEN_PORT = 8080
TEST_LABEL = "toolhive-apply-test.proxy"
_SESSION_TAG = f"toolhive-apply-test/proxy:{proxy_image_inputs_hash(PYTHON_IMAGE)[:12]}-{uuid.uuid4().hex[:6]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def proxy_image(docker_api: Any, test_images: dict[str, str]) -> Iterator[str]:
    """The proxy image built from the packaged Dockerfile on the python test image."""
    started = time.monotonic()
    ref = ensure_proxy_image(docker_api, PYTHON_IMAGE, tag=_SESSION_TAG)
    print(f"[proxy] image {ref} ready in {time.monotonic() - started:.1f}s")
    yield ref
    with contextlib.suppress(docker.errors.APIError):
        docker_api.remove_image(ref, force=True)


@dataclass
class Proxy:
    name: str
    port: int

    def url(self, path: str = "/mcp") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP exchange (http.client), for what the SDK client would never send."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def health(self) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request("GET", "/health")
        return status, json.loads(body)

    def wait_health(self, status: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                _, last = self.health()
                if last.get("status") == status:
                    return dict(last)
            time.sleep(0.2)
        raise TimeoutError(f"proxy {self.name} never reported {status!r} within {timeout}s (last: {last})")


@dataclass
class ProxyStack:
    """One test's network and containers. ``cleanup`` removes all of them."""

    api: Any
    image: str
    prefix: str = field(default_factory=lambda: f"thvp-{uuid.uuid4().hex[:8]}")
    containers: list[str] = field(default_factory=list)

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    def create_network(self) -> None:
        self.api.create_network(self.network, driver="bridge", labels={TEST_LABEL: self.prefix})

    def _run(self, name: str, image: str, host_config: dict[str, Any], **kwargs: Any) -> str:
        self.containers.append(name)
        self.api.create_container(image, name=name, host_config=host_config, labels={TEST_LABEL: self.prefix}, **kwargs)
        self.api.start(name)
        return name

    def start_stdio_server(self, suffix: str = "time") -> str:
        """The reference time server, created like ToolHive creates stdio servers (-i, no TTY)."""
        host_config = self.api.create_host_config(
            network_mode=self.network, cap_drop=["ALL"], restart_policy={"Name": "unless-stopped"}
        )
        name = f"{self.prefix}-{suffix}"
        return self._run(name, TIME_IMAGE, host_config, stdin_open=True, detach=True, tty=False)

    def start_http_server(self, transport: str = "streamable-http", suffix: str = "web") -> str:
        """The FastMCP test server, not published: only the proxy reaches it, over the network."""
        host_config = self.api.create_host_config(
            network_mode=self.network, cap_drop=["ALL"], restart_policy={"Name": "unless-stopped"}
        )
        env = {"MCP_TRANSPORT": transport, "MCP_PORT": "8080"}
        return self._run(f"{self.prefix}-{suffix}", HTTP_IMAGE, host_config, environment=env, detach=True)

    def start_python(self, script: str, suffix: str) -> str:
        """A container running ``python -c script`` from the python test image (for ad-hoc upstreams)."""
        host_config = self.api.create_host_config(network_mode=self.network, cap_drop=["ALL"])
        return self._run(f"{self.prefix}-{suffix}", PYTHON_IMAGE, host_config, command=["python", "-c", script])

    def start_proxy(
        self, config: dict[str, Any], *, socket_access: bool, env: dict[str, str] | None = None, suffix: str = "proxy"
    ) -> Proxy:
        """The proxy as the engine should create it: read-only, no capabilities, non-root, loopback-only port.

        ``socket_access``: the proxy reaches the Docker API as in production, through a docker gate (no network, the
        socket's group) listening in a volume the two share; the proxy itself has neither socket nor group."""
        port = free_port()
        host_config = self.api.create_host_config(
            network_mode=self.network,
            port_bindings={LISTEN_PORT: ("127.0.0.1", port)},
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            restart_policy={"Name": "unless-stopped"},
            mounts=[gate_volume()] if socket_access else None,
        )
        full = {"listen_port": LISTEN_PORT, **config}
        if socket_access:
            full.setdefault("docker_socket", GATE_SOCKET)
        environment = {"THV_PROXY_CONFIG": json.dumps(full), **(env or {})}
        name = self._run(
            f"{self.prefix}-{suffix}",
            self.image,
            host_config,
            environment=environment,
            ports=[LISTEN_PORT],
            detach=True,
        )
        if socket_access:
            gate = "gate" if suffix == "proxy" else f"{suffix}-gate"
            self.start_gate(name, str(config["container"]), str(full.get("session_mode", "shared")), gate)
        return Proxy(name, port)

    def start_gate(self, proxy: str, container: str, session_mode: str = "shared", suffix: str = "gate") -> str:
        """The proxy's docker gate, bound to ``container``'s id, sharing the proxy's volume."""
        gate = {
            "name": f"{self.prefix}-{suffix}",
            "mode": "docker-gate",
            "container": self.api.inspect_container(container)["Id"],
            "container_name": container,
            "listen": GATE_SOCKET,
            "docker_socket": DOCKER_SOCKET,
            "session_mode": session_mode,
        }
        socket_group = os.stat(DOCKER_SOCKET).st_gid
        host_config = self.api.create_host_config(**gate_host_config_args((DOCKER_SOCKET, socket_group), proxy))
        environment = {"THV_PROXY_CONFIG": json.dumps(gate)}
        return self._run(
            gate["name"],
            self.image,
            host_config,
            environment=environment,
            user=HELPER_USER,
            healthcheck={"test": ["NONE"]},
        )

    def logs(self, name: str) -> str:
        return str(self.api.logs(name, tail=60).decode(errors="replace"))

    def cleanup(self) -> None:
        for name in reversed(self.containers):
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(name, force=True, v=True)
        with contextlib.suppress(docker.errors.APIError):
            self.api.remove_network(self.network)


@pytest.fixture
def proxy_stack(docker_api: Any, proxy_image: str) -> Iterator[ProxyStack]:
    stack = ProxyStack(docker_api, proxy_image)
    stack.create_network()
    try:
        yield stack
    finally:
        stack.cleanup()


def ready(proxy: Proxy, stack: ProxyStack, path: str = "/mcp", timeout: float = 60.0) -> list[str]:
    """Tool names once the proxy serves; on failure the proxy's log is part of the error."""
    try:
        return wait_until_ready(proxy.url(path), timeout=timeout)
    except TimeoutError as error:
        raise AssertionError(f"{error}\nproxy log:\n{stack.logs(proxy.name)}") from error
