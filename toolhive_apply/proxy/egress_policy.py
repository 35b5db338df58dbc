"""What one isolated workload may reach: the egress proxy's decision, on normalised hosts and addresses only.

Two questions, in this order. `permits`: may the client ask for this host and port at all (ToolHive's Squid
semantics: ``allow_host`` entries match exactly, a leading dot matches the domain and its subdomains, ``allow_port``
restricts ports, ``insecure_allow_all`` asks nothing)? `admits`: may the proxy connect to this address, one the
proxy resolved itself (DNS rebinding: resolve once, check every address, connect to exactly a checked one)?

The Docker host is never a destination unless the workload says ``allow_docker_gateway`` (ToolHive's field): its
gateway addresses then open on any port, as in ToolHive; its other addresses stay closed. Loopback, link-local
(cloud metadata), multicast and the like are never reached through a name. With ``insecure_allow_all`` only public
addresses are reached: private ranges are where the Docker host and its neighbours live (every Docker bridge and
most hosts' own addresses), so reaching them needs an explicit ``allow_host`` entry, which may sit beside
``insecure_allow_all``. A listed IP literal is allowed as listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from toolhive_apply.proxy.config import ConfigError
from toolhive_apply.proxy.egress_addresses import AddressClass, Host, HostError, IPAddress, classify, parse_host

EGRESS_PORT: Final = 3128
# ToolHive's names for the Docker host (pkg/container/docker: dockerGatewayHostname, dockerAltGatewayHostname)
GATEWAY_NAMES: Final = frozenset({"host.docker.internal", "gateway.docker.internal"})
_KEYS: Final = frozenset({"name", "mode", "listen_port", "egress", "log_level"})
_EGRESS_KEYS: Final = frozenset({"allow_all", "allow_host", "allow_port", "allow_docker_gateway", "docker_host"})


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """One workload's rules. `names` are normal-form names (a leading dot: the domain and its subdomains),
    `addresses` the listed IP literals; `gateways` and `host` are every known address of the Docker host."""

    allow_all: bool = False
    names: tuple[str, ...] = ()
    addresses: frozenset[IPAddress] = frozenset()
    ports: frozenset[int] = frozenset()
    allow_docker_gateway: bool = False
    gateways: frozenset[IPAddress] = frozenset()
    host: frozenset[IPAddress] = frozenset()

    def with_gateways(self, found: Iterable[IPAddress]) -> EgressPolicy:
        """The same rules, knowing more gateways (the proxy's own default routes, read at start)."""
        return EgressPolicy(
            self.allow_all,
            self.names,
            self.addresses,
            self.ports,
            self.allow_docker_gateway,
            self.gateways | frozenset(found),
            self.host,
        )

    def _port_ok(self, port: int) -> bool:
        return not self.ports or port in self.ports

    def listed(self, host: Host, port: int) -> bool:
        """An ``allow_host`` entry names this host (and the port is allowed)."""
        if not self._port_ok(port):
            return False
        if host.address is not None:
            return host.address in self.addresses
        name = str(host.name)
        return any(name == e[1:] or name.endswith(e) if e.startswith(".") else name == e for e in self.names)

    def permits(self, host: Host, port: int) -> bool:
        """The request-level decision, before any resolution."""
        if host.name in GATEWAY_NAMES or host.address in self.gateways:
            return self.allow_docker_gateway  # ToolHive: denied before any allow rule, unless the flag opens it
        return self.listed(host, port) or self.allow_all

    def admits(self, host: Host, port: int, address: IPAddress) -> bool:
        """May the proxy connect to `address` (resolved from, or equal to, `host`)?"""
        if address in self.gateways:
            return self.allow_docker_gateway
        if address in self.host:
            return False
        if host.address is not None and self.listed(host, port):
            return True  # exactly the literal that was listed
        kind = classify(address)
        if self.listed(host, port):
            return kind is not AddressClass.LOCAL
        return self.allow_all and kind is AddressClass.PUBLIC


def _problems(raw: Mapping[str, Any], egress: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if not isinstance(raw.get("name"), str) or not raw.get("name"):
        problems.append("name: required")
    port = raw.get("listen_port", EGRESS_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems.append("listen_port: must be an integer from 1 to 65535")
    if sorted(set(raw) - _KEYS):
        problems.append(f"unknown keys {sorted(set(raw) - _KEYS)}")
    if sorted(set(egress) - _EGRESS_KEYS):
        problems.append(f"egress: unknown keys {sorted(set(egress) - _EGRESS_KEYS)}")
    hosts = egress.get("allow_host") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) and _entry(h) is not None for h in hosts):
        problems.append("egress.allow_host: must be a list of host names or IP addresses")
    ports = egress.get("allow_port") or []
    if not isinstance(ports, list) or not all(_is_port(p) for p in ports):
        problems.append("egress.allow_port: must be a list of ports")
    docker_host = egress.get("docker_host") or {}
    if not isinstance(docker_host, dict) or _addresses(docker_host.get("gateways")) is None:
        problems.append("egress.docker_host.gateways: must be a list of IP addresses")
    elif _addresses(docker_host.get("addresses")) is None:
        problems.append("egress.docker_host.addresses: must be a list of IP addresses")
    return problems


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _entry(text: str) -> Host | None:
    """An ``allow_host`` entry (or an address of the Docker host) in normal form, a leading dot set aside; an IPv6
    address may come with or without brackets. None when it is not a host."""
    text = text.strip().removeprefix(".")
    try:
        return parse_host(f"[{text}]" if ":" in text and not text.startswith("[") else text)
    except HostError:
        return None


def _addresses(values: object) -> frozenset[IPAddress] | None:
    if values is None:
        return frozenset()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return None
    found = [_entry(v) for v in values]
    if any(h is None or h.address is None for h in found):
        return None
    return frozenset(h.address for h in found if h is not None and h.address is not None)


def load_policy(raw: Mapping[str, Any]) -> tuple[str, int, EgressPolicy]:
    """(name, listen port, policy) from THV_PROXY_CONFIG's egress document; every problem reported at once."""
    egress = raw.get("egress")
    problems = [] if isinstance(egress, dict) else ["egress: required object {allow_all, allow_host, allow_port}"]
    egress = egress if isinstance(egress, dict) else {}
    problems += _problems(raw, egress)
    if problems:
        raise ConfigError(problems)
    names: list[str] = []
    addresses: set[IPAddress] = set()
    for text in egress.get("allow_host") or []:
        entry = _entry(text)
        assert entry is not None  # checked above
        if entry.address is not None:
            addresses.add(entry.address)
        else:
            names.append(("." if text.strip().startswith(".") else "") + str(entry.name))
    docker_host = egress.get("docker_host") or {}
    policy = EgressPolicy(
        allow_all=bool(egress.get("allow_all")),
        names=tuple(names),
        addresses=frozenset(addresses),
        ports=frozenset(egress.get("allow_port") or ()),
        allow_docker_gateway=bool(egress.get("allow_docker_gateway")),
        gateways=_addresses(docker_host.get("gateways")) or frozenset(),
        host=_addresses(docker_host.get("addresses")) or frozenset(),
    )
    return str(raw["name"]), int(raw.get("listen_port", EGRESS_PORT)), policy
