"""Messages stored with a row, shown in the reader's language.

A row written since messages kept their id holds the message as JSON (`Message.as_json`) next
to its English text; it is shown from the id and values. A row stored before holds only the
English sentence, which the clearly named fallback in `app.platform.legacy_sentences` reads.
"""

from collections.abc import Mapping
from typing import Any

from app.platform.i18n import Message
from app.platform.legacy_sentences import (
    legacy_quote_label,
    legacy_quote_reason,
    legacy_sentence_text,
)

# Where a stored quote line (or an invoice line's detail) keeps its messages by part.
MESSAGES_KEY = "messages"


def stored_text(stored: Any, english: str | None) -> str:
    """A stored message in the language now; a row without one shows its English sentence
    through the legacy fallback."""
    message = Message.from_json(stored)
    if message is not None:
        return message.text()
    if isinstance(english, Message):  # not stored yet: made in this request
        return english.text()
    return legacy_sentence_text(english)


def cancellation_reason(cancellation: Any) -> str:
    """A recorded cancellation's reason (accepted or refused) in the language now."""
    return stored_text(cancellation.reason_message, cancellation.reason)


def reasons_kept(entry: dict[str, Any]) -> dict[str, Any]:
    """A row's list of `reasons` with their messages kept beside them, to be stored."""
    reasons = entry.get("reasons") or []
    return {
        **entry,
        "reason_messages": [
            reason.as_json() if isinstance(reason, Message) else None for reason in reasons
        ],
    }


def stored_reasons(entry: Any) -> list[str]:
    """A stored row's `reasons` in the language now (rows stored before: the fallback)."""
    reasons = _part(entry, "reasons") or []
    kept = _part(entry, "reason_messages") or []
    if len(kept) != len(reasons):
        kept = [None] * len(reasons)
    return [
        stored_text(message, str(reason)) for message, reason in zip(kept, reasons, strict=True)
    ]


def quote_part_json(label: Message, reason: Message) -> dict[str, Any]:
    """The messages of a quote line, to be stored under `MESSAGES_KEY`."""
    return {"label": label.as_json(), "reason": reason.as_json()}


def _part(line: Any, name: str) -> Any:
    if isinstance(line, Mapping):
        return line.get(name)
    return getattr(line, name, None)


def _kept(line: Any, name: str) -> Message | None:
    part = _part(line, name)
    if isinstance(part, Message):  # a quote made just now, not stored
        return part
    kept = _part(line, MESSAGES_KEY)
    return Message.from_json(kept.get(name)) if isinstance(kept, Mapping) else None


def quote_label(line: Any) -> str:
    """A stored quote line's label (a dict or an object with `label`) in the language now."""
    message = _kept(line, "label")
    if message is not None:
        return message.text()
    label = _part(line, "label")
    return legacy_quote_label(None if label is None else str(label))


def quote_reason(line: Any) -> str:
    """A stored quote line's reason in the language now."""
    message = _kept(line, "reason")
    if message is not None:
        return message.text()
    reason = _part(line, "reason")
    return legacy_quote_reason(None if reason is None else str(reason))
