"""Where a webhook may go: the URL checked, its host resolved once, every address vetted.

The request is then made to the vetted address itself (with the original ``Host`` header
and TLS server name), so a DNS answer that changes between the check and the connection
cannot point it at an internal service. Loopback is allowed only by a setting (local runs
and tests); private, link-local, multicast and reserved addresses never are. An IPv6 address
that carries an IPv4 one (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 and 6to4) is
judged by the IPv4 address it carries, and local-use NAT64 (``64:ff9b:1::/48``), which leads
wherever the local network decides, is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from api.jobs.validation import InvalidRequestError, check_webhook_url

__all__ = [
    "Destination",
    "RefusedDestinationError",
    "Resolver",
    "UnresolvedDestinationError",
    "address_allowed",
    "resolve_destination",
]

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
"""``socket.getaddrinfo`` or a stand-in with its signature."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedDestinationError(ValueError):
    """The URL or an address it resolves to is not allowed; retrying will not change that.

    ``str()`` is for operators; ``public`` is what the webhook's owner is told, and names no
    address, so that refusals do not map what internal names resolve to.
    """

    def __init__(self, detail: str, *, public: str = "destination not allowed") -> None:
        super().__init__(detail)
        self.public = public


class UnresolvedDestinationError(OSError):
    """The host name did not resolve now; it may later."""


@dataclass(frozen=True, slots=True)
class Destination:
    request_url: str
    """The URL with the vetted address in place of the host name."""
    host_header: str
    server_name: str | None
    """The name TLS verifies the certificate against; ``None`` for plain HTTP."""
    address: str


_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_IN_LOW_BITS = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated by RFC 4291)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (RFC 2765)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
)


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when its form carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _IPV4_IN_LOW_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def address_allowed(address: IpAddress, *, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        # ::1 lies in ::/96 too, but is IPv6's own loopback, not IPv4's 0.0.0.1.
        if not address.is_loopback:
            address = _carried_ipv4(address) or address
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


def _checked(url: str, *, https_only: bool) -> SplitResult:
    try:
        check_webhook_url(url, https_only=https_only)
    except InvalidRequestError as error:
        raise RefusedDestinationError(
            f"webhook_url {error}", public=f"webhook_url {error}"
        ) from None
    return urlsplit(url)


def _addresses(host: str, port: int, resolver: Resolver) -> list[IpAddress]:
    try:
        answers = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvedDestinationError(f"{host} does not resolve: {error}") from None
    addresses = []
    for *_, sockaddr in answers:
        # An IPv6 answer may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
        addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    if not addresses:
        raise UnresolvedDestinationError(f"{host} has no address")
    return addresses


def resolve_destination(
    url: str,
    *,
    https_only: bool,
    allow_loopback: bool,
    resolver: Resolver = socket.getaddrinfo,
) -> Destination:
    """Checks ``url`` and picks the address to connect to.

    Raises ``RefusedDestinationError`` when the URL or any address its host resolves to is
    not allowed (one bad answer is enough: the name is not trusted), and
    ``UnresolvedDestinationError`` when the name does not resolve.
    """
    parts = _checked(url, https_only=https_only)
    host = parts.hostname
    assert host is not None  # the check requires one
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port, resolver)
    refused = [a for a in addresses if not address_allowed(a, allow_loopback=allow_loopback)]
    if refused:
        raise RefusedDestinationError(f"{host} resolves to a refused address ({refused[0]})")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    request_url = urlunsplit(
        (parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, "")
    )
    return Destination(
        request_url=request_url,
        host_header=parts.netloc,
        server_name=host if parts.scheme == "https" else None,
        address=str(chosen),
    )
