"""Host ports the plan would publish against what holds them: containers from the list, processes by a bind probe."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from toolhive_apply.providers.workload.host_ports import (
    PortCheck,
    Wanted,
    bind_taken,
    overlaps,
    port_conflicts,
    port_error,
)

STACK = "s"


def container(name: str, ip: str, port: int, **labels: str) -> dict[str, Any]:
    return {
        "Names": [f"/{name}"],
        "Labels": labels,
        "Ports": [{"IP": ip, "PrivatePort": 8099, "PublicPort": port, "Type": "tcp"}],
    }


def ours(name: str, workload: str, ip: str, port: int) -> dict[str, Any]:
    labels = {"toolhive-apply.managed-by": "toolhive-apply", "toolhive-apply.stack": STACK}
    return container(name, ip, port, **labels, **{"toolhive-apply.name": workload})


WEB = Wanted("web", "127.0.0.1", 18080, "workloads[0].proxy_port")


def conflicts(*containers: dict[str, Any], want: Wanted = WEB) -> tuple[list[str], list[str]]:
    issues, warnings = port_conflicts([want], PortCheck(STACK, containers, local=False))
    return [f"{i.field}: {i.message}" for i in issues], warnings


def test_a_port_held_by_a_foreign_container_is_a_conflict_naming_it() -> None:
    found, _ = conflicts(container("grafana", "127.0.0.1", 18080))
    assert found == ["workloads[0].proxy_port: host port 127.0.0.1:18080 is already taken by container 'grafana'"]


def test_a_wildcard_binding_collides_with_every_address_and_other_ports_do_not() -> None:
    assert conflicts(container("any", "0.0.0.0", 18080))[0]
    assert conflicts(container("v6", "::", 18080))[0]
    assert not conflicts(container("other-ip", "127.0.0.2", 18080))[0]
    assert not conflicts(container("other-port", "127.0.0.1", 18081))[0]
    assert overlaps("0.0.0.0", "192.168.1.5") and not overlaps("127.0.0.1", "::1")


def test_the_workloads_own_containers_are_not_a_conflict() -> None:
    assert conflicts(ours("web-proxy", "web", "127.0.0.1", 18080)) == ([], [])
    assert conflicts(ours("web-proxy-replaced-abc123", "web", "127.0.0.1", 18080)) == ([], [])


def test_another_stack_of_ours_is_named_with_its_workload_and_stack() -> None:
    other = container(
        "api-proxy",
        "127.0.0.1",
        18080,
        **{
            "toolhive-apply.managed-by": "toolhive-apply",
            "toolhive-apply.stack": "prod",
            "toolhive-apply.name": "api",
        },
    )
    found, _ = conflicts(other)
    assert found == [
        "workloads[0].proxy_port: host port 127.0.0.1:18080 is already taken by container 'api-proxy' "
        "(workload 'api' of stack 'prod')"
    ]


def test_another_workload_of_the_same_stack_is_a_warning_the_next_apply_resolves() -> None:
    found, warnings = conflicts(ours("old-proxy", "old", "127.0.0.1", 18080))
    assert found == []
    assert len(warnings) == 1 and "workload 'web'" in warnings[0] and "'old-proxy'" in warnings[0]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port a process of this host holds, on loopback."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_a_process_holding_the_port_is_found_by_the_bind_probe_on_a_local_engine(listening: int) -> None:
    want = Wanted("web", "127.0.0.1", listening, "workloads[0].proxy_port")
    assert bind_taken("127.0.0.1", listening) and bind_taken("0.0.0.0", listening)
    local, _ = port_conflicts([want], PortCheck(STACK, [], local=True))
    assert [i.message for i in local] == [f"host port 127.0.0.1:{listening} is already taken by a process on this host"]
    remote, _ = port_conflicts([want], PortCheck(STACK, [], local=False))
    assert remote == []  # a remote engine's ports are not this host's


def test_a_free_port_and_an_address_this_host_lacks_are_not_taken() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    assert not bind_taken("127.0.0.1", free)
    assert not bind_taken("192.0.2.1", free)  # TEST-NET-1: not an address of this host; Docker reports that itself


def test_the_probe_skips_a_port_the_workloads_own_proxy_holds(listening: int) -> None:
    want = Wanted("web", "127.0.0.1", listening, "workloads[0].proxy_port")
    own = ours("web-proxy", "web", "127.0.0.1", listening)  # its docker-proxy is what holds the port
    assert port_conflicts([want], PortCheck(STACK, [own], local=True)) == ([], [])


@pytest.mark.parametrize(
    ("docker_text", "expected"),
    [
        (  # Docker 20.10's words, captured from the local engine
            "driver failed programming external connectivity on endpoint web-proxy (fccab2e3e0f8): "
            "Bind for 127.0.0.1:28999 failed: port is already allocated",
            "host port 127.0.0.1:28999 is already taken by another container",
        ),
        (
            "driver failed programming external connectivity on endpoint web-proxy (47b7cf51c52c): "
            "Error starting userland proxy: listen tcp4 127.0.0.1:28999: bind: address already in use",
            "host port 127.0.0.1:28999 is already taken by a process on the Docker host",
        ),
    ],
)
def test_apply_says_what_docker_meant_in_one_line_with_a_hint(docker_text: str, expected: str) -> None:
    said = port_error(docker_text)
    assert said is not None and said.startswith(expected) and "(hint: " in said
    assert "endpoint" not in said and "web-proxy" not in said
    assert port_error("No such image: x") is None
