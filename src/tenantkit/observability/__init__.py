"""Request ids, JSON logs, Prometheus metrics and health checks."""

from __future__ import annotations

from tenantkit.observability.logging import JSONFormatter, configure_logging
from tenantkit.observability.metrics import Metrics, metrics_endpoint
from tenantkit.observability.middleware import RequestContextMiddleware

__all__ = ["JSONFormatter", "Metrics", "RequestContextMiddleware", "configure_logging", "metrics_endpoint"]
