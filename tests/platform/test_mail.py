"""The outbox sender against a real SMTP server on 127.0.0.1, including one that is down."""

import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.clock import utcnow
from app.models import OutboxMessage
from app.platform.mail import MAX_ATTEMPTS, Attachment, MailSettings, deliver_due, queue_email
from app.platform.storage import LocalStorage


class Inbox:
    """An SMTP handler that keeps what it receives, or refuses while told to."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            return "451 Try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, Controller]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


@pytest.fixture
def outbox_engine(session: Session) -> Engine:
    """The test's own connection: the sender sees what the test queued and it all rolls back."""
    return session.get_bind()  # type: ignore[return-value]


def smtp(port: int) -> MailSettings:
    return MailSettings(
        sender="Course office <office@example.org>",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        timeout=3,
    )


def queue(session: Session, to: str = "ama@example.org", **extra: Any) -> OutboxMessage:
    message = queue_email(
        session,
        kind="portal_link",
        to=to,
        subject="Your link",
        context={
            "application": {
                "given_name": "Ama",
                "family_name": "<b>Banda</b>",
                "reference": "MD99-ABC123",
            },
            "edition": {"title": "Diploma"},
            "portal_url": "http://testserver/portal/xyz",
        },
        **extra,
    )
    session.commit()
    return message


def send(
    session: Session, settings: MailSettings, storage: LocalStorage, **kw: Any
) -> tuple[int, int]:
    return deliver_due(session.get_bind(), settings=settings, storage=storage, **kw)  # type: ignore[arg-type]


def test_queued_mail_is_delivered_once_with_text_html_and_attachment(
    session: Session, inbox: tuple[Inbox, Controller], tmp_path: Path
) -> None:
    handler, controller = inbox
    storage = LocalStorage(tmp_path)
    storage.put("fee-waivers/w.pdf", b"%PDF-1.4 test %%EOF")
    queue(session, attachments=[Attachment("waiver.pdf", "fee-waivers/w.pdf")])
    assert send(session, smtp(controller.port), storage) == (1, 0)
    assert send(session, smtp(controller.port), storage) == (0, 0)
    assert len(handler.messages) == 1
    received = handler.messages[0]
    assert received["To"] == "ama@example.org"
    parts = {part.get_content_type(): part for part in received.walk()}
    assert "&lt;b&gt;Banda&lt;/b&gt;" in parts["text/html"].get_payload(decode=True).decode()
    assert "<b>Banda</b>" in parts["text/plain"].get_payload(decode=True).decode()
    assert parts["application/pdf"].get_filename() == "waiver.pdf"
    stored = session.exec(select(OutboxMessage)).one()
    assert stored.status == "sent"
    assert stored.sent_at is not None


def test_a_refusing_server_gets_the_mail_later_and_only_once(
    session: Session, inbox: tuple[Inbox, Controller], tmp_path: Path
) -> None:
    handler, controller = inbox
    handler.refuse = 2
    storage = LocalStorage(tmp_path)
    queue(session)
    now = utcnow()
    assert send(session, smtp(controller.port), storage, now=now) == (0, 1)
    message = session.exec(select(OutboxMessage)).one()
    session.refresh(message)
    assert message.status == "pending"
    assert message.attempts == 1
    assert "451" in message.last_error
    # Not due again before its back-off has passed.
    assert send(session, smtp(controller.port), storage, now=now + timedelta(seconds=5)) == (0, 0)
    assert send(session, smtp(controller.port), storage, now=now + timedelta(minutes=1)) == (0, 1)
    assert send(session, smtp(controller.port), storage, now=now + timedelta(minutes=5)) == (1, 0)
    assert send(session, smtp(controller.port), storage, now=now + timedelta(hours=5)) == (0, 0)
    assert len(handler.messages) == 1


def test_mail_waits_while_the_server_is_down_and_goes_out_when_it_is_back(
    session: Session, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    port = free_port()
    for index in range(3):
        queue(session, to=f"p{index}@example.org")
    now = utcnow()
    assert send(session, smtp(port), storage, now=now) == (0, 3)
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert send(session, smtp(port), storage, now=now + timedelta(minutes=2)) == (3, 0)
    finally:
        controller.stop()
    assert sorted(m["To"] for m in handler.messages) == [
        "p0@example.org",
        "p1@example.org",
        "p2@example.org",
    ]


def test_a_message_is_marked_failed_after_the_last_attempt(
    session: Session, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    port = free_port()
    queue(session)
    now = utcnow()
    for attempt in range(MAX_ATTEMPTS):
        send(session, smtp(port), storage, now=now + timedelta(days=attempt))
    message = session.exec(select(OutboxMessage)).one()
    session.refresh(message)
    assert message.status == "failed"
    assert message.attempts == MAX_ATTEMPTS


def test_without_smtp_mail_is_written_as_eml_files(session: Session, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    queue(session)
    settings = MailSettings(sender="office@example.org", mail_dir=tmp_path / "mail")
    assert send(session, settings, storage) == (1, 0)
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    assert b"Subject: Your link" in files[0].read_bytes()
