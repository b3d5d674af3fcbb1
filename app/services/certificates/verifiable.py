"""A certificate as a verifiable credential: what a wallet stores and a verifier checks.

The credential, the revocation list and the achievement an edition awards, written by
`open_badges` and secured by `credentials` with the office's keys.
"""

from datetime import datetime
from typing import Any

from sqlmodel import Session

from app.clock import utcnow
from app.models import Certificate, Edition
from app.services.certificates import credentials, open_badges
from app.services.certificates.issuing import (
    CertificateOptions,
    badge_facts,
    dates_in_words,
    module_facts,
    status_list,
)
from app.services.errors import Conflict


def signed_credential(
    session: Session,
    certificate: Certificate,
    options: CertificateOptions,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The certificate's OpenBadgeCredential with an eddsa-rdfc-2022 Data Integrity proof."""
    if certificate.revoked_at is not None:
        raise Conflict(f"Certificate {certificate.number} is revoked; it has no credential.")
    facts = badge_facts(session, certificate, options)
    document = open_badges.credential(options.issuer, facts)
    return credentials.secure(options.issuer, document, now=now or utcnow())


def signed_status_list(
    session: Session, options: CertificateOptions, *, now: datetime | None = None
) -> dict[str, Any]:
    """The revocation list with a Data Integrity proof, as verifiers of the credential read it."""
    instant = now or utcnow()
    document = status_list(session, options, now=instant)
    return credentials.secure(options.issuer, document, now=instant)


def status_list_jwt(
    session: Session, options: CertificateOptions, *, now: datetime | None = None
) -> str:
    """The revocation list in the JWT form, for verifiers of the JWT credential."""
    return credentials.vc_jwt(options.issuer, status_list(session, options, now=now))


def edition_achievement(
    session: Session, edition: Edition, options: CertificateOptions
) -> dict[str, Any]:
    """What an edition's badge stands for: the `Achievement` its credentials name."""
    facts = open_badges.BadgeFacts(
        number="",
        version=1,
        status_index=0,
        email="",
        edition_slug=edition.slug,
        course=edition.title,
        edition_label=edition.edition_label,
        place=edition.place,
        dates=dates_in_words(edition.start_date, edition.end_date),
        issued_at=utcnow(),
        verification_url="",
        modules=module_facts(session, edition),
        attendance_min_percent=edition.attendance_min_percent,
    )
    document = open_badges.achievement(options.issuer, facts)
    return {"@context": [open_badges.VC_CONTEXT, open_badges.OB_CONTEXT], **document}
