"""One HTTP delivery attempt of a webhook: signed, SSRF-checked, time-boxed, capped.

:class:`WebhookSender` makes exactly one POST and reports what happened; it
never retries (retries are the job system's: :mod:`tenantkit.webhooks.tasks`).
Each attempt is signed afresh (Standard Webhooks: new ``webhook-timestamp``),
checks the URL again with :func:`~tenantkit.security.ssrf.validate_url`,
connects only to the addresses :func:`~tenantkit.security.ssrf.resolve_and_check`
approved (the name is resolved once, then pinned), never follows redirects,
stops after the timeout and reads at most 64 KiB of the answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tenantkit.errors import MissingDependencyError
from tenantkit.security.ssrf import (
    UnsafeURLError,
    normalize_host,
    pinned_resolver,
    resolve_and_check,
    validate_url,
)
from tenantkit.webhooks.signing import sign

__all__ = ["MAX_RESPONSE_BYTES", "USER_AGENT", "AttemptResult", "WebhookSender", "event_body", "json_default"]

USER_AGENT = "tenantkit-webhooks"
MAX_RESPONSE_BYTES = 64 * 1024
"""At most this much of a receiver's answer is read; the rest is dropped with the connection."""


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def event_body(event_type: str, data: Any, timestamp: datetime) -> bytes:
    """The exact bytes POSTed: ``{"type", "timestamp", "data"}`` as compact JSON.

    Args:
        event_type: The event's type.
        data: The event's payload (JSON data).
        timestamp: When the event happened (rendered ISO 8601 with the UTC offset).
    """
    document = {"type": event_type, "timestamp": timestamp.isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt got.

    Attributes:
        status_code: The HTTP status, or ``None`` when no answer arrived.
        error: Why the attempt failed, or ``None`` when it succeeded.
        duration_ms: Wall time of the attempt.
    """

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def _unix_now() -> int:
    return int(time.time())


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _read_capped(content: Any, limit: int) -> int:
    remaining = limit
    while remaining > 0:
        chunk: bytes = await content.read(min(remaining, 16384))
        if not chunk:
            break
        remaining -= len(chunk)
    return limit - remaining


class WebhookSender:
    """Makes single webhook attempts.

    Args:
        allow_hosts: Hosts exempt from the private-address refusal
            (``Settings.webhook_allow_hosts``).
        timeout: Seconds one attempt may take, DNS to last byte
            (``Settings.webhook_timeout``).
    """

    def __init__(self, *, allow_hosts: Iterable[str] = (), timeout: float = 10.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.allow_hosts = tuple(allow_hosts)
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"WebhookSender(allow_hosts={list(self.allow_hosts)!r}, timeout={self.timeout:g})"

    async def attempt(
        self, url: str, secret: str, event_id: str, event_type: str, data: Any, created_at: datetime
    ) -> AttemptResult:
        """Make one signed POST of an event and report what happened (never raises for HTTP trouble).

        Args:
            url: The endpoint URL; checked again with ``validate_url`` and
                ``resolve_and_check`` before connecting.
            secret: The endpoint's signing secret.
            event_id: The ``webhook-id``.
            event_type: The body's ``type``.
            data: The body's ``data``.
            created_at: The body's ``timestamp``.
        """
        body = event_body(event_type, data, created_at)
        started = time.perf_counter()
        status: int | None = None
        error: str | None
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._post(url, secret, event_id, body)
        except UnsafeURLError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"timed out after {self.timeout:g}s"
        except MissingDependencyError:
            raise
        except Exception as exc:  # any network trouble is a failed attempt, not a crash
            error = _clip(f"{type(exc).__name__}: {exc}".replace(url, "<url>"))
        else:
            if 200 <= status < 300:
                error = None
            elif 300 <= status < 400:
                error = f"redirect not followed (HTTP {status})"
            else:
                error = f"HTTP {status}"
        duration_ms = round((time.perf_counter() - started) * 1000)
        return AttemptResult(status, error, duration_ms)

    async def _post(self, url: str, secret: str, event_id: str, body: bytes) -> int:
        try:
            import aiohttp
            from yarl import URL
        except ImportError as exc:  # pragma: no cover - exercised without the extra only
            raise MissingDependencyError("jobs", "webhook delivery") from exc

        checked = validate_url(url, self.allow_hosts)
        target = URL(url)
        seen_host = normalize_host(target.raw_host or "")
        if checked.ip is not None:
            try:
                same_host = ipaddress.ip_address(seen_host) == checked.ip
            except ValueError:
                same_host = False
        else:
            same_host = seen_host == checked.host
        if not same_host or target.port != checked.port:
            raise UnsafeURLError("webhook URL refused: its host is read differently by the HTTP client")
        addresses = await resolve_and_check(checked.host, checked.port, self.allow_hosts)

        timestamp = _unix_now()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, event_id, timestamp, body),
        }
        connector = aiohttp.TCPConnector(
            resolver=pinned_resolver(checked.host, addresses), use_dns_cache=False, force_close=True, limit=1
        )
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            ) as client,
            client.post(target, data=body, headers=headers, allow_redirects=False) as response,
        ):
            await _read_capped(response.content, MAX_RESPONSE_BYTES)
            status = response.status
            response.close()  # drop the connection instead of draining an endless body
            return status
