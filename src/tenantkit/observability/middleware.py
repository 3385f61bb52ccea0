"""Request context: request id, client address, metrics, access log, 500s (object and middleware)."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.context import _client_ip, _principal, _request_id, _tenant
from tenantkit.errors import problem_response
from tenantkit.observability.metrics import Metrics

__all__ = ["RequestContext", "RequestContextMiddleware", "client_ip", "route_template", "trusted_matcher"]

logger = logging.getLogger("tenantkit.access")
error_logger = logging.getLogger("tenantkit.errors")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def _templates(routes: Iterable[Any], prefix: str, out: dict[Any, str]) -> None:
    for route in routes:
        if isinstance(route, Route):
            out.setdefault(route.endpoint, prefix + route.path)
        elif isinstance(route, Mount):
            _templates(route.routes or (), prefix + route.path, out)


_template_cache: dict[int, dict[Any, str]] = {}


def route_template(scope: Scope) -> str:
    """The path template of the matched route (``/products/{id}``), else ``"unmatched"``."""
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is None or app is None:
        return "unmatched"
    table = _template_cache.get(id(app))
    if table is None:
        table = {}
        _templates(getattr(app, "routes", ()), "", table)
        _template_cache[id(app)] = table
    return table.get(endpoint, "unmatched")


def client_ip(scope: Scope, trusted: frozenset[str] | Callable[[str], bool]) -> str | None:
    """The client address, taking ``X-Forwarded-For`` only from trusted proxies.

    Walks the forwarded chain from the right and returns the first address not
    itself trusted, so a client cannot spoof its address by sending the header.
    """
    peer = scope.get("client")
    address: str | None = str(peer[0]) if peer else None
    is_trusted = trusted if callable(trusted) else trusted.__contains__
    if address is None or is_trusted is _never or not is_trusted(address):
        return address
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            raw_hops: str = value.decode("latin-1")
            for raw in reversed(raw_hops.split(",")):
                hop = raw.strip()
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    return address
                if not is_trusted(hop):
                    return hop
                address = hop
    return address


def _never(address: str) -> bool:
    return False


_ID_BATCH = 128
_spare_ids: list[str] = []
os.register_at_fork(after_in_child=_spare_ids.clear)  # a forked worker draws its own


def _new_request_id() -> str:
    """32 random hex characters; the randomness is read in batches (one syscall per 128 ids)."""
    if not _spare_ids:
        raw = os.urandom(16 * _ID_BATCH).hex()
        _spare_ids.extend(raw[i : i + 32] for i in range(0, len(raw), 32))
    return _spare_ids.pop()


def trusted_matcher(entries: Iterable[str]) -> Callable[[str], bool]:
    """A predicate for addresses inside any of ``entries`` (addresses or CIDR networks)."""
    networks = [ipaddress.ip_network(e, strict=False) for e in entries]
    if not networks:
        return _never

    def match(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    return match


class RequestContext:
    """What the outermost layer knows of a request: its id, the client address, metrics, the access log.

    Args:
        trusted_proxies: Addresses or networks whose ``X-Forwarded-For`` is believed.
        metrics: Where request counts and latencies go (``None``: nowhere).
        access_log: Write one ``tenantkit.access`` line per request.
    """

    def __init__(
        self, *, trusted_proxies: Iterable[str] = (), metrics: Metrics | None = None, access_log: bool = True
    ) -> None:
        self.trusted: Callable[[str], bool] = trusted_matcher(list(trusted_proxies))
        self.metrics = metrics
        self.access_log = access_log
        self._series: dict[tuple[str, Any, Any, int], tuple[Any, Any]] = {}

    @staticmethod
    def request_id(sent: bytes | None) -> str:
        """The client's ``X-Request-ID`` when it is 1-128 of ``[A-Za-z0-9._-]``, else a new one."""
        if sent is not None:
            candidate = sent.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
        return _new_request_id()

    def client_address(self, scope: Scope) -> str | None:
        """The client address, believing ``X-Forwarded-For`` only from trusted proxies."""
        if self.trusted is _never:  # no trusted proxies: the peer address, as client_ip() gives it
            peer = scope.get("client")
            return str(peer[0]) if peer else None
        return client_ip(scope, self.trusted)

    def record(self, scope: Scope, status: int, duration: float) -> None:
        """Count the request in the metrics and write its access-log line."""
        route: str | None = None
        if self.metrics is not None:
            # Keyed by what decides the route template, so a warm series costs no lookup of it.
            key = (scope["method"], scope.get("endpoint"), scope.get("app"), status)
            series = self._series.get(key)
            if series is None:
                route = route_template(scope)
                series = (
                    self.metrics.requests.labels(key[0], route, str(status)),
                    self.metrics.latency.labels(key[0], route),
                )
                if len(self._series) < 10_000:
                    self._series[key] = series
            series[0].inc()
            series[1].observe(duration)
        if self.access_log and logger.isEnabledFor(logging.INFO):
            logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route if route is not None else route_template(scope),
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                    "client_ip": scope["state"].get("client_ip"),
                },
            )

    @staticmethod
    def unhandled(scope: Scope) -> Response:
        """Log an unhandled exception (the one being handled) and build the 500 answer."""
        error_logger.exception("unhandled error", extra={"path": scope.get("path")})
        return problem_response(500, "An unexpected error occurred.")


class RequestContextMiddleware:
    """:class:`RequestContext` as a middleware of its own (the kit runs it inside its edge pass).

    Sets the request id (kept from ``X-Request-ID`` when it is 1-128 characters
    of ``[A-Za-z0-9._-]``, generated otherwise) and echoes it on every response,
    computes the client address, writes one access-log line per request, records
    metrics, and turns any unhandled exception into a problem+json 500 without
    leaking it to the client.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        metrics: Metrics | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.context = RequestContext(trusted_proxies=trusted_proxies, metrics=metrics, access_log=access_log)
        self.trusted = self.context.trusted
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        context = self.context
        started = time.perf_counter()
        sent_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                sent_id = value
                break
        request_id = context.request_id(sent_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = context.client_address(scope)
        id_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token_rid = _request_id.set(request_id)
        token_ip = _client_ip.set(state["client_ip"])
        token_tenant = _tenant.set(None)
        token_principal = _principal.set(None)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            response = context.unhandled(scope)
            if response_started or scope["type"] != "http":
                raise
            await response(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                context.record(scope, status, time.perf_counter() - started)
            _principal.reset(token_principal)
            _tenant.reset(token_tenant)
            _client_ip.reset(token_ip)
            _request_id.reset(token_rid)
