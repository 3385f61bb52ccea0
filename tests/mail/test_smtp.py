"""Mail over SMTP through the job queue, against a real aiosmtpd server."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tenantkit import Settings, TenantKit
from tenantkit.mail import Mail, SMTPMailer
from tests.conftest import free_port
from tests.helpers import serve
from tests.jobs.test_jobs import wait_for, worker


class Inbox:
    """An aiosmtpd handler keeping every message; ``fail`` makes it answer 451."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.attempts = 0
        self.fail = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.attempts += 1
        if self.fail:
            return "451 4.3.0 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def smtp_kit(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings], port: int, **extra: Any
) -> TenantKit:
    settings = settings_factory(
        smtp_host="127.0.0.1", smtp_port=port, mail_from="no-reply@tenantkit.test", **extra
    )
    return kit_factory(settings)


async def test_password_reset_mail_arrives_over_smtp(
    smtp: tuple[Inbox, int],
    kit_factory: Callable[..., TenantKit],
    settings_factory: Callable[..., Settings],
) -> None:
    inbox, port = smtp
    kit = smtp_kit(kit_factory, settings_factory, port)
    assert isinstance(kit.mailer, SMTPMailer)
    async with serve(kit.build_app(), base_url="https://testserver") as client, worker(kit):
        registered = await client.post(
            "/auth/register",
            json={"email": "forgot@example.com", "password": "correct horse battery", "tenant_name": "Acme"},
        )
        assert registered.status_code == 201, registered.text
        accepted = await client.post("/auth/password-reset", json={"email": "forgot@example.com"})
        assert accepted.status_code == 202
        assert await wait_for(lambda: inbox.messages)
        (message,) = inbox.messages
        assert message["To"] == "forgot@example.com"
        assert message["From"] == "no-reply@tenantkit.test"
        assert message["Subject"] == "Reset your password"
        body = message.get_content()
        token = next(word for word in body.split() if word.startswith("tkp_"))
        done = await client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": "brand-new-pass"}
        )
        assert done.status_code == 204, done.text
        login = await client.post(
            "/auth/login", json={"email": "forgot@example.com", "password": "brand-new-pass"}
        )
        assert login.status_code == 200


async def test_smtp_failure_is_retried_then_dead_lettered_then_requeued(
    smtp: tuple[Inbox, int],
    kit_factory: Callable[..., TenantKit],
    settings_factory: Callable[..., Settings],
) -> None:
    inbox, port = smtp
    inbox.fail = True
    kit = smtp_kit(kit_factory, settings_factory, port, job_max_attempts=3, job_retry_base_seconds=0.02)
    await kit.startup()
    async with worker(kit):
        started = asyncio.get_running_loop().time()
        await kit.send_mail(Mail(to="a@example.com", subject="Hello", body="Hi there", kind="test"))
        assert asyncio.get_running_loop().time() - started < 0.5  # queued, not sent inline
        rows = await wait_for(lambda: _dead_letters(kit))
        (dead,) = rows
        assert dead.task_name == "tenantkit.send_mail"
        assert dead.attempts == 3 and inbox.attempts == 3
        assert "451" in dead.error
        assert dead.args["args"][0]["to"] == "a@example.com"
        assert inbox.messages == []

        inbox.fail = False
        await kit.jobs.requeue(dead.id)
        assert await wait_for(lambda: inbox.messages)
        assert inbox.messages[0]["Subject"] == "Hello"


async def _dead_letters(kit: TenantKit) -> list[Any]:
    rows, _ = await kit.jobs.dead_letters()
    return rows


def test_smtp_mailer_repr_masks_the_password() -> None:
    mailer = SMTPMailer("mail.example.com", 587, user="bot", password="s3cret-pass", starttls=True)
    assert "s3cret-pass" not in repr(mailer)
    assert "bot" in repr(mailer)


async def test_smtp_mailer_sends_directly(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = SMTPMailer("127.0.0.1", port, mail_from="me@example.com")
    await mailer.send(Mail(to="you@example.com", subject="Direct", body="Body text"))
    (message,) = inbox.messages
    assert message["Subject"] == "Direct" and message.get_content().strip() == "Body text"
