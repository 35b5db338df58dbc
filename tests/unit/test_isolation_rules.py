"""Isolation rules on data: the egress policy's matching, the request parser, the mount checks, the helpers' shape.

The enforcement itself is tested against real containers in tests/integration/test_network_isolation.py; these
pin the rules where every edge case is cheap to state. Address spellings are fuzzed in test_egress_addresses.py.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from toolhive_apply.manifest.mounts import mount_problems
from toolhive_apply.providers.docker.host import DockerHostAddresses, network_gateways
from toolhive_apply.providers.workload.create_args import (
    container_env,
    egress_config,
    egress_host_config_args,
    host_config_args,
    isolation_network_args,
    isolation_network_labels,
    isolation_network_sound,
)
from toolhive_apply.providers.workload.observe import observe_units
from toolhive_apply.providers.workload.spec import egress_rules, isolated
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.proxy.config import ConfigError
from toolhive_apply.proxy.egress import EgressPolicy, RefusedError, load_policy, parse_head
from toolhive_apply.proxy.egress_addresses import parse_host

GATEWAY = "172.18.0.1"
HOST_LAN = "192.0.2.2"


def _policy(
    hosts: list[str], ports: list[int] | None = None, allow_all: bool = False, gateway: bool = False
) -> EgressPolicy:
    egress: dict[str, Any] = {"allow_all": allow_all, "allow_host": hosts, "allow_port": ports or []}
    egress["allow_docker_gateway"] = gateway
    egress["docker_host"] = {"gateways": [GATEWAY, "172.17.0.1"], "addresses": [HOST_LAN, "203.0.113.7"]}
    return load_policy({"name": "x-egress", "mode": "egress", "egress": egress})[2]


def _permits(policy: EgressPolicy, host: str, port: int) -> bool:
    return policy.permits(parse_host(host), port)


def _admits(policy: EgressPolicy, host: str, port: int, address: str) -> bool:
    return policy.admits(parse_host(host), port, ipaddress.ip_address(address))


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
    assert _permits(_policy([".github.com", "pypi.org"], [443]), host, port) is allowed


def test_a_listed_ip_literal_is_compared_as_an_address_in_any_spelling() -> None:
    policy = _policy(["10.0.0.5", "example.org", "[::ffff:10.0.0.6]"])
    assert _permits(policy, "example.org", 8443) and _permits(policy, "10.0.0.5", 22)
    for spelling in ("167772165", "0xa.5", "012.0.0.5", "10.5", "[::ffff:10.0.0.5]", "[64:ff9b::a00:5]", "10.0.0.5."):
        assert _permits(policy, spelling, 22), spelling
    assert _permits(policy, "10.0.0.6", 22)  # the listed IPv4-mapped literal is that IPv4 address
    assert not _permits(policy, "10.0.0.7", 22)
    assert _admits(policy, "10.0.0.5", 22, "10.0.0.5")


def test_allow_all_reaches_public_addresses_only() -> None:
    policy = _policy([], allow_all=True)
    assert _permits(policy, "anything.example", 1) and _admits(policy, "anything.example", 1, "93.184.216.34")
    refused = [
        "127.0.0.1", "0.0.0.0", "169.254.169.254", "100.100.100.200", "10.1.2.3", "172.31.255.1", "192.168.1.1",
        "192.0.2.9", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00:ec2::254", "ff02::1",
        "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    ]  # fmt: skip
    for address in refused:
        assert not _admits(policy, "anything.example", 1, address), address
    # a name resolving to a private address is refused; listed beside allow-all, it is allowed
    assert _admits(_policy(["intranet.example"], allow_all=True), "intranet.example", 80, "10.1.2.3")
    assert not _admits(_policy(["intranet.example"], allow_all=True), "other.example", 80, "10.1.2.3")


def test_the_docker_host_is_closed_to_every_rule_unless_allow_docker_gateway_opens_its_gateways() -> None:
    for policy in (_policy([], allow_all=True), _policy(["api.example", GATEWAY, HOST_LAN])):
        for host in (GATEWAY, "host.docker.internal", "GATEWAY.docker.internal."):
            assert not _permits(policy, host, 80), host
        assert not _admits(policy, "api.example", 80, GATEWAY)  # a listed name resolving to the host (rebinding)
        assert not _admits(policy, "api.example", 80, HOST_LAN)
        assert not _admits(policy, HOST_LAN, 80, HOST_LAN)  # even listed as a literal
    opened = _policy(["api.example"], ports=[443], gateway=True)
    for host in (GATEWAY, "host.docker.internal", "gateway.docker.internal", "[::ffff:172.18.0.1]"):
        assert _permits(opened, host, 5432), host  # any port, as in ToolHive
    assert _admits(opened, "host.docker.internal", 5432, "172.17.0.1")
    assert not _admits(opened, "host.docker.internal", 5432, HOST_LAN)  # the gateways only
    assert not _permits(opened, "api.example", 80)  # the rest of the profile is unchanged


def test_a_listed_name_never_leads_to_loopback_link_local_or_multicast() -> None:
    policy = _policy(["metadata.example", "localhost", "intranet.example"])
    for address in ("169.254.169.254", "127.0.0.1", "::1", "0.0.0.0", "224.0.0.251", "fe80::1"):
        assert not _admits(policy, "metadata.example", 80, address), address
    assert _admits(policy, "intranet.example", 80, "192.168.7.7")  # private: the user listed it
    assert _admits(_policy(["169.254.169.254"]), "169.254.169.254", 80, "169.254.169.254")  # a literal as listed


def test_a_bad_egress_document_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as raised:
        load_policy(
            {
                "mode": "egress",
                "listen_port": 0,
                "egress": {"allow_host": ["a b"], "allow_port": [70000], "docker_host": {"gateways": ["x"]}, "y": 1},
                "z": 1,
            }
        )
    assert len(raised.value.problems) == 7, raised.value.problems


def _request(head: bytes) -> Any:
    request = parse_head(head)
    assert request is not None
    return request


def test_absolute_uri_requests_are_rewritten_to_origin_form_with_one_canonical_host() -> None:
    head = (
        b"GET http://Allowed.Example.:8000/a/b?q=1 HTTP/1.1\r\nHost: allowed.example:8000\r\n"
        b"Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nConnection: x-hop\r\nX-Hop: 1\r\n"
        b"Accept: */*\r\n\r\n"
    )
    request = _request(head)
    assert (request.method, str(request.host), request.port, request.length) == ("GET", "allowed.example", 8000, 0)
    assert request.head == (
        b"GET /a/b?q=1 HTTP/1.1\r\nHost: allowed.example:8000\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    added = _request(b"GET http://0x7f.1/ HTTP/1.0\r\n\r\n")  # no Host: the judged authority is sent
    assert added.head == b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert _request(b"POST http://a.example/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n").length == 5
    assert _request(b"POST http://a.example/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").length is None


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"CONNECT api.github.com:443 HTTP/1.1\r\n\r\n", ("api.github.com", 443)),
        (b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", ("[2001:db8::1]", 443)),
        (b"CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1\r\n\r\n", ("127.0.0.1", 443)),
        (b"GET http://example.org HTTP/1.1\r\n\r\n", ("example.org", 80)),
        (b"GET http://2130706433:81/ HTTP/1.1\r\nHost: 127.0.0.1:81\r\n\r\n", ("127.0.0.1", 81)),
    ],
)
def test_destinations_are_read_from_connect_and_absolute_uris(head: bytes, expected: tuple[str, int]) -> None:
    request = _request(head)
    assert (str(request.host), request.port) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT api.github.com HTTP/1.1\r\n\r\n",  # no port
        b"CONNECT api.github.com: HTTP/1.1\r\n\r\n",
        b"CONNECT a@api.github.com:443 HTTP/1.1\r\n\r\n",
        b"CONNECT [::1:443 HTTP/1.1\r\n\r\n",
        b"CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n",  # zone ids: link-local by nature
        b"CONNECT example.org:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT example.org:\xb2 HTTP/1.1\r\n\r\n",  # a latin-1 superscript two is a digit to str.isdigit
        b"GET https://example.org/ HTTP/1.1\r\n\r\n",  # TLS is tunnelled with CONNECT, never originated
        b"GET /somewhere HTTP/1.1\r\n\r\n",  # not a proxy request
        b"GARBAGE\r\n\r\n",
        b"GET http://allowed.example@evil.example/ HTTP/1.1\r\n\r\n",  # userinfo: parsers disagree on the host
        b"GET http://%6c%6fcalhost/ HTTP/1.1\r\n\r\n",  # percent-encoded host
        b"GET http://a.example/#x HTTP/1.1\r\n\r\n",
        b"GET http://a.example\t.evil/ HTTP/1.1\r\n\r\n",  # urlsplit would drop the tab
        b"GET http://1.2.3.4.5/ HTTP/1.1\r\n\r\n",  # ends in a number but is no address
        b"GET http://a.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",  # Host names another authority
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",  # two Hosts
        b"GET http://a.example/ HTTP/1.1\r\nX: y\r\n folded: z\r\n\r\n",  # obsolete line folding
        b"GET http://a.example/ HTTP/1.1\r\nX: y\nHost: evil.example\r\n\r\n",  # a bare LF
        b"GET http://a.example/ HTTP/1.1\r\nHost : a.example\r\n\r\n",  # space before the colon
        b"POST http://a.example/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST http://a.example/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"POST http://a.example/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST http://a.example/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET http://a.example/ HTTP/2.0\r\n\r\n",
    ],
)
def test_requests_the_proxy_cannot_judge_are_refused(head: bytes) -> None:
    with pytest.raises(RefusedError) as raised:
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
def _spec(profile: dict[str, Any], isolation: bool = True, **extra: Any) -> WorkloadSpec:
    return WorkloadSpec.from_document(
        {"name": "w", "network_isolation": isolation, "permission_profile": profile, "env_vars": {}}
        | {"transport": "stdio", **extra}
    )


def test_egress_exists_only_when_an_isolated_profile_allows_a_way_out() -> None:
    allow = {"network": {"outbound": {"allow_host": ["b.example", "a.example"], "allow_port": [443, 443]}}}
    assert egress_rules(_spec(allow)) == {
        "allow_all": False,
        "allow_host": ["a.example", "b.example"],
        "allow_port": [443],
        "allow_docker_gateway": False,
    }
    none = {"name": "none", "network": {"outbound": {}, "inbound": {}}}
    assert egress_rules(_spec(none)) is None
    assert egress_rules(_spec({"network": {"outbound": {"allow_port": [443]}}})) is None  # ports but no host
    assert egress_rules(_spec(allow, isolation=False)) is None
    everything = {"network": {"outbound": {"insecure_allow_all": True, "allow_host": ["intranet.example"]}}}
    assert egress_rules(_spec(everything)) == {
        "allow_all": True,
        "allow_host": ["intranet.example"],  # kept: allow-all reaches public addresses only
        "allow_port": [],
        "allow_docker_gateway": False,
    }
    # ToolHive: the flag alone opens the host's gateways, so even `none` then gets an egress proxy
    assert egress_rules(_spec(none, allow_docker_gateway=True))["allow_docker_gateway"] is True  # type: ignore[index]
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
        labels["toolhive-apply.spec"] = json.dumps(dict(spec))
    return {"Id": f"id-{name}", "Names": [f"/{name}"], "State": state, "Labels": labels}


def _network(workload: str, **shape: Any) -> dict[str, Any]:
    """A network as the engine lists it, with the isolating shape unless `shape` overrides it."""
    name = f"toolhive-apply.s.{workload}.internal"
    labels = {"toolhive-apply.name": workload, "toolhive-apply.role": "isolation"}
    found = {"Internal": True, "EnableIPv6": False, "Options": {"com.docker.network.bridge.inhibit_ipv4": "true"}}
    return {"Name": name, "Labels": labels, **found, **shape}


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
    # a network of an older version's shape (the host's address on it), or reshaped by hand: the unit is remade
    for older in (_network("w", Options={}), _network("w", Internal=False), _network("w", EnableIPv6=True)):
        assert [r.status for r in observe_units("s", [server, proxy, egress], [older], ["w"]).values()] == [
            "drifted: internal network toolhive-apply.s.w.internal lets the server reach the Docker host: remade"
        ]


def test_the_internal_network_is_made_without_a_host_address_and_the_server_without_ipv6() -> None:
    spec = _spec({"network": {"outbound": {"allow_host": ["a.example"]}}})
    args = isolation_network_args()
    assert args["internal"] is True and args["enable_ipv6"] is False
    assert args["options"] == {"com.docker.network.bridge.inhibit_ipv4": "true"}
    made = {"Internal": args["internal"], "EnableIPv6": args["enable_ipv6"], "Options": args["options"]}
    assert isolation_network_sound(made)
    older = {"driver": "bridge", "internal": True, "name": "toolhive-apply.s.w.internal"}  # the hash of before
    from toolhive_apply.engine.resource import spec_hash

    assert isolation_network_labels(spec, "s")["toolhive-apply.config-hash"] != spec_hash(older)
    sysctls = host_config_args(WorkloadSpec.from_document({**spec, "volumes": []}), "n")["sysctls"]
    assert sysctls == {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
    assert "sysctls" not in host_config_args(
        WorkloadSpec.from_document({**spec, "volumes": [], "network_isolation": False}), "n"
    )


def test_the_egress_proxy_is_told_the_docker_host_and_resolves_its_names_only_when_opened() -> None:
    spec = _spec({"network": {"outbound": {"insecure_allow_all": True}}})
    host = DockerHostAddresses(("172.17.0.1", "172.18.0.1"), ("192.0.2.2",))
    config = egress_config(spec, host)
    assert config["egress"]["docker_host"] == {"gateways": ["172.17.0.1", "172.18.0.1"], "addresses": ["192.0.2.2"]}
    policy = load_policy(config)[2]  # what the engine writes, the proxy reads
    assert not _admits(policy, "x.example", 80, "172.18.0.1") and not _admits(policy, "x.example", 80, "192.0.2.2")
    assert "extra_hosts" not in egress_host_config_args(spec, "n")
    assert egress_host_config_args(spec.with_fields(allow_docker_gateway=True), "n")["extra_hosts"] == {
        "host.docker.internal": "host-gateway",
        "gateway.docker.internal": "host-gateway",
    }


def test_every_network_s_gateway_is_a_docker_host_address() -> None:
    networks = [
        {"IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}},
        {"IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}, {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}]}},
        {"IPAM": {"Config": []}},  # host, none
        {"IPAM": None},
    ]
    assert sorted(map(str, network_gateways(networks))) == ["10.9.0.1", "172.17.0.1", "fd00:1::1"]


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
    from toolhive_apply.providers.workload.spec import workload_spec
    from toolhive_apply.registry.resolve import resolve_registries

    def rules(manifest: Manifest) -> Any:
        workload = resolve_registries(manifest).manifest.workloads[0]
        return egress_rules(workload_spec(workload, manifest, 20000, None))

    registry_profile = {"network": {"outbound": {"allow_host": [".github.com"], "allow_port": [443]}}}
    from_registry = load_manifest([_registry_manifest(tmp_path, registry_profile)])
    assert rules(from_registry) == {
        "allow_all": False,
        "allow_host": [".github.com"],
        "allow_port": [443],
        "allow_docker_gateway": False,
    }
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


def test_allow_docker_gateway_is_a_workload_field_planned_like_the_others(tmp_path: Path) -> None:
    from toolhive_apply.engine.diff import field_changes
    from toolhive_apply.errors import ManifestError
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.providers.workload.spec import workload_spec

    def spec(extra: str) -> dict[str, Any]:
        path = tmp_path / "stack.yaml"
        path.write_text(
            "apiVersion: toolhive-apply/v1\nsettings: {stack: s}\n"
            f"workloads:\n  - {{name: w, image: x, network_isolation: true, permission_profile: none{extra}}}\n"
        )
        manifest = load_manifest([path])
        return workload_spec(manifest.workloads[0], manifest, 20000, None)

    before, after = spec(""), spec(", allow_docker_gateway: true")
    assert "allow_docker_gateway" not in before  # absent unless set: no other workload's hash moves
    assert egress_rules(before) is None and egress_rules(after) is not None  # the flag alone opens a way out
    assert [(f.path, f.before, f.after) for f in field_changes(before, after)][:1] == [
        ("allow_docker_gateway", None, True)
    ]
    with pytest.raises(ManifestError) as raised:
        spec(", allow_docker_gateway: 'yes'")
    assert any("allow_docker_gateway" in line for line in raised.value.lines())
    path = tmp_path / "loose.yaml"
    path.write_text(
        "apiVersion: toolhive-apply/v1\nsettings: {stack: s}\n"
        "workloads:\n  - {name: w, image: x, allow_docker_gateway: true}\n"
    )
    warnings = [str(w) for w in load_manifest([path]).warnings]
    assert any("allow_docker_gateway matters only with network_isolation" in w for w in warnings), warnings


def test_the_host_s_own_addresses_and_the_proxy_s_gateways_are_read_from_proc(tmp_path: Path) -> None:
    from toolhive_apply.providers.docker.host import docker_host_addresses, engine_is_local, local_addresses
    from toolhive_apply.proxy.egress import default_gateways

    (tmp_path / "fib_trie").write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     |-- 192.0.2.2\n        /32 host LOCAL\n     |-- 192.0.2.255\n        /32 link BROADCAST\n"
        "     |-- 127.0.0.1\n        /32 host LOCAL\n"
    )
    (tmp_path / "if_inet6").write_text(
        "fd000000000000000000000000000002 02 40 00 80     eth0\nfe8000000000000000fc00fffe000001 02 40 20 80     eth0\n"
    )
    assert sorted(map(str, local_addresses(tmp_path))) == ["127.0.0.1", "192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1"]
    assert engine_is_local("unix:///var/run/docker.sock") and engine_is_local("http+unix://%2Fvar%2Frun")
    assert not engine_is_local("ssh://me@far") and not engine_is_local("tcp://10.0.0.1:2376")
    remote = docker_host_addresses([{"IPAM": {"Config": [{"Gateway": "172.17.0.1"}]}}], "ssh://me@far")
    assert remote.gateways == ("172.17.0.1",) and remote.addresses == ()  # a remote host's interfaces are unknown

    (tmp_path / "route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    )
    (tmp_path / "ipv6_route").write_text(
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001"
        " 00000400 00000001 00000000 00000003     eth0\n"
    )
    assert [str(g) for g in default_gateways(tmp_path)] == ["172.18.0.1", "fd00::1"]
