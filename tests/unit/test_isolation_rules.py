"""Isolation rules on data: the egress policy's matching, the request parser, the mount checks, the helpers' shape.

The enforcement itself is tested against real containers in tests/integration/test_network_isolation.py; these
pin the rules where every edge case is cheap to state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolhive_apply.manifest.mounts import mount_problems
from toolhive_apply.providers.workload_observation import observe_units
from toolhive_apply.providers.workload_spec import container_env, egress_rules, isolated
from toolhive_apply.proxy.config import ConfigError
from toolhive_apply.proxy.egress import EgressPolicy, _RefusedError, load_policy, parse_head


def _policy(hosts: list[str], ports: list[int] | None = None, allow_all: bool = False) -> EgressPolicy:
    raw = {"name": "x-egress", "mode": "egress", "egress": {"allow_all": allow_all, "allow_host": hosts}}
    raw["egress"]["allow_port"] = ports or []
    return load_policy(raw)[2]


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("api.github.com", 443, True),
        ("github.com", 443, True),  # Squid's leading dot matches the domain itself too
        ("API.GitHub.com.", 443, True),  # case and a trailing dot do not matter
        ("evilgithub.com", 443, False),
        ("github.com.evil.net", 443, False),
        ("api.github.com", 80, False),  # a port not listed
        ("pypi.org", 443, True),
        ("www.pypi.org", 443, False),  # no leading dot: exact only
        ("140.82.112.3", 443, False),  # a raw IP is not a listed name
    ],
)
def test_hosts_and_ports_match_like_squid_dstdomain(host: str, port: int, allowed: bool) -> None:
    assert _policy([".github.com", "pypi.org"], [443]).allows_name(host, port) is allowed


def test_no_ports_listed_means_any_port_of_a_listed_host_and_a_listed_ip_literal_is_allowed() -> None:
    policy = _policy(["10.0.0.5", "example.org"])
    assert policy.allows_name("example.org", 8443) and policy.allows_name("10.0.0.5", 22)
    assert not policy.allows_name("10.0.0.6", 22)


def test_allow_all_still_closes_loopback_metadata_and_gateway_addresses() -> None:
    policy = _policy([], allow_all=True)
    assert policy.allows_name("anything.example", 1)
    assert policy.allows_address("93.184.216.34", ())
    for address in ("127.0.0.1", "169.254.169.254", "::1", "fe80::1%eth0"):
        assert not policy.allows_address(address, ()), address
    import ipaddress

    assert not policy.allows_address("172.18.0.1", (ipaddress.ip_network("172.18.0.1/32"),))
    assert _policy(["metadata.internal"]).allows_address("169.254.169.254", ())  # listed explicitly: allowed


def test_a_bad_egress_document_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as raised:
        load_policy({"mode": "egress", "listen_port": 0, "egress": {"allow_host": "x", "allow_port": [70000]}, "z": 1})
    assert len(raised.value.problems) == 5, raised.value.problems


def test_absolute_uri_requests_are_rewritten_to_origin_form_without_proxy_headers() -> None:
    head = (
        b"GET http://user@allowed.example:8000/a/b?q=1 HTTP/1.1\r\nHost: allowed.example:8000\r\n"
        b"Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n"
    )
    request = parse_head(head)
    assert request is not None
    assert (request.method, request.host, request.port) == ("GET", "allowed.example", 8000)
    assert request.head == (
        b"GET /a/b?q=1 HTTP/1.1\r\nHost: allowed.example:8000\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"CONNECT api.github.com:443 HTTP/1.1\r\n\r\n", ("api.github.com", 443)),
        (b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", ("2001:db8::1", 443)),
        (b"GET http://example.org/ HTTP/1.1\r\n\r\n", ("example.org", 80)),
    ],
)
def test_destinations_are_read_from_connect_and_absolute_uris(head: bytes, expected: tuple[str, int]) -> None:
    request = parse_head(head)
    assert request is not None and (request.host, request.port) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT api.github.com HTTP/1.1\r\n\r\n",  # no port
        b"GET https://example.org/ HTTP/1.1\r\n\r\n",  # TLS is tunnelled with CONNECT, never originated
        b"GET /somewhere HTTP/1.1\r\n\r\n",  # not a proxy request
        b"GARBAGE\r\n\r\n",
        b"CONNECT example.org:99999 HTTP/1.1\r\n\r\n",
    ],
)
def test_requests_the_proxy_cannot_judge_are_refused(head: bytes) -> None:
    with pytest.raises(_RefusedError) as raised:
        parse_head(head)
    assert raised.value.status == 400


def test_health_is_answered_by_the_proxy_itself() -> None:
    assert parse_head(b"GET /health HTTP/1.1\r\n\r\n") is None


# -- mounts ------------------------------------------------------------------------------------------------------
def test_mounts_that_expose_the_host_or_do_not_exist_are_refused_unless_acknowledged(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    profile = {"read": ["./data:/data", "/proc:/p", "./missing:/m"], "write": ["/etc/ssl:/ssl", "/tmp:/t"]}
    volumes = ("/var/run/docker.sock:/s", "./data:/d2:ro")
    problems = dict(mount_problems(tmp_path, profile, volumes, ()))
    assert set(problems) == {
        ("volumes", 0),
        ("permission_profile", "read", 1),
        ("permission_profile", "read", 2),
        ("permission_profile", "write", 0),
    }
    assert "Docker socket" in problems[("volumes", 0)]
    assert "does not exist" in problems[("permission_profile", "read", 2)]
    assert "system files" in problems[("permission_profile", "write", 0)]
    acknowledged = dict(mount_problems(tmp_path, profile, volumes, ("./missing", "/etc/ssl", "/var/run/docker.sock")))
    assert set(acknowledged) == {("permission_profile", "read", 1)}


def test_a_read_only_mount_of_a_system_directory_needs_no_acknowledgement(tmp_path: Path) -> None:
    assert list(mount_problems(tmp_path, {"read": ["/etc/ssl/certs:/certs"]}, (), ())) == []


# -- the unit's shape --------------------------------------------------------------------------------------------
def _spec(profile: dict[str, Any], isolation: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": "w", "network_isolation": isolation, "permission_profile": profile, "env_vars": {}} | {
        "transport": "stdio",
        **extra,
    }


def test_egress_exists_only_when_an_isolated_profile_allows_a_way_out() -> None:
    allow = {"network": {"outbound": {"allow_host": ["b.example", "a.example"], "allow_port": [443, 443]}}}
    assert egress_rules(_spec(allow)) == {
        "allow_all": False,
        "allow_host": ["a.example", "b.example"],
        "allow_port": [443],
    }
    assert egress_rules(_spec({"name": "none", "network": {"outbound": {}, "inbound": {}}})) is None
    assert egress_rules(_spec({"network": {"outbound": {"allow_port": [443]}}})) is None  # ports but no host
    assert egress_rules(_spec(allow, isolation=False)) is None
    assert egress_rules(_spec({"network": {"outbound": {"insecure_allow_all": True}}}))["allow_all"] is True  # type: ignore[index]
    assert not isolated(_spec({"network": {"mode": "host"}}))
    assert not isolated(_spec(allow, remote=True))
    env = container_env(_spec(allow))
    assert env["HTTPS_PROXY"] == "http://w-egress:3128" and env["NO_PROXY"] == "localhost,127.0.0.1,::1"
    assert "HTTPS_PROXY" not in container_env(_spec(allow, isolation=False))


def _container(name: str, role: str | None = None, state: str = "running", spec: Any = None) -> dict[str, Any]:
    import json

    labels = {"toolhive": "true", "toolhive-apply.name": name.split("-")[0]}
    if role:
        labels["toolhive-apply.role"] = role
    if spec is not None:
        labels["toolhive-apply.spec"] = json.dumps(spec)
    return {"Id": f"id-{name}", "Names": [f"/{name}"], "State": state, "Labels": labels}


def _network(workload: str) -> dict[str, Any]:
    name = f"toolhive-apply.s.{workload}.internal"
    return {"Name": name, "Labels": {"toolhive-apply.name": workload, "toolhive-apply.role": "isolation"}}


def test_a_unit_is_running_only_when_its_network_and_egress_are_there() -> None:
    allow = {"network": {"outbound": {"allow_host": ["a.example"]}}}
    spec = _spec(allow)
    server = _container("w", spec=spec)
    server["NetworkSettings"] = {"Networks": {"toolhive-apply.s.w.internal": {}}}
    proxy = _container("w-proxy", "proxy")
    egress = _container("w-egress", "egress")
    gate = _container("w-gate", "gate")  # a stdio unit's docker gate
    full = observe_units("s", [server, proxy, egress, gate], [_network("w")], ["w"])
    assert [r.status for r in full.values()] == ["running"]
    assert next(iter(full.values())).facts["network"] == "toolhive-apply.s.w.internal"
    assert [r.status for r in observe_units("s", [server, proxy, gate], [_network("w")], ["w"]).values()] == [
        "egress missing"
    ]
    assert [r.status for r in observe_units("s", [server, proxy, egress, gate], [], ["w"]).values()] == [
        "drifted: internal network missing"
    ]
    # someone connected the server to a network with a route out: recreated, not trusted
    escaped = {**server, "NetworkSettings": {"Networks": {"toolhive-apply.s.w.internal": {}, "bridge": {}}}}
    assert [r.status for r in observe_units("s", [escaped, proxy, egress, gate], [_network("w")], ["w"]).values()] == [
        "drifted: attached to bridge, toolhive-apply.s.w.internal"
    ]


def test_helpers_and_networks_without_their_server_are_orphans_unless_the_workload_is_wanted() -> None:
    observed = observe_units("s", [_container("w-egress", "egress")], [_network("w"), _network("v")], ["v"])
    assert {rid.name: r.status for rid, r in observed.items()} == {
        "w-egress": "orphaned",
        "toolhive-apply.s.w.internal": "orphaned",
    }
    assert observed[next(rid for rid in observed if rid.name.endswith("internal"))].facts["network"] == (
        "toolhive-apply.s.w.internal"
    )


# -- profiles from a registry entry ------------------------------------------------------------------------------
def _registry_manifest(tmp_path: Path, permissions: dict[str, Any], workload_extra: str = "") -> Path:
    import json

    entry = {
        "description": "A server whose profile comes from the catalogue",
        "tier": "Community",
        "status": "Active",
        "transport": "stdio",
        "tools": ["t"],
        "image": "toolhive-apply-test/python:latest",
        "permissions": permissions,
    }
    registry = {"version": "1.0.0", "last_updated": "2026-11-01T00:00:00Z", "servers": {"fetch": entry}}
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    path = tmp_path / "stack.yaml"
    path.write_text(
        "apiVersion: toolhive-apply/v1\nsettings: {stack: s}\nregistries: [{name: r, local_path: ./registry.json}]\n"
        "workloads:\n  - {name: f, registry: r, server: fetch, network_isolation: true" + workload_extra + "}\n"
    )
    return path


def test_a_registry_entry_profile_is_enforced_unless_the_workload_sets_its_own(tmp_path: Path) -> None:
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.manifest.model import Manifest
    from toolhive_apply.providers.workload_spec import workload_spec
    from toolhive_apply.registry.resolve import resolve_registries

    def rules(manifest: Manifest) -> Any:
        workload = resolve_registries(manifest).manifest.workloads[0]
        return egress_rules(workload_spec(workload, manifest, 20000, None))

    registry_profile = {"network": {"outbound": {"allow_host": [".github.com"], "allow_port": [443]}}}
    from_registry = load_manifest([_registry_manifest(tmp_path, registry_profile)])
    assert rules(from_registry) == {"allow_all": False, "allow_host": [".github.com"], "allow_port": [443]}
    own = load_manifest([_registry_manifest(tmp_path, registry_profile, ", permission_profile: none")])
    assert rules(own) is None  # the workload's own profile wins: no way out


def test_a_registry_entry_cannot_mount_the_host_without_the_manifest_saying_so(tmp_path: Path) -> None:
    from toolhive_apply.errors import ManifestError
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.registry.resolve import resolve_registries

    manifest = load_manifest([_registry_manifest(tmp_path, {"write": ["/var/run/docker.sock:/s"]})])
    with pytest.raises(ManifestError) as raised:
        resolve_registries(manifest)
    assert any("Docker socket" in line and "from registry r/fetch" in line for line in raised.value.lines())


def test_a_path_that_escapes_through_a_symlink_or_dot_dot_is_judged_by_where_it_lands(tmp_path: Path) -> None:
    (tmp_path / "innocent").symlink_to("/proc")
    depth = len(tmp_path.parts) - 1
    problems = dict(mount_problems(tmp_path, {"read": ["./innocent:/i", "./" + "../" * depth + "sys:/s"]}, (), ()))
    assert "/proc would expose the host" in problems[("permission_profile", "read", 0)]
    assert "/sys would expose the host" in problems[("permission_profile", "read", 1)]


def test_an_internal_network_beside_a_server_that_is_not_isolated_is_a_leftover() -> None:
    server = _container("w", spec=_spec({"network": {"outbound": {"insecure_allow_all": True}}}, isolation=False))
    server["NetworkSettings"] = {"Networks": {"bridge": {}}}  # a non-isolated stdio server: the default bridge
    helpers = [_container("w-proxy", "proxy"), _container("w-gate", "gate")]
    observed = observe_units("s", [server, *helpers], [_network("w")], ["w"])
    assert {rid.name: r.status for rid, r in observed.items()} == {
        "w": "running",
        "toolhive-apply.s.w.internal": "orphaned",
    }
