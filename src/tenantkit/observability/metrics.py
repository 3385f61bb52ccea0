"""Prometheus metrics, one registry per kit (so several kits can live in one process)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from tenantkit.errors import AuthenticationError

__all__ = ["CONTENT_TYPE_LATEST", "JOB_OUTCOMES", "Metrics", "PoolCollector", "metrics_endpoint"]

#: The ``outcome`` values of ``tenantkit_jobs_total``.
JOB_OUTCOMES = ("queued", "succeeded", "failed", "dead_lettered")


class PoolCollector(Collector):
    """Reads a SQLAlchemy pool's status on every scrape.

    Exposes ``tenantkit_db_pool_connections_in_use``, ``tenantkit_db_pool_connections_idle``,
    ``tenantkit_db_pool_size`` and ``tenantkit_db_pool_overflow``. Pools without
    counters (``NullPool``, ``StaticPool``: SQLite) report what they can: in use 0
    and size 0 unless the pool says otherwise.

    Args:
        pool: Returns the current pool (``lambda: engine.pool``), or ``None``.
    """

    def __init__(self, pool: Callable[[], Any]) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self.pool()

        def read(name: str) -> float:
            method = getattr(pool, name, None)
            if method is None:
                return 0.0
            try:
                return float(method())
            except Exception:  # a pool that cannot report must not break the scrape
                return 0.0

        values = {
            "connections_in_use": ("Database connections checked out", read("checkedout")),
            "connections_idle": ("Database connections idle in the pool", read("checkedin")),
            "size": ("Configured database pool size", read("size")),
            "overflow": ("Database connections beyond the pool size", max(0.0, read("overflow"))),
        }
        for suffix, (doc, value) in values.items():
            family = GaugeMetricFamily(f"tenantkit_db_pool_{suffix}", doc)
            family.add_metric([], value)
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())


class Metrics:
    """The counters and histograms tenantkit records."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tenantkit_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "tenantkit_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.logins = Counter("tenantkit_logins", "Successful logins", registry=r)
        self.login_failures = Counter("tenantkit_login_failures", "Failed logins", registry=r)
        self.lockouts = Counter("tenantkit_lockouts", "Accounts locked", registry=r)
        self.token_reuse = Counter(
            "tenantkit_token_reuse_detections", "Refresh-token reuse detections", registry=r
        )
        #: ``tenantkit_jobs_total{outcome=...}``, ``outcome`` one of :data:`JOB_OUTCOMES`.
        self.jobs = Counter("tenantkit_jobs", "Background jobs by outcome", ["outcome"], registry=r)
        for outcome in JOB_OUTCOMES:
            self.jobs.labels(outcome)
        self.rate_limited = Counter(
            "tenantkit_rate_limited", "Requests refused by rate limiting", ["policy"], registry=r
        )
        self._pool: PoolCollector | None = None

    def watch_pool(self, pool: Callable[[], Any]) -> None:
        """Report the database pool returned by ``pool()`` on every scrape."""
        if self._pool is None:
            self._pool = PoolCollector(pool)
            self.registry.register(self._pool)
        else:
            self._pool.pool = pool

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


MetricsEndpoint = Callable[[Request], Awaitable[Response]]


def metrics_endpoint(metrics: Metrics, token: SecretStr | str | None = None) -> MetricsEndpoint:
    """The ``GET /metrics`` endpoint: ``metrics`` in Prometheus text format.

    With ``token`` (``TENANTKIT_METRICS_TOKEN``), a scrape must send
    ``Authorization: Bearer <token>``; the comparison runs in constant time
    and anything else is answered ``401`` problem+json with
    ``WWW-Authenticate: Bearer``. Without it the endpoint is open: restrict
    it at the proxy or network instead.

    Args:
        metrics: The registry to render.
        token: The scraper's bearer token, or ``None`` for an open endpoint.
    """
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    expected = f"Bearer {secret}".encode() if secret else None

    async def endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").strip().encode("latin-1")
            scheme, _, value = given.partition(b" ")
            presented = b"Bearer " + value.strip() if scheme.lower() == b"bearer" else b""
            if not hmac.compare_digest(presented, expected):
                raise AuthenticationError("Send 'Authorization: Bearer <metrics token>' to read the metrics.")
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    endpoint.__name__ = endpoint.__qualname__ = "metrics"
    return endpoint
