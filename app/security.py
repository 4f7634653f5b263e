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


def _plain(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped IPv6 address, else the address itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why the service must not connect to ``address``, or None when it may."""
    address = _plain(address)
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
    """Refuse a URL that is not http(s) or has no host.

    Raises:
        InputError: The scheme is not http or https, or the host is missing.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise InputError(f"only http and https URLs are accepted, got {shown}: {url}")
    if not parts.hostname:
        raise InputError(f"the URL has no host name: {url}")


def literal_address(host: str) -> IPAddress | None:
    """The IP address a host is written as, or None for a host name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
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
