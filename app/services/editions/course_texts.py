"""Course texts in other languages: an edition's and its modules' titles and descriptions."""

from dataclasses import dataclass

from sqlmodel import Session

from app.models import Edition, Module
from app.platform.audit import record_change
from app.platform.i18n import DEFAULT_LANGUAGE, LANGUAGES
from app.services.errors import InvalidInput

FIELDS = ("title", "description")
TRANSLATED_LANGUAGES = tuple(code for code in LANGUAGES if code != DEFAULT_LANGUAGE)
LIMITS = {"title": 200, "description": 5000}


@dataclass(frozen=True)
class TextsIn:
    """Typed texts by (owner, language, field); the owner is 'edition' or 'module-<id>'."""

    values: dict[tuple[str, str, str], str]


def _cleaned(texts: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Only non-empty texts, so an emptied field falls back to English again."""
    kept: dict[str, dict[str, str]] = {}
    for language, fields in texts.items():
        filled = {name: value for name, value in fields.items() if value}
        if filled:
            kept[language] = filled
    return kept


def _texts_for(owner: str, texts: TextsIn) -> dict[str, dict[str, str]]:
    return _cleaned(
        {
            language: {name: texts.values.get((owner, language, name), "") for name in FIELDS}
            for language in TRANSLATED_LANGUAGES
        }
    )


def check_texts(texts: TextsIn) -> dict[str, str]:
    """Field name -> message for every text that is too long."""
    faults: dict[str, str] = {}
    for (owner, language, name), value in texts.values.items():
        if name in LIMITS and len(value) > LIMITS[name]:
            faults[f"{owner}-{language}-{name}"] = (
                f"At most {LIMITS[name]} characters ({len(value)} given)."
            )
    return faults


def save_texts(session: Session, *, edition: Edition, texts: TextsIn, actor: str) -> bool:
    """Store the translated texts of an edition and its modules; True when anything changed."""
    faults = check_texts(texts)
    if faults:
        raise InvalidInput("Some texts are too long.", fields=faults)
    changed = False
    owners: list[tuple[str, Edition | Module]] = [("edition", edition)]
    owners += [(f"module-{module.id}", module) for module in edition.modules]
    for owner, item in owners:
        new = _texts_for(owner, texts)
        before = dict(item.translations or {})
        if new == before:
            continue
        # A new dict, so the JSON column is seen as changed.
        item.translations = new
        session.add(item)
        record_change(
            session,
            actor=actor,
            action="edition.translations_changed",
            entity="edition" if isinstance(item, Edition) else "module",
            entity_id=item.id or 0,
            before=before,
            after=new,
        )
        changed = True
    if changed:
        session.commit()
    return changed
