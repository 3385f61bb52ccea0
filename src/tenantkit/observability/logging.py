"""One JSON object per log line, carrying the request id and tenant from context."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from tenantkit.context import current_principal, current_request_id, current_tenant_id

__all__ = ["JSONFormatter", "configure_logging"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """Format records as JSON with ``request_id``, ``tenant_id`` and ``user_id`` when known.

    Extra attributes passed through ``extra=`` become top-level fields.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            payload["request_id"] = request_id
        tenant_id = current_tenant_id()
        if tenant_id:
            payload["tenant_id"] = str(tenant_id)
        principal = current_principal()
        if principal:
            payload["user_id"] = str(principal.user_id)
            if principal.api_key is not None:  # the key acting for its creator
                payload["api_key_id"] = str(principal.api_key.id)
            elif principal.impersonator_id is not None:  # the real actor of an impersonation
                payload["impersonator_id"] = str(principal.impersonator_id)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Send tenantkit's logs to stderr, one JSON object per line (idempotent)."""
    logger = logging.getLogger("tenantkit")
    logger.setLevel(level)
    if any(getattr(h, "_tenantkit", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._tenantkit = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JSONFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)
    logger.propagate = False
