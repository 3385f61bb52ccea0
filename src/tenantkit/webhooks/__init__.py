"""Outgoing webhooks: Standard Webhooks signatures, SSRF defences, a persistent outbox.

``kit.webhooks`` is a :class:`WebhookService`; each delivery attempt is a job
(``tenantkit.webhooks.deliver``) on the kit's one job system, with its retries,
dead-letter store and requeue path. Delivery needs ``tenantkit[jobs]``
(aiohttp), imported on first delivery; endpoints, signing and URL checks work
without it.
"""

from __future__ import annotations

from tenantkit.security.ssrf import (
    CheckedURL,
    UnsafeURLError,
    is_public_address,
    pinned_resolver,
    resolve_and_check,
    validate_url,
)
from tenantkit.webhooks.delivery import (
    MAX_RESPONSE_BYTES,
    USER_AGENT,
    AttemptResult,
    WebhookSender,
    event_body,
)
from tenantkit.webhooks.models import DELIVERY_STATUSES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenantkit.webhooks.routes import endpoint_to_dict, webhook_routes
from tenantkit.webhooks.service import WebhookService, matches_event
from tenantkit.webhooks.signing import (
    SECRET_PREFIX,
    WebhookVerificationError,
    generate_secret,
    sign,
    verify,
)
from tenantkit.webhooks.tasks import DELIVER, DeliveryJobs, WebhookDeliveryError

__all__ = [
    "DELIVER",
    "DELIVERY_STATUSES",
    "MAX_RESPONSE_BYTES",
    "SECRET_PREFIX",
    "USER_AGENT",
    "AttemptResult",
    "CheckedURL",
    "DeliveryJobs",
    "UnsafeURLError",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryError",
    "WebhookEndpoint",
    "WebhookSender",
    "WebhookService",
    "WebhookVerificationError",
    "endpoint_to_dict",
    "event_body",
    "generate_secret",
    "is_public_address",
    "matches_event",
    "pinned_resolver",
    "resolve_and_check",
    "sign",
    "validate_url",
    "verify",
    "webhook_routes",
]
