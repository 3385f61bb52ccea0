"""The mailer interface: invitations, password resets, lockout notices, alerts.

``LogMailer`` (the embedded default without SMTP) writes a line per message,
with the body only in development; ``MemoryMailer`` keeps an outbox (tests,
demos); ``SMTPMailer`` sends for real. Features send through an
:class:`Outbox`, which queues a job for a ``deferred`` mailer (SMTP) so a slow
mail server never slows a request.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tenantkit.settings import Settings

__all__ = ["LogMailer", "Mail", "Mailer", "MemoryMailer", "Outbox", "SMTPMailer", "mailer_from_settings"]

logger = logging.getLogger("tenantkit.mail")


@dataclass(frozen=True, slots=True)
class Mail:
    """One plain-text email."""

    to: str
    subject: str
    body: str
    kind: str = "generic"
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (how a mail travels in a job's arguments)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mail:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


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


class SMTPMailer:
    """Sends mail over SMTP with the standard library, off the event loop.

    Args:
        host: The SMTP server.
        port: Its port (25, 587 with ``starttls``, ...).
        user: Login name, when the server wants one.
        password: Its password (never logged).
        starttls: Upgrade the connection with ``STARTTLS`` before logging in.
        mail_from: The ``From`` address.
        timeout: Seconds to wait for the server at each step.

    A failure raises (``OSError`` or ``smtplib.SMTPException``): the
    ``tenantkit.send_mail`` job then retries with backoff and dead-letters the
    mail after its last attempt.
    """

    #: Sends are slow and may fail: ``TenantKit.send_mail`` queues them as jobs.
    deferred = True

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        mail_from: str = "tenantkit@localhost",
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.starttls = starttls
        self.mail_from = mail_from
        self.timeout = timeout

    def __repr__(self) -> str:
        login = f", user={self.user!r}, password='**********'" if self.user else ""
        return f"SMTPMailer(host={self.host!r}, port={self.port}{login}, starttls={self.starttls})"

    def message(self, mail: Mail) -> EmailMessage:
        """The RFC 5322 message for ``mail``."""
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.mail_from.rpartition("@")[2] or None)
        message["X-Tenantkit-Kind"] = mail.kind
        message.set_content(mail.body)
        return message

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
            if self.user:
                client.login(self.user, self._password or "")
            client.send_message(message)

    async def send(self, mail: Mail) -> None:
        await asyncio.to_thread(self._send, self.message(mail))
        logger.info("mail sent", extra={"to": mail.to, "kind": mail.kind})


class Outbox:
    """Sends mail now, or through the job queue when the mailer is ``deferred`` (SMTP).

    A queued mail is retried with backoff and dead-lettered like any job, and a
    slow mail server never slows the request that sent it.

    Args:
        mailer: The mailer that delivers.
        enqueue: Queues a mail's :meth:`Mail.to_dict` for the job that calls ``mailer.send``.
    """

    def __init__(self, mailer: Mailer, enqueue: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.mailer = mailer
        self.enqueue = enqueue

    async def __call__(self, mail: Mail) -> None:
        """Send ``mail`` (or queue it)."""
        if getattr(self.mailer, "deferred", False):
            await self.enqueue(mail.to_dict())
        else:
            await self.mailer.send(mail)


def mailer_from_settings(settings: Settings) -> Mailer:
    """``SMTPMailer`` when ``smtp_host`` is set, else ``LogMailer`` (bodies only in development)."""
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SMTPMailer(
            settings.smtp_host,
            settings.smtp_port,
            user=settings.smtp_user,
            password=password,
            starttls=settings.smtp_starttls,
            mail_from=settings.mail_from,
        )
    return LogMailer(show_body=settings.is_development)
