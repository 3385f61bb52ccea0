"""Prometheus metrics, one registry per kit (so several kits can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


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
        self.jobs = Counter("tenantkit_jobs", "Background jobs by outcome", ["outcome"], registry=r)
        self.db_pool_in_use = Gauge(
            "tenantkit_db_pool_connections_in_use", "Database connections checked out", registry=r
        )

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
