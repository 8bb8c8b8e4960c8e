"""Where webhooks may go: URL checks, resolution once, and refused address ranges."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest

from api.webhooks.destination import (
    RefusedDestinationError,
    UnresolvedDestinationError,
    address_allowed,
    resolve_destination,
)


def answers(*addresses: str) -> Any:
    """A stand-in for ``getaddrinfo`` whose every name resolves to ``addresses``."""

    def resolve(host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
        result = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            result.append((family, socket.SOCK_STREAM, 6, "", (address, port)))
        return result

    return resolve


def no_such_host(host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_public_host_is_reached_at_its_vetted_address() -> None:
    destination = resolve_destination(
        "https://hooks.example.com/genstream?x=1",
        https_only=True,
        allow_loopback=False,
        resolver=answers("93.184.216.34"),
    )
    assert destination.request_url == "https://93.184.216.34:443/genstream?x=1"
    assert destination.host_header == "hooks.example.com"
    assert destination.server_name == "hooks.example.com"
    assert destination.address == "93.184.216.34"


def test_ipv6_and_explicit_port() -> None:
    destination = resolve_destination(
        "http://hooks.example.com:8080",
        https_only=False,
        allow_loopback=False,
        resolver=answers("2606:2800:220:1:248:1893:25c8:1946"),
    )
    assert destination.request_url == "http://[2606:2800:220:1:248:1893:25c8:1946]:8080/"
    assert destination.host_header == "hooks.example.com:8080"
    assert destination.server_name is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.10",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
        "224.0.0.1",
        "240.0.0.1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(RefusedDestinationError):
        resolve_destination(
            "https://hooks.example.com/x",
            https_only=True,
            allow_loopback=False,
            resolver=answers(address),
        )


# IPv6 forms that carry an IPv4 address: ``ipaddress`` calls most of them global whatever
# they carry, so the address inside is what is vetted.
EMBEDDED_INTERNAL = [
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::10.0.0.1",
    "::169.254.169.254",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
    "::ffff:0:10.0.0.1",
    "64:ff9b::127.0.0.1",  # NAT64, well-known prefix
    "64:ff9b::10.0.0.1",
    "64:ff9b::169.254.169.254",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
]


@pytest.mark.parametrize("address", EMBEDDED_INTERNAL)
def test_internal_ipv4_inside_ipv6_is_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), allow_loopback=False)
    with pytest.raises(RefusedDestinationError):
        resolve_destination(
            "https://hooks.example.com/x",
            https_only=True,
            allow_loopback=False,
            resolver=answers(address),
        )


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b:1::5db8:d822",  # local-use NAT64: where it leads is the local network's choice
        "64:ff9b:1:ffff::1",
        "::",  # unspecified
        "::0.0.0.2",
    ],
)
def test_local_translation_prefixes_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), allow_loopback=True)


@pytest.mark.parametrize(
    "address",
    ["::ffff:93.184.216.34", "64:ff9b::93.184.216.34", "2002:5db8:d822::1", "::93.184.216.34"],
)
def test_a_public_ipv4_inside_ipv6_is_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), allow_loopback=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:0:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
    ],
)
def test_literal_loopback_in_ipv6_clothing_is_loopback(url: str) -> None:
    """The real resolver: a literal address needs no DNS."""
    with pytest.raises(RefusedDestinationError):
        resolve_destination(url, https_only=False, allow_loopback=False)
    allowed = resolve_destination(url, https_only=False, allow_loopback=True)
    assert allowed.host_header == urlsplit(url).netloc


def test_a_refusal_does_not_name_the_address() -> None:
    """What a user sees of a refusal says nothing of where an internal name leads."""
    with pytest.raises(RefusedDestinationError) as refused:
        resolve_destination(
            "https://intranet.example.com/x",
            https_only=True,
            allow_loopback=False,
            resolver=answers("10.20.30.40"),
        )
    assert "10.20.30.40" not in refused.value.public
    assert "10.20.30.40" in str(refused.value)


def test_one_internal_answer_among_public_ones_refuses_the_name() -> None:
    with pytest.raises(RefusedDestinationError):
        resolve_destination(
            "https://hooks.example.com/x",
            https_only=True,
            allow_loopback=False,
            resolver=answers("93.184.216.34", "10.1.2.3"),
        )


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_only_when_allowed(address: str) -> None:
    destination = resolve_destination(
        "http://localhost:9999/hook",
        https_only=False,
        allow_loopback=True,
        resolver=answers(address),
    )
    assert ipaddress.ip_address(destination.address) == ipaddress.ip_address(address)


def test_allowing_loopback_allows_nothing_else_internal() -> None:
    with pytest.raises(RefusedDestinationError):
        resolve_destination(
            "http://intranet/hook",
            https_only=False,
            allow_loopback=True,
            resolver=answers("192.168.0.1"),
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # plain http where https is required
        "https://user:pass@hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https:///x",
        "https://hooks.example.com/a b",
        "https://hooks.example.com:99999/x",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(RefusedDestinationError):
        resolve_destination(
            url, https_only=True, allow_loopback=False, resolver=answers("93.184.216.34")
        )


def test_an_unresolvable_name_may_resolve_later() -> None:
    with pytest.raises(UnresolvedDestinationError):
        resolve_destination(
            "https://nowhere.invalid/x",
            https_only=True,
            allow_loopback=False,
            resolver=no_such_host,
        )
