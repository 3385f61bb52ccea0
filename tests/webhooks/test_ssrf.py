"""SSRF defences: URL checks at save time, resolution checks and pinning at send time."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import aiohttp
import pytest

from tenantkit.security import ssrf
from tenantkit.security.ssrf import (
    UnsafeURLError,
    is_public_address,
    parse_ipv4_loose,
    pinned_resolver,
    resolve_and_check,
    validate_url,
)
from tests.webhooks.conftest import Receiver

# Every form SECURITY.md lists, plus a few parser tricks.
REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.255.255.254/",
    "http://0.0.0.0/",
    "http://0.1.2.3/",
    "http://[::1]/",
    "http://[::]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://100.64.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0/",
    "http://017700000001/",
    "http://1.2.3.4.5/",
    "http://256.1.1.1/",
    "http://08.8.8.8/",
    "http://user@127.0.0.1/",
    "http://user:pass@example.com/",
    "http://example.com@127.0.0.1/",
    "http://example.com\\@127.0.0.1/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "//example.com/hook",
    "http:///hook",
    "http://localhost/",
    "http://LOCALHOST/",
    "http://localhost./",
    "http://api.localhost/",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
    "http://\uff11\uff12\uff17.0.0.1/",
    "http://metadata.google.internal/",
    "http://printer.local/",
    "http://intranet/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:abc/",
    "http://exa mple.com/",
    "http://example.com/\nHost: evil",
    "http://%31%32%37.0.0.1/",
    "",
]


@pytest.mark.parametrize("url", REFUSED)
def test_validate_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        validate_url(url)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://example.com/hook", "example.com", 443),
        ("http://hooks.example.com:8080/x?y=1", "hooks.example.com", 8080),
        ("https://EXAMPLE.com./hook", "example.com", 443),
        ("https://8.8.8.8/hook", "8.8.8.8", 443),
        ("https://[2606:4700:4700::1111]/hook", "2606:4700:4700::1111", 443),
        ("https://b\u00fccher.example/hook", "xn--bcher-kva.example", 443),
    ],
)
def test_validate_url_accepts_public_urls(url: str, host: str, port: int) -> None:
    checked = validate_url(url)
    assert (checked.host, checked.port, checked.allowed) == (host, port, False)


def test_the_allow_list_exempts_hosts_from_the_address_refusal_only() -> None:
    assert validate_url("http://127.0.0.1:8080/hook", ["127.0.0.1"]).allowed
    assert validate_url("http://localhost:8080/hook", ["LOCALHOST"]).allowed
    assert validate_url("http://[::1]:8080/hook", ["[::1]"]).allowed
    with pytest.raises(UnsafeURLError):
        validate_url("http://10.0.0.1/", ["127.0.0.1"])
    with pytest.raises(UnsafeURLError, match="user"):
        validate_url("http://user@127.0.0.1/", ["127.0.0.1"])
    with pytest.raises(UnsafeURLError, match="http"):
        validate_url("ftp://127.0.0.1/", ["127.0.0.1"])
    with pytest.raises(UnsafeURLError, match="dotted"):
        validate_url("http://2130706433/", ["127.0.0.1"])


def test_the_error_never_repeats_the_url() -> None:
    with pytest.raises(UnsafeURLError) as info:
        validate_url("http://10.0.0.1/hook?token=s3cr3t")
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("10.0xa0000", "10.10.0.0"),
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),
        ("example.com", None),
        ("1..2", None),
    ],
)
def test_parse_ipv4_loose_reads_like_inet_aton(text: str, expected: str | None) -> None:
    parsed = parse_ipv4_loose(text)
    assert (str(parsed) if parsed else None) == expected
    if expected is not None:
        assert socket.inet_ntoa(socket.inet_aton(text)) == expected


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("64:ff9b::808:808", True),
        ("127.0.0.1", False),
        ("10.1.1.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("198.18.0.1", False),
        ("::ffff:8.8.8.8", False),
        ("64:ff9b::a00:1", False),
        ("fec0::1", False),
        ("2001:db8::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_resolve_and_check_refuses_a_name_resolving_to_loopback() -> None:
    with pytest.raises(UnsafeURLError, match="resolves"):
        await resolve_and_check("localhost", 80)
    addresses = await resolve_and_check("localhost", 80, ["localhost"])
    assert addresses and all(address.is_loopback for address in addresses)


async def test_resolve_and_check_refuses_if_any_record_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"mixed.example.com": ["93.184.215.14", "10.0.0.7"], "public.example.com": ["93.184.215.14"]}

    async def fake(host: str, port: int) -> list[str]:
        return answers[host]

    monkeypatch.setattr(ssrf, "_getaddrinfo", fake)
    with pytest.raises(UnsafeURLError):
        await resolve_and_check("mixed.example.com", 443)
    assert await resolve_and_check("public.example.com", 443) == [ipaddress.ip_address("93.184.215.14")]
    with pytest.raises(UnsafeURLError):  # literals are checked without DNS
        await resolve_and_check("169.254.169.254", 80)


async def test_the_pinned_resolver_connects_to_the_checked_address_only(receiver: Receiver) -> None:
    # "pinned.invalid" cannot resolve through DNS: reaching the receiver proves the pinned address is used.
    resolver = pinned_resolver("pinned.invalid", [ipaddress.ip_address("127.0.0.1")])
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"http://pinned.invalid:{receiver.port}/hook", data=b"{}") as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            await session.post(f"http://other.invalid:{receiver.port}/hook", data=b"{}")
    assert len(receiver.on("/hook")) == 1


async def test_resolve_then_connect_cannot_be_rebound(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """A resolver answering a public address, then loopback, must not get the second answer used."""
    loop = asyncio.get_running_loop()
    calls: list[str] = []

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(str(host))
        address = "93.184.215.14" if len(calls) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    addresses = await resolve_and_check("rebind.example.com", receiver.port)
    assert [str(a) for a in addresses] == ["93.184.215.14"]
    resolver = pinned_resolver("rebind.example.com", addresses)
    results = await resolver.resolve("rebind.example.com", receiver.port, socket.AF_UNSPEC)
    assert [r["host"] for r in results] == ["93.184.215.14"]
    assert calls == ["rebind.example.com"]
