"""Every spelling of an address the egress proxy refuses is refused: a fuzz from the refused set outwards.

The refused set is written here independently of the proxy's own tables (what a user of insecure_allow_all must
never reach: the Docker host, loopback, link-local/metadata, private and special ranges), then each address is
re-encoded the ways resolvers and kernels accept (inet_aton's integer/octal/hex/short forms, IPv4-mapped,
IPv4-compatible and NAT64 IPv6, case, trailing dots, group zero-padding). The IPv4 parser is checked against
glibc's own getaddrinfo, which is what the proxy's socket would have used.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from toolhive_apply.proxy.egress_addresses import AddressClass, HostError, classify, parse_address, parse_host
from toolhive_apply.proxy.egress_policy import EgressPolicy, load_policy

GATEWAYS = ["172.17.0.1", "172.18.0.1", "10.200.0.1", "8.8.4.1", "fd00:1::1"]  # 8.8.4.1: a bridge in public space
HOST = ["192.0.2.2", "198.51.100.20", "203.0.113.9", "2001:db8::2"]
REFUSED_V4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
    "240.0.0.0/4",
]  # fmt: skip
REFUSED_V6 = ["::1/128", "::/128", "fe80::/10", "fc00::/7", "ff00::/8", "2001:db8::/32", "2002::/16", "2001::/32"]
PUBLIC = ["93.184.216.34", "140.82.112.3", "1.1.1.1", "2606:4700:4700::1111"]


def _allow_all(gateway: bool = False) -> EgressPolicy:
    docker_host = {"gateways": GATEWAYS, "addresses": HOST}
    egress = {"allow_all": True, "allow_docker_gateway": gateway, "docker_host": docker_host}
    return load_policy({"name": "t", "egress": egress})[2]


def _refused(policy: EgressPolicy, spelling: str, port: int = 80) -> bool:
    """The proxy's whole decision for a literal: unparsable, not permitted, or its address not admitted."""
    try:
        host = parse_host(spelling)
    except HostError:
        return True
    assert host.address is not None, spelling  # every spelling generated here is an address
    return not (policy.permits(host, port) and policy.admits(host, port, host.address))


def _in(nets: list[str]) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    def pick(net: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        network = ipaddress.ip_network(net)
        return st.integers(0, network.num_addresses - 1).map(lambda i: network[i])

    return st.sampled_from(nets).flatmap(pick)


def _number(draw: st.DrawFn, value: int) -> str:
    form = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
    if form == "dec":
        return str(value)
    zeros = "0" * draw(st.integers(0, 3))
    if form == "oct":
        return "0" + zeros + format(value, "o")
    return ("0x" if form == "hex" else "0X") + zeros + format(value, "x" if form == "hex" else "X")


@st.composite
def ipv4_spellings(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """One of the forms glibc's inet_aton (so getaddrinfo) reads as `address`, or an IPv6 form carrying it."""
    value = int(address)
    a, b, c, d = address.packed
    shape = draw(st.sampled_from(["1", "2", "3", "4", "mapped", "mapped-hex", "compatible", "nat64"]))
    if shape == "1":
        text = _number(draw, value)
    elif shape == "2":
        text = f"{_number(draw, a)}.{_number(draw, value & 0xFFFFFF)}"
    elif shape == "3":
        text = f"{_number(draw, a)}.{_number(draw, b)}.{_number(draw, (c << 8) | d)}"
    elif shape == "4":
        text = ".".join(_number(draw, part) for part in (a, b, c, d))
    else:
        high, low = value >> 16, value & 0xFFFF
        prefix = {"mapped": "::ffff:", "mapped-hex": "0:0:0:0:0:FFFF:", "compatible": "::", "nat64": "64:ff9b::"}
        tail = f"{high:x}:{low:04X}" if shape == "mapped-hex" else str(address)
        if shape == "compatible" and value <= 1:
            tail = f"{value:x}"  # ::0.0.0.1 is ::1, loopback itself
        return f"[{prefix[shape]}{tail}]"
    return text + draw(st.sampled_from(["", "."]))


@st.composite
def ipv6_spellings(draw: st.DrawFn, address: ipaddress.IPv6Address) -> str:
    text = draw(st.sampled_from([address.compressed, address.exploded]))
    return f"[{text.upper() if draw(st.booleans()) else text}]"


def _spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    if isinstance(address, ipaddress.IPv4Address):
        return ipv4_spellings(address)
    return ipv6_spellings(address)


refused_addresses = st.one_of(
    _in(REFUSED_V4),
    _in(REFUSED_V6),
    st.sampled_from([ipaddress.ip_address(a) for a in GATEWAYS + HOST]),
)


@settings(max_examples=400, deadline=None)
@given(refused_addresses.flatmap(lambda a: st.tuples(st.just(a), _spellings(a))))
@example((ipaddress.ip_address("127.0.0.1"), "2130706433"))
@example((ipaddress.ip_address("127.0.0.1"), "0x7f.1"))
@example((ipaddress.ip_address("127.0.0.1"), "017700000001"))
@example((ipaddress.ip_address("127.0.0.1"), "127.1"))
@example((ipaddress.ip_address("127.0.0.1"), "[::ffff:127.0.0.1]"))
@example((ipaddress.ip_address("127.0.0.1"), "[::127.0.0.1]"))
@example((ipaddress.ip_address("127.0.0.1"), "[64:ff9b::7f00:1]"))
@example((ipaddress.ip_address("2002:7f00:1::"), "[2002:7f00:1::]"))
@example((ipaddress.ip_address("169.254.169.254"), "0251.0376.0251.0376"))
def test_every_spelling_of_a_refused_address_is_refused_to_allow_all(
    case: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str],
) -> None:
    address, spelling = case
    assert _refused(_allow_all(), spelling), (address, spelling)
    if str(address) not in GATEWAYS:
        assert _refused(_allow_all(gateway=True), spelling), (address, spelling)  # the flag opens gateways only


@settings(max_examples=300, deadline=None)
@given(_in(REFUSED_V4).flatmap(lambda a: st.tuples(st.just(a), ipv4_spellings(a))))
def test_every_ipv4_spelling_means_to_the_policy_what_it_means_to_the_socket(
    case: tuple[ipaddress.IPv4Address, str],
) -> None:
    address, spelling = case
    parsed = parse_host(spelling).address
    if spelling in ("[::0]", "[::1]"):  # ::0.0.0.0 and ::0.0.0.1 are IPv6's own unspecified and loopback addresses
        assert parsed is not None and parsed.version == 6 and classify(parsed) is classify(address), spelling
    else:
        assert parsed == address, spelling
    if not spelling.startswith("[") and not spelling.endswith("."):  # glibc's own reading of the same text
        resolved = socket.getaddrinfo(spelling, 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        assert resolved[0][4][0] == str(address), spelling


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_the_ipv4_parser_accepts_exactly_what_getaddrinfo_takes_as_an_address(text: str) -> None:
    try:
        glibc = socket.getaddrinfo(text, 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0][4][0]
    except (OSError, UnicodeError):
        glibc = None
    ours = parse_address(text)
    if glibc is not None:
        assert ours is not None and str(ours) == glibc, text
    elif ours is not None:
        assert text.endswith("."), text  # one trailing dot is ours to normalise (a resolver would look it up)
        assert parse_address(text[:-1]) == ours


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"[a-z]([a-z0-9-]{0,9}[a-z0-9])?(\.[a-z]([a-z0-9-]{0,9}[a-z0-9])?){0,3}", fullmatch=True),
    refused_addresses,
)
def test_a_name_that_resolves_to_a_refused_address_is_refused_whatever_the_name(
    name: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    host = parse_host(name)
    policy = _allow_all()
    assert not (policy.permits(host, 443) and policy.admits(host, 443, address)), (name, address)
    listed = load_policy({"name": "t", "egress": {"allow_host": [name], "docker_host": {"gateways": GATEWAYS}}})[2]
    if classify(address) is AddressClass.LOCAL or str(address) in GATEWAYS:
        assert not listed.admits(host, 443, address), (name, address)  # rebinding a listed name


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_stay_reachable_to_allow_all_in_every_spelling(address: str) -> None:
    ip = ipaddress.ip_address(address)
    spellings = [f"[{ip}]"] if ip.version == 6 else [address, str(int(ip)), f"[::ffff:{ip}]", f"{address}."]
    for spelling in spellings:
        assert not _refused(_allow_all(), spelling), spelling


@pytest.mark.parametrize(
    "text",
    ["localhost.", "LOCALHOST", "LocalHost", "host.docker.internal.", "HOST.DOCKER.INTERNAL"],
)
def test_names_are_compared_in_one_case_without_the_trailing_dot(text: str) -> None:
    assert parse_host(text).name == text.lower().rstrip(".")
    assert not _allow_all().permits(parse_host("host.docker.internal"), 80)


@pytest.mark.parametrize(
    "text",
    ["", "a b", "a%2eb", "%6c%6fcalhost", "a@b", "[fe80::1%25eth0]", "[fe80::1%eth0]", "fe80::1", "[1.2.3.4]",
     "1.2.3.4.5", "08.1.2.3", "0x", "a..b", "-", "a/b", "a\\b", "ex\u00e4mple.com", "[v1.x]", "[::1", "x" * 64],
)  # fmt: skip
def test_hosts_that_are_neither_an_address_nor_a_plain_name_are_refused(text: str) -> None:
    with pytest.raises(HostError):
        parse_host(text)
