"""SSRF protection: which URLs the service may fetch on a client's behalf.

``URLPolicy`` is handed to the pipeline as its ``guard`` hook, so it checks the first URL and
every redirect. It resolves the host name and refuses it when any address it resolves to is
not a public one (loopback, private, link-local, multicast, reserved, cloud metadata), and
returns the address the download then connects to (``app.pipeline.sources``): the name is
resolved once per request, so a DNS server cannot answer the check with a public address
and the connection with an internal one (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from app.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata endpoints, refused even when private addresses are allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
ALLOWED_SCHEMES = ("http", "https")


_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which a gateway would connect to.

    IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``
    and ``64:ff9b:1::/48`` (RFC 6052 layout), 6to4 ``2002::/16`` and Teredo ``2001::/32``
    (its server and its client).
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_COMPATIBLE and value > 1:  # not :: nor ::1
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in _NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    elif address in _NAT64_LOCAL:
        # A /48 prefix: 16 bits of the IPv4 address, the reserved "u" octet, then 16 more.
        high = (value >> 64) & 0xFFFF
        low = (value >> 40) & 0xFFFF
        found.append(ipaddress.IPv4Address((high << 16) | low))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why the service must not connect to ``address``, or None when it may.

    An IPv6 address that embeds an IPv4 address (``embedded_ipv4``) is refused when either
    is: a NAT64 or 6to4 gateway would connect to the embedded one.
    """
    problem = _own_problem(address, allow_private=allow_private)
    for inner in embedded_ipv4(address):
        if problem is not None:
            break
        inner_problem = _own_problem(inner, allow_private=allow_private)
        if inner_problem is not None:
            problem = f"{inner_problem} ({inner}, embedded in {address})"
    return problem


def _own_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_global:
        return None
    if allow_private and (address.is_loopback or address.is_private):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_private:
        return "a private address"
    return "a reserved, non-public address"


def check_scheme(url: str) -> None:
    """Refuse a URL that cannot be parsed, is not http(s) or has no host.

    Raises:
        InputError: The URL does not parse (octal or fullwidth digits in an address, control
            characters...), its scheme is not http or https, or the host is missing.
    """
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InputError(f"the URL cannot be parsed: {exc}") from exc
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise InputError(f"only http and https URLs are accepted, got {shown}: {url}")
    if not parts.hostname:
        raise InputError(f"the URL has no host name: {url}")


def literal_address(host: str) -> IPAddress | None:
    """The IP address a host is written as, or None for a host name.

    Shorthand IPv4 forms the system resolver reads as addresses (``0x7f.1``, ``2130706433``)
    count as written addresses too.
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


class URLPolicy:
    """Decides whether the service may fetch a URL; an instance is the pipeline's ``guard``.

    Args:
        allow_private: Accept loopback and private addresses (tests, trusted LANs).
            Link-local and cloud metadata addresses stay refused.
    """

    def __init__(self, *, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    def check_literal(self, url: str) -> None:
        """Cheap check at submission time: scheme, and the host when it is an IP address.

        Raises:
            InputError: The URL is refused; the message says why.
        """
        check_scheme(url)
        host = urlsplit(url).hostname or ""
        address = literal_address(host)
        if address is not None:
            self._check_address(url, host, address)

    def __call__(self, url: httpx.URL) -> str:
        """Full check of a URL about to be requested: scheme, and every address of its host.

        Returns:
            The address to connect to: the first one the host resolved to.

        Raises:
            InputError: The URL is refused, or its host name does not resolve.
        """
        text = str(url)
        check_scheme(text)
        host = url.host
        address = literal_address(host)
        addresses = [address] if address is not None else self._resolve(text, host, url.port)
        for found in addresses:
            self._check_address(text, host, found)
        return str(addresses[0])

    def _check_address(self, url: str, host: str, address: IPAddress) -> None:
        problem = address_problem(address, allow_private=self.allow_private)
        if problem is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise InputError(
                f"refusing to fetch {url}: {shown} is {problem}; only public addresses "
                "may be fetched"
            )

    @staticmethod
    def _resolve(url: str, host: str, port: int | None) -> list[IPAddress]:
        try:
            infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise InputError(f"cannot resolve the host name {host!r} of {url}: {exc}") from exc
        return [ipaddress.ip_address(info[4][0]) for info in infos]
