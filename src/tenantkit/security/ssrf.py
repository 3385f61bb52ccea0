"""SSRF defences for URLs a tenant chooses and the server fetches (webhooks, SSO issuers).

A webhook URL is chosen by a tenant and fetched by the server, so it must
never reach the server's own network. Two checks, both fail closed:

* :func:`validate_url`, when an endpoint is saved and again before every
  attempt: ``http``/``https`` only, no ``user@`` part, a sane host and port;
  IP literals must be public and written in dotted-decimal form (decimal,
  octal, hex and shortened IPv4 forms such as ``2130706433``, ``0x7f000001``,
  ``0177.0.0.1`` and ``127.1`` are refused, as are IPv4-mapped IPv6
  addresses); names such as ``localhost`` or ``*.internal`` are refused.
* :func:`resolve_and_check`, at send time: every A/AAAA record of the host
  must be public. The request then connects to exactly those checked
  addresses through :func:`pinned_resolver`, so a second DNS answer cannot
  swap in a private address (DNS rebinding).

Hosts in the allow list (``TENANTKIT_WEBHOOK_ALLOW_HOSTS``) skip the address
checks, never the scheme or ``user@`` checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tenantkit.errors import MissingDependencyError, TenantKitError

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

__all__ = [
    "MAX_URL_LENGTH",
    "CheckedURL",
    "IPAddress",
    "UnsafeURLError",
    "is_public_address",
    "normalize_host",
    "parse_ipv4_loose",
    "pinned_resolver",
    "resolve_and_check",
    "validate_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_SCHEMES = {"http": 80, "https": 443}
_BLOCKED_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "broadcasthost"}
)
_BLOCKED_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa", ".arpa")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeURLError(TenantKitError, ValueError):
    """A webhook URL (or what its host resolves to) is not allowed."""


@dataclass(frozen=True, slots=True)
class CheckedURL:
    """A URL that passed :func:`validate_url`.

    Attributes:
        url: The URL as given.
        scheme: ``"http"`` or ``"https"``.
        host: The host in ASCII, lower case, without brackets or a trailing dot.
        port: The explicit port, or the scheme's default.
        ip: The address when the host is an IP literal, else ``None``.
        allowed: Whether the host is in the allow list.
    """

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    allowed: bool


def normalize_host(host: str) -> str:
    """Lower case, no brackets, no trailing dot: the form hosts are compared in."""
    return host.strip().strip("[]").rstrip(".").lower()


def _allow_set(allow_hosts: Iterable[str]) -> frozenset[str]:
    normalized = set()
    for host in allow_hosts:
        name = normalize_host(host)
        with contextlib.suppress(ValueError):
            name = str(ipaddress.ip_address(name))
        if name:
            normalized.add(name)
    return frozenset(normalized)


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address.

    Refused: private, loopback, link-local (``169.254/16``, cloud metadata),
    multicast, reserved, unspecified, shared (``100.64/10``), documentation
    ranges; IPv4-mapped IPv6, 6to4 and Teredo addresses; NAT64 addresses
    embedding a non-public IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None or address.sixtofour is not None or address.teredo is not None:
            return False
        if address.scope_id or address.is_site_local:
            return False
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _ipv4_number(part: str) -> int | None:
    if not part:
        return None
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    allowed = {16: "0123456789abcdefABCDEF", 8: "01234567", 10: "0123456789"}[base]
    if not all(ch in allowed for ch in digits):
        return None
    return int(digits, base)


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Parse ``host`` the way ``inet_aton`` (and browsers) read IPv4 addresses.

    Accepts one to four parts, each decimal, octal (leading ``0``) or hex
    (``0x``); the last part fills the remaining bytes. ``"127.1"``,
    ``"2130706433"``, ``"0x7f000001"`` and ``"0177.0.0.1"`` all give
    ``127.0.0.1``. Returns ``None`` when ``host`` is not such an address.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    value = last
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ends_in_number(host: str) -> bool:
    last = host.rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and all(ch in "0123456789abcdefABCDEF" for ch in last[2:])


def _refuse(reason: str) -> UnsafeURLError:
    return UnsafeURLError(f"webhook URL refused: {reason}")


def _check_literal(address: IPAddress, allow: frozenset[str]) -> bool:
    allowed = str(address) in allow
    if not allowed and not is_public_address(address):
        raise _refuse("it points to a private, loopback, link-local, multicast or reserved address")
    return allowed


def validate_url(url: str, allow_hosts: Iterable[str] = ()) -> CheckedURL:
    """Check a webhook URL without touching the network (save time and send time).

    Args:
        url: The URL a tenant asked to receive webhooks at.
        allow_hosts: Hosts exempt from the private-address and host-name
            refusals (``Settings.webhook_allow_hosts``), e.g. a local receiver.

    Returns:
        The URL's parts, checked.

    Raises:
        UnsafeURLError: the URL is malformed or not allowed; the message says why
            (and never repeats the URL, which may carry a token).
    """
    if not isinstance(url, str) or not url:
        raise _refuse("it is empty")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"it is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        raise _refuse("it contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("it is not a valid URL (host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise _refuse("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise _refuse("user names and passwords in the URL are not allowed")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise _refuse("it has no host")
    if port is None:
        port = _SCHEMES[scheme]
    if not 1 <= port <= 65535:
        raise _refuse("the port is out of range")
    allow = _allow_set(allow_hosts)

    if "[" in parts.netloc:  # an IPv6 literal
        try:
            v6 = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise _refuse("the bracketed host is not an IPv6 address") from None
        return CheckedURL(url, scheme, str(v6), port, v6, _check_literal(v6, allow))

    try:
        host = raw_host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _refuse("the host name is invalid") from None
    if not host:
        raise _refuse("it has no host")

    if _ends_in_number(host):
        v4 = parse_ipv4_loose(host)
        if v4 is None:
            raise _refuse("the host is a malformed IP address")
        if str(v4) != host:
            raise _refuse("IP addresses must be written in dotted-decimal form")
        return CheckedURL(url, scheme, host, port, v4, _check_literal(v4, allow))

    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise _refuse("the host name is invalid")
    if host in allow:
        return CheckedURL(url, scheme, host, port, None, True)
    if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
        raise _refuse("local and internal host names are not allowed")
    if "." not in host:
        raise _refuse("single-label host names are not allowed; use a fully qualified name")
    return CheckedURL(url, scheme, host, port, None, False)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def resolve_and_check(host: str, port: int, allow_hosts: Iterable[str] = ()) -> list[IPAddress]:
    """Resolve ``host`` and check every address it resolves to (send time).

    Args:
        host: The host of a :class:`CheckedURL`.
        port: Its port.
        allow_hosts: Hosts whose addresses are not checked.

    Returns:
        The distinct addresses, in resolver order; connect to these and no others.

    Raises:
        UnsafeURLError: any A/AAAA record is non-public (and the host is not
            allow-listed), or there are none.
        OSError: the name does not resolve.
    """
    name = normalize_host(host)
    allowed = name in _allow_set(allow_hosts)
    try:
        literal: IPAddress | None = ipaddress.ip_address(name)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        addresses = []
        for raw in await _getaddrinfo(name, port):
            try:
                address = ipaddress.ip_address(raw.split("%", 1)[0])
            except ValueError:  # pragma: no cover - resolvers return numeric addresses
                raise _refuse("the host resolved to something that is not an IP address") from None
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise _refuse("the host resolved to no address")
    if not allowed:
        for address in addresses:
            if not is_public_address(address):
                raise _refuse("the host resolves to a private, loopback, link-local or reserved address")
    return addresses


def pinned_resolver(host: str, addresses: Sequence[IPAddress]) -> AbstractResolver:
    """An aiohttp resolver that answers ``host`` with ``addresses`` only and refuses anything else.

    Give it to ``aiohttp.TCPConnector(resolver=...)`` so the connection goes
    to the addresses :func:`resolve_and_check` approved, not to a fresh DNS answer.

    Raises:
        MissingDependencyError: aiohttp (``tenantkit[jobs]``) is not installed.
    """
    factory: Callable[[str, Sequence[IPAddress]], AbstractResolver] = _pinned_resolver_class()
    return factory(host, addresses)


@functools.cache
def _pinned_resolver_class() -> Callable[[str, Sequence[IPAddress]], AbstractResolver]:
    try:
        from aiohttp.abc import AbstractResolver, ResolveResult
    except ImportError as exc:  # pragma: no cover - exercised without the extra only
        raise MissingDependencyError("jobs", "webhook delivery") from exc

    class PinnedResolver(AbstractResolver):
        def __init__(self, host: str, addresses: Sequence[IPAddress]) -> None:
            self.host = normalize_host(host)
            self.addresses = tuple(addresses)

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            if normalize_host(host) != self.host:
                raise OSError("refusing to resolve a host that was not checked")
            results: list[ResolveResult] = []
            for address in self.addresses:
                kind = socket.AF_INET if address.version == 4 else socket.AF_INET6
                if family not in (socket.AF_UNSPEC, kind):
                    continue
                results.append(
                    {
                        "hostname": host,
                        "host": str(address),
                        "port": port,
                        "family": kind,
                        "proto": socket.IPPROTO_TCP,
                        "flags": socket.AI_NUMERICHOST,
                    }
                )
            if not results:
                raise OSError("no checked address of the requested family")
            return results

        async def close(self) -> None:
            return None

    return PinnedResolver
