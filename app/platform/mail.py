"""E-mail: an outbox written with the change it reports, and a sender that never drops mail."""

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.db import writer_engine
from app.models import Application, OutboxMessage
from app.platform import i18n
from app.platform.rows import insert_rows, new_row
from app.platform.storage import Storage
from app.platform.stored_messages import cancellation_reason, quote_label, quote_reason

log = logging.getLogger("diplomat.mail")

EMAIL_TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "emails"
MAX_ATTEMPTS = 12
# A message claimed by a sender that died is offered again after this long.
STALE_CLAIM = timedelta(minutes=10)

_html = Environment(
    loader=FileSystemLoader(str(EMAIL_TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    auto_reload=False,
)
# Plain-text parts are never rendered as markup, so nothing in them needs escaping.
_text = Environment(
    loader=FileSystemLoader(str(EMAIL_TEMPLATES)),
    autoescape=False,  # noqa: S701
    undefined=StrictUndefined,
    auto_reload=False,
)
i18n.install(_html)
i18n.install(_text)
for _environment in (_html, _text):
    _environment.filters.update(
        quote_label=quote_label, quote_reason=quote_reason, cancellation_reason=cancellation_reason
    )


def normalise_email(email: str) -> str:
    """E-mail addresses compare case-insensitively and without surrounding blanks."""
    return email.strip().lower()


@dataclass(frozen=True)
class Attachment:
    """A stored file to attach; an invoice's PDF is rendered when the mail is built."""

    filename: str
    key: str
    content_type: str = "application/pdf"
    invoice_number: str = ""


AttachmentRenderer = Callable[[Session, dict[str, Any], "Storage"], None]


@dataclass(frozen=True)
class MailSettings:
    """How mail leaves: SMTP when a host is set, else .eml files in a folder."""

    sender: str
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    mail_dir: Path | None = None
    timeout: float = 15.0
    # Attachments rendered on first use (an invoice PDF): given each attachment whose file is
    # not stored yet, the renderer stores it. The mail outbox knows no kind of document.
    render_attachment: "AttachmentRenderer | None" = None


def queue_email(
    session: Session,
    *,
    kind: str,
    to: str,
    subject: str,
    context: dict[str, Any],
    application_id: int | None = None,
    attachments: list[Attachment] | None = None,
    language: str | None = None,
    subject_values: dict[str, Any] | None = None,
) -> OutboxMessage:
    """Render `emails/{kind}.txt` and `.html` into the outbox; sent after the commit.

    The mail is written in `language`, else in the language of the application it is about,
    else in English. With `subject_values`, `subject` is a catalog message (marked with `N_`)
    translated and filled in; without, it is used as given.
    """
    if language is None and application_id is not None:
        application = session.get(Application, application_id)
        language = application.language if application is not None else None
    message = compose_email(
        kind=kind,
        to=to,
        subject=subject,
        context=context,
        application_id=application_id,
        attachments=attachments,
        language=language,
        subject_values=subject_values,
    )
    insert_rows(session, message)
    # With the request id (app.platform.logs): which request queued which message.
    log.info("mail %s (%s) queued", message.message_id, kind)
    return message


def compose_email(
    *,
    kind: str,
    to: str,
    subject: str,
    context: dict[str, Any],
    application_id: int | None = None,
    attachments: list[Attachment] | None = None,
    language: str | None = None,
    subject_values: dict[str, Any] | None = None,
) -> OutboxMessage:
    """The outbox row of a mail as `queue_email` writes it, not stored yet (`insert_rows`
    stores it with the change it reports); written in `language`, else in English."""
    with i18n.use_language(language):
        if subject_values is not None:
            subject = i18n.gettext(subject) % subject_values
        body_text = _text.get_template(f"{kind}.txt").render(**context)
        body_html = _html.get_template(f"{kind}.html").render(**context)
    return new_row(
        OutboxMessage,
        kind=kind,
        application_id=application_id,
        to_address=to,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        attachments=[
            {
                "filename": a.filename,
                "key": a.key,
                "content_type": a.content_type,
                "invoice_number": a.invoice_number,
            }
            for a in attachments or []
        ],
        message_id=make_msgid(domain="diplomat.local"),
    )


def build_message(outbox: OutboxMessage, *, sender: str, storage: Storage) -> EmailMessage:
    """The MIME message for an outbox row: plain text, HTML alternative, attachments."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = outbox.to_address
    message["Subject"] = outbox.subject
    message["Message-ID"] = outbox.message_id
    message["Date"] = format_datetime(outbox.created_at)
    message.set_content(outbox.body_text)
    message.add_alternative(outbox.body_html, subtype="html")
    for attachment in outbox.attachments:
        maintype, _, subtype = attachment["content_type"].partition("/")
        message.add_attachment(
            storage.get(attachment["key"]),
            maintype=maintype,
            subtype=subtype,
            filename=attachment["filename"],
        )
    return message


def _transmit(message: EmailMessage, settings: MailSettings) -> None:
    if not settings.smtp_host:
        folder = settings.mail_dir
        if folder is None:
            raise RuntimeError("no SMTP host and no mail folder configured")
        folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_").replace("/", "_")
        (folder / f"{name}.eml").write_bytes(message.as_bytes())
        return
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: 30 s, 1 min, 2 min ... at most 1 hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def _claim(session: Session, message_id: int, now: datetime) -> OutboxMessage | None:
    """Take one message for sending; of several senders, exactly one gets it.

    A conditional update is atomic on both databases. The row is read in the same short
    transaction and kept loaded, so nothing is locked while the mail server is talked to.
    """
    result = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id,
            or_(
                col(OutboxMessage.status) == "pending",
                (col(OutboxMessage.status) == "sending")
                & (col(OutboxMessage.next_attempt_at) <= now - STALE_CLAIM),
            ),
        )
        .values(status="sending", next_attempt_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        return None
    outbox = session.get(OutboxMessage, message_id)
    session.commit()
    return outbox


def deliver_due(
    engine: Engine,
    *,
    settings: MailSettings,
    storage: Storage,
    now: datetime | None = None,
    limit: int = 50,
) -> tuple[int, int]:
    """Send what is due; returns (sent, failed attempts). Each message is claimed once.

    Claims and outcomes are short writer transactions (SQLite: BEGIN IMMEDIATE, so senders in
    several processes queue for the lock instead of failing on a stale read); the mail server
    is talked to outside any transaction.
    """
    now = now or utcnow()
    sent = failed = 0
    writer = writer_engine(engine)
    with Session(engine) as reader:
        due = reader.exec(
            select(OutboxMessage.id)
            .where(
                or_(
                    (col(OutboxMessage.status) == "pending")
                    & (col(OutboxMessage.next_attempt_at) <= now),
                    (col(OutboxMessage.status) == "sending")
                    & (col(OutboxMessage.next_attempt_at) <= now - STALE_CLAIM),
                )
            )
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        ).all()
    for message_id in due:
        if message_id is None:
            continue
        with Session(writer, expire_on_commit=False) as session:
            claimed = _claim(session, message_id, now)
        if claimed is None:
            continue
        problem: Exception | None = None
        try:
            if settings.render_attachment is not None:
                with Session(engine) as reader:
                    _render_missing(reader, claimed, storage, settings.render_attachment)
            _transmit(build_message(claimed, sender=settings.sender, storage=storage), settings)
        except Exception as exc:  # any failure means: try again later
            problem = exc
        with Session(writer, expire_on_commit=False) as session:
            outbox = session.get(OutboxMessage, message_id)
            if outbox is None:
                continue
            outbox.attempts += 1
            if problem is None:
                outbox.status = "sent"
                outbox.sent_at = utcnow()
                outbox.last_error = ""
                sent += 1
            else:
                outbox.last_error = f"{type(problem).__name__}: {problem}"[:2000]
                if outbox.attempts >= MAX_ATTEMPTS:
                    outbox.status = "failed"
                    log.error(
                        "giving up on mail %s to %s: %s", outbox.id, outbox.to_address, problem
                    )
                else:
                    outbox.status = "pending"
                    outbox.next_attempt_at = now + backoff(outbox.attempts)
                    log.warning(
                        "mail %s to %s failed, retrying: %s", outbox.id, outbox.to_address, problem
                    )
                failed += 1
            session.add(outbox)
            session.commit()
    return sent, failed


def _render_missing(
    session: Session, outbox: OutboxMessage, storage: Storage, render: "AttachmentRenderer"
) -> None:
    """Make sure every attachment's file exists (some are rendered on first use)."""
    for attachment in outbox.attachments:
        if not storage.exists(attachment["key"]):
            render(session, attachment, storage)


def retry_failed(session: Session, message_id: int) -> None:
    """Put a failed message back in the queue (an administrator's retry)."""
    outbox = session.get(OutboxMessage, message_id)
    if outbox is not None and outbox.status == "failed":
        outbox.status = "pending"
        outbox.attempts = 0
        outbox.next_attempt_at = utcnow()
        session.add(outbox)
        session.commit()
