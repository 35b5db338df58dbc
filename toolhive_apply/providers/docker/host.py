"""The Docker host's own addresses, which an isolated workload's egress proxy must refuse.

The egress proxy runs in a container and cannot see the host's interfaces, so the engine side hands it what it
knows: every Docker network's gateway (from the one network list the observation already makes), and, when the
engine is on this machine, this machine's interface addresses. The proxy adds its own routes' gateways at start.
A list can go stale (a network created later); the proxy's rules do not: allow-all never reaches private ranges.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_LOCAL_SCHEMES = ("unix", "http+unix", "npipe", "")


@dataclass(frozen=True, slots=True)
class DockerHostAddresses:
    """Sorted, de-duplicated address texts: `gateways` (what ``allow_docker_gateway`` opens) and `addresses`
    (the host's other addresses, never opened)."""

    gateways: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


def _ip(text: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text).split("/", 1)[0].split("%", 1)[0])
    except ValueError:
        return None


def network_gateways(networks: Iterable[Mapping[str, Any]]) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Each network's gateway, or the first address of a subnet that names none (Docker's own default)."""
    found = set()
    for network in networks:
        for config in (network.get("IPAM") or {}).get("Config") or ():
            gateway = _ip(config.get("Gateway")) if config.get("Gateway") else None
            if gateway is None and config.get("Subnet"):
                try:
                    gateway = next(ipaddress.ip_network(str(config["Subnet"]), strict=False).hosts(), None)
                except ValueError:
                    gateway = None
            if gateway is not None:
                found.add(gateway)
    return found


def local_addresses(proc: Path = Path("/proc/net")) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's IPv4 and IPv6 interface addresses, from Linux's /proc (empty elsewhere)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        trie = (proc / "fib_trie").read_text(encoding="ascii").splitlines()
    except OSError:
        trie = []
    for previous, line in itertools.pairwise(trie):
        if line.strip() == "/32 host LOCAL":  # the line before names the address
            address = _ip(previous.strip().removeprefix("|-- "))
            if address is not None:
                found.add(address)
    try:
        inet6 = (proc / "if_inet6").read_text(encoding="ascii").splitlines()
    except OSError:
        inet6 = []
    for line in inet6:
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.add(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
    return found


def engine_is_local(endpoint: str) -> bool:
    """A unix socket (or Windows pipe) engine runs on this machine; tcp:// and ssh:// ones may not."""
    return urlparse(endpoint).scheme in _LOCAL_SCHEMES


def docker_host_addresses(networks: Iterable[Mapping[str, Any]], endpoint: str) -> DockerHostAddresses:
    gateways = network_gateways(networks)
    others = (local_addresses() if engine_is_local(endpoint) else set()) - gateways
    return DockerHostAddresses(
        tuple(str(a) for a in sorted(gateways, key=_order)),
        tuple(str(a) for a in sorted(others, key=_order)),
    )


def _order(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
    return (address.version, int(address))
