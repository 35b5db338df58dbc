"""A destination as the resolver and the kernel will see it: one normal form per host, then one class per address.

A client can spell one address many ways: ``2130706433``, ``0x7f.1``, ``017700000001``, ``127.1`` (all glibc's
``inet_aton``), ``[::ffff:127.0.0.1]``, ``[::127.0.0.1]``, ``[64:ff9b::7f00:1]``, ``LOCALHOST.``. The egress proxy
decides only on the normal form computed here, and connects to exactly the address it checked, so no spelling can
mean one thing to the policy and another to the socket. Anything this module cannot place (percent-encoding,
userinfo, zone ids, a name ending in a number that is not a valid address) is refused, never guessed.

Stdlib only: this runs inside the proxy image.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NUMBER: Final = re.compile(r"(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)")
_NUMERIC_LOOKING: Final = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_LABEL: Final = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


class HostError(ValueError):
    """A host the proxy will not interpret: the request is refused as malformed."""


class AddressClass(Enum):
    """Where an address leads, as far as the egress decision is concerned.

    PUBLIC: the internet. PRIVATE: a network the Docker host is (or may be) on: RFC 1918, unique-local, shared
    (CGNAT), documentation and other special-purpose ranges, 6to4 and Teredo. LOCAL: never a destination reached
    by name: loopback, unspecified, link-local (cloud metadata), multicast, broadcast and reserved space.
    """

    PUBLIC = "public"
    PRIVATE = "private"
    LOCAL = "local"


_LOCAL_NETS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 itself connects to the local host
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255
        "::/128",
        "::1/128",
        "fe80::/10",
        "fec0::/10",  # deprecated site-local
        "ff00::/8",
    )
)
_PRIVATE_NETS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT); Alibaba Cloud's metadata is 100.100.100.200
        "172.16.0.0/12",  # includes Docker's default address pools 172.17-31
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # includes Docker's default pool 192.168.0.0/16
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "::/96",  # IPv4-compatible (deprecated); normalised to IPv4 before this table is read
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: tunnels to the embedded IPv4, whatever it is
        "3fff::/20",  # documentation
        "fc00::/7",  # unique local, AWS's IPv6 metadata fd00:ec2::254
    )
)


@dataclass(frozen=True, slots=True)
class Host:
    """A request's host in normal form: exactly one of `name` (lower case, no trailing dot) or `address`."""

    name: str | None = None
    address: IPAddress | None = None

    def __str__(self) -> str:
        if self.address is None:
            return str(self.name)
        return f"[{self.address}]" if self.address.version == 6 else str(self.address)


def canonical(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form carries when the packet ends at that IPv4 host (mapped, compatible, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = int(address)
    if address in _NAT64 or (packed >> 32 == 0 and packed > 1):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return address


def classify(address: IPAddress) -> AddressClass:
    """The class of an address after `canonical`."""
    address = canonical(address)
    if any(address in net for net in _LOCAL_NETS if net.version == address.version):
        return AddressClass.LOCAL
    if any(address in net for net in _PRIVATE_NETS if net.version == address.version):
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


def parse_address(text: str) -> IPAddress | None:
    """An IP literal in any spelling the resolver accepts (IPv6 without brackets), in canonical form; None when
    `text` is not one."""
    text = text.lower()
    if ":" in text:
        try:
            return canonical(ipaddress.IPv6Address(text))
        except ValueError:
            return None
    return _inet_aton(text.removesuffix("."))


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """glibc's ``inet_aton``: one to four parts, each decimal, octal (leading 0) or hex (0x), the last filling the
    remaining bytes. ``getaddrinfo`` takes these forms as addresses, so the policy must too."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    values = [_number(p) for p in parts]
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def _number(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:], 16)
    return int(part, 8) if part.startswith("0") else int(part)


def parse_host(text: str) -> Host:
    """The normal form of a request's host (no port); `HostError` for anything that is neither an address nor a
    plain DNS name."""
    if not text or len(text) > 255 or not text.isascii() or any(c in text for c in "%@/\\ \t\r\n\0"):
        raise HostError("not a host name or address")
    if text.startswith("["):
        inside = text[1:-1] if text.endswith("]") else ""
        address = parse_address(inside) if ":" in inside else None
        if address is None:
            raise HostError("not an IPv6 address")
        return Host(address=address)
    if ":" in text:
        raise HostError("an IPv6 address must be in brackets")
    address = parse_address(text)
    if address is not None:
        return Host(address=address)
    name = text.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise HostError("not a valid host name")
    if _NUMERIC_LOOKING.fullmatch(labels[-1]):
        raise HostError("a name ending in a number is not a valid address either")
    return Host(name=name)
