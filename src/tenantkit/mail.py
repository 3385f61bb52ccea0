"""The mailer interface: invitations, password resets, lockout notices, alerts.

``LogMailer`` (the embedded default without SMTP) writes a line per message,
with the body only in development; ``MemoryMailer`` keeps an outbox (tests,
demos); ``tenantkit.jobs.email.SMTPMailer`` sends for real.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["LogMailer", "Mail", "Mailer", "MemoryMailer"]

logger = logging.getLogger("tenantkit.mail")


@dataclass(frozen=True, slots=True)
class Mail:
    """One plain-text email."""

    to: str
    subject: str
    body: str
    kind: str = "generic"
    tags: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Mailer(Protocol):
    """Anything that can send a :class:`Mail`."""

    async def send(self, mail: Mail) -> None:
        """Send (or queue) ``mail``; raise on permanent failure."""


class LogMailer:
    """Writes mail to the log. Bodies (which may hold one-time links) only when ``show_body``."""

    def __init__(self, *, show_body: bool = False) -> None:
        self.show_body = show_body

    async def send(self, mail: Mail) -> None:
        extra = {"to": mail.to, "subject": mail.subject, "kind": mail.kind}
        if self.show_body:
            extra["body"] = mail.body
        logger.info("mail (no SMTP configured)", extra=extra)


class MemoryMailer:
    """Keeps every mail in ``outbox`` (tests and demos)."""

    def __init__(self) -> None:
        self.outbox: list[Mail] = []

    async def send(self, mail: Mail) -> None:
        self.outbox.append(mail)
