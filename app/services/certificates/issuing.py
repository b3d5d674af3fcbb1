"""Issuing, verifying, revoking and re-issuing certificates.

A certificate is issued once per participant, under a random number that never changes. A
name correction issues a new version under the same number (the earlier PDF then no longer
matches what verification shows); a revocation is final. PDFs are rendered once and kept in
storage; every later download is served from there.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from app.clock import edition_today, utcnow
from app.config import Settings
from app.models import (
    Application,
    ApplicationStatus,
    Certificate,
    CertificateVersion,
    CourseSession,
    Edition,
    Module,
)
from app.platform import i18n
from app.platform.audit import record_change
from app.platform.i18n import N_
from app.platform.mail import Attachment, queue_email
from app.platform.storage import Storage, new_key
from app.services.certificates import credentials, open_badges
from app.services.certificates import numbers as certificate_numbers
from app.services.certificates.document import (
    CertificatePage,
    SignatoryMark,
    batches,
    process_count,
    render_batches,
    render_certificates,
    signature_image,
)
from app.services.certificates.eligibility import Eligibility, evaluate, evaluate_edition
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.applications import get_application, portal_url

LINKEDIN_ADD_URL = "https://www.linkedin.com/profile/add"
REASON_MIN = 10
REASON_MAX = 1000
NAME_MIN = 2
NAME_MAX = 200
# Participants whose certificate status matters to the office (others are not in the course).
PARTICIPANT_STATUSES = (
    ApplicationStatus.admitted.value,
    ApplicationStatus.confirmed.value,
    ApplicationStatus.completed.value,
)


class NotEligible(Conflict):
    """The participant does not meet the conditions; `reasons` lists each one in words."""

    def __init__(self, message: str, *, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


@dataclass(frozen=True)
class CertificateOptions:
    """What issuing needs from the settings, as plain values."""

    base_url: str
    secret_key: str
    issuer_line: str
    organisation_name: str
    signatories: tuple[SignatoryMark, ...]
    linkedin_organization_id: str
    linkedin_organization_name: str
    open_badges_key: str
    render_processes: int = 1
    open_badges_rsa_key: str = ""
    open_badges_past_keys: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, cpu_count: int | None = 1
    ) -> "CertificateOptions":
        """Options from the service's settings; `cpu_count` sizes the bulk renderer."""
        return cls(
            base_url=settings.base_url.rstrip("/"),
            secret_key=settings.secret_key,
            issuer_line=settings.certificate_issuer_line,
            organisation_name=settings.organisation_name,
            signatories=tuple(
                SignatoryMark(name=s.name, title=s.title, image=signature_image(s.signature))
                for s in settings.certificate_signatories
            ),
            linkedin_organization_id=settings.linkedin_organization_id,
            linkedin_organization_name=settings.linkedin_organization_name,
            open_badges_key=settings.open_badges_private_key,
            render_processes=process_count(settings.certificate_render_processes, cpu_count),
            open_badges_rsa_key=settings.open_badges_rsa_private_key,
            open_badges_past_keys=tuple(settings.open_badges_past_public_keys),
        )

    @property
    def issuer(self) -> open_badges.Issuer:
        """The Open Badges issuer these options describe."""
        return open_badges.Issuer(
            name=self.organisation_name,
            base_url=self.base_url,
            private_key_pem=self.open_badges_key,
            rsa_private_key_pem=self.open_badges_rsa_key,
            past_public_keys=self.open_badges_past_keys,
        )


@dataclass
class IssueResult:
    """A certificate and whether this call issued it (False: it existed already)."""

    certificate: Certificate
    created: bool


@dataclass
class BulkResult:
    """What a bulk run did: certificates issued now, ones that existed, and who was skipped."""

    issued: list[Certificate] = field(default_factory=list)
    already_issued: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)


ProgressCallback = Callable[[int, int, int], None]


# Plain facts


def verification_url(options: CertificateOptions, number: str) -> str:
    """The public address that verifies a certificate (printed, in the QR code, on LinkedIn)."""
    return f"{options.base_url}/verify/{number}"


def holder_name(application: Application) -> str:
    """The name as the participant registered it for the certificate, else as they applied."""
    name = application.certificate_name or application.full_name
    return " ".join(name.split())


def _edition_of(session: Session, application: Application) -> Edition:
    edition = session.get(Edition, application.edition_id)
    if edition is None:
        raise NotFound(f"There is no edition {application.edition_id}.")
    return edition


def date_in_words(value: date) -> str:
    """`22 November 2024`."""
    return f"{value.day} {value:%B} {value.year}"


def dates_in_words(start: date, end: date) -> str:
    """`18 to 22 November 2024`, shortened where month or year repeat."""
    if start == end:
        return date_in_words(start)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day} to {end.day} {end:%B} {end.year}"
    if start.year == end.year:
        return f"{start.day} {start:%B} to {end.day} {end:%B} {end.year}"
    return f"{date_in_words(start)} to {date_in_words(end)}"


def _modules(session: Session, edition: Edition) -> list[Module]:
    return list(
        session.exec(
            select(Module).where(Module.edition_id == edition.id).order_by(col(Module.position))
        ).all()
    )


def _page(
    *,
    number: str,
    holder: str,
    version: int,
    issued_on: date,
    edition: Edition,
    modules: Sequence[Module | str],
    options: CertificateOptions,
    language: str | None = None,
) -> CertificatePage:
    """A page in the holder's language: course texts as entered in it (else English), dates
    written its way; the page's own words are translated when it is rendered."""
    with i18n.use_language(language) as written_in:
        return CertificatePage(
            number=number,
            holder=holder,
            issuer=options.issuer_line,
            course=i18n.localized(edition, "title"),
            edition=edition.edition_label,
            place=edition.place,
            dates=i18n.date_range_words(edition.start_date, edition.end_date),
            modules=tuple(m if isinstance(m, str) else i18n.localized(m, "title") for m in modules),
            signatories=options.signatories,
            issued_on=i18n.day_month_year(issued_on),
            version=version,
            verification_url=verification_url(options, number),
            language=written_in,
        )


def linkedin_url(options: CertificateOptions, certificate: Certificate, edition: Edition) -> str:
    """LinkedIn's add-to-profile link for a certification; the holder's name is never in it."""
    params: dict[str, str | int] = {
        "startTask": "CERTIFICATION_NAME",
        "name": edition.title,
    }
    if options.linkedin_organization_id:
        params["organizationId"] = options.linkedin_organization_id
    else:
        params["organizationName"] = options.linkedin_organization_name
    params.update(
        issueYear=certificate.issued_on.year,
        issueMonth=certificate.issued_on.month,
        certUrl=verification_url(options, certificate.number),
        certId=certificate.number,
    )
    return f"{LINKEDIN_ADD_URL}?{urlencode(params)}"


def pdf_filename(certificate: Certificate) -> str:
    """`certificate-MD24-7KQ3-9XWF-2HBN-A.pdf` (the version when there are several)."""
    suffix = f"-v{certificate.version}" if certificate.version > 1 else ""
    return f"certificate-{certificate.number}{suffix}.pdf"


# Reading


def certificate_of(session: Session, application_id: int) -> Certificate | None:
    """The certificate of an application, if one was issued."""
    return session.exec(
        select(Certificate).where(Certificate.application_id == application_id)
    ).first()


def summary(session: Session, application_id: int) -> dict[str, Any] | None:
    """The certificate of an application in a few fields, or None when none was issued."""
    certificate = certificate_of(session, application_id)
    if certificate is None:
        return None
    return {
        "number": certificate.number,
        "version": certificate.version,
        "holder": certificate.holder_name,
        "issued_on": certificate.issued_on.isoformat(),
        "revoked": certificate.revoked_at is not None,
        "revoked_at": certificate.revoked_at.isoformat() if certificate.revoked_at else None,
    }


def get_by_number(session: Session, number: str) -> Certificate:
    """The certificate with this number (typed in any case, with or without dashes).

    InvalidNumber explains a number that cannot be right; NotFound one that is well formed
    but was never issued.
    """
    canonical = certificate_numbers.normalise(number)
    certificate = session.exec(select(Certificate).where(Certificate.number == canonical)).first()
    if certificate is None:
        raise NotFound(
            f"No certificate has the number {canonical}. Check it against the certificate; "
            "if it matches, the certificate was not issued by us."
        )
    return certificate


def versions_of(session: Session, certificate: Certificate) -> list[CertificateVersion]:
    """Every issued version, oldest first."""
    return list(
        session.exec(
            select(CertificateVersion)
            .where(CertificateVersion.certificate_id == certificate.id)
            .order_by(col(CertificateVersion.version))
        ).all()
    )


def certificates_of_edition(session: Session, edition: Edition) -> list[Certificate]:
    """An edition's certificates, by holder name."""
    return list(
        session.exec(
            select(Certificate)
            .where(Certificate.edition_id == edition.id)
            .order_by(col(Certificate.holder_name))
        ).all()
    )


def public_view(session: Session, certificate: Certificate) -> dict[str, Any]:
    """What anyone may see about a certificate: no e-mail, organisation or other detail."""
    edition = session.get(Edition, certificate.edition_id)
    assert edition is not None
    zone = ZoneInfo(edition.timezone)
    revoked = certificate.revoked_at is not None
    return {
        "number": certificate.number,
        "valid": not revoked,
        "revoked": revoked,
        "revoked_on": (
            certificate.revoked_at.astimezone(zone).date().isoformat()
            if certificate.revoked_at
            else None
        ),
        "holder": certificate.holder_name,
        "course": edition.title,
        "edition": edition.edition_label,
        "place": edition.place,
        "start_date": edition.start_date.isoformat(),
        "end_date": edition.end_date.isoformat(),
        "issued_on": certificate.issued_on.isoformat(),
        "version": certificate.version,
        "reissued_on": (
            certificate.reissued_at.astimezone(zone).date().isoformat()
            if certificate.reissued_at
            else None
        ),
    }


# Issuing


def _unique_numbers(session: Session, prefix: str, count: int) -> list[str]:
    """`count` fresh numbers no certificate has (60 random bits each: clashes are theory)."""
    numbers: list[str] = []
    while len(numbers) < count:
        wanted = {certificate_numbers.new_number(prefix) for _ in range(count - len(numbers))}
        taken = set(
            session.exec(
                select(Certificate.number).where(col(Certificate.number).in_(wanted))
            ).all()
        )
        numbers.extend(sorted(wanted - taken))
    return numbers


def _record_issue(
    session: Session,
    *,
    application: Application,
    edition: Edition,
    number: str,
    holder: str,
    pdf_key: str,
    actor: str,
    now: datetime,
    options: CertificateOptions,
    eligibility: Eligibility,
) -> Certificate:
    """Rows, status, e-mail and audit entry of one new certificate (the caller commits)."""
    issued_on = edition_today(edition, now)
    certificate = Certificate(
        number=number,
        application_id=application.id or 0,
        edition_id=edition.id or 0,
        holder_name=holder,
        issued_on=issued_on,
        issued_at=now,
        issued_by=actor,
        pdf_key=pdf_key,
        updated_at=now,
    )
    session.add(certificate)
    session.flush()
    session.add(
        CertificateVersion(
            certificate_id=certificate.id or 0,
            version=1,
            holder_name=holder,
            issued_on=issued_on,
            issued_at=now,
            issued_by=actor,
            reason="issued",
            pdf_key=pdf_key,
        )
    )
    _announce(
        session,
        kind="certificate_issued",
        subject=N_("Your certificate of the %(course)s"),
        application=application,
        edition=edition,
        certificate=certificate,
        options=options,
    )
    record_change(
        session,
        actor=actor,
        action="certificate.issued",
        entity="application",
        entity_id=application.id or 0,
        after={
            "number": number,
            "holder_name": holder,
            "override": eligibility.override_reason if eligibility.overridden else None,
        },
    )
    return certificate


def _complete(session: Session, application_ids: Sequence[int], now: datetime) -> None:
    """Confirmed participants become completed when their certificate is issued."""
    if not application_ids:
        return
    session.execute(
        update(Application)
        .where(
            col(Application.id).in_(application_ids),
            col(Application.status) == ApplicationStatus.confirmed.value,
        )
        .values(
            status=ApplicationStatus.completed.value,
            version=Application.version + 1,
            updated_at=now,
        )
    )


def _announce(
    session: Session,
    *,
    kind: str,
    subject: str,
    application: Application,
    edition: Edition,
    certificate: Certificate,
    options: CertificateOptions,
    reason: str = "",
) -> None:
    attachments = (
        [Attachment(filename=pdf_filename(certificate), key=certificate.pdf_key)]
        if certificate.pdf_key and kind != "certificate_revoked"
        else []
    )
    queue_email(
        session,
        kind=kind,
        to=application.email,
        subject=subject,
        # The subject is a catalog message: written in the applicant's language when queued.
        subject_values={
            "course": i18n.localized(edition, "title", application.language),
            "number": certificate.number,
        },
        context={
            "application": application,
            "edition": edition,
            "certificate": certificate,
            "holder": certificate.holder_name,
            "verification_url": verification_url(options, certificate.number),
            "portal_url": portal_url(
                application, edition, secret_key=options.secret_key, base_url=options.base_url
            ),
            "reason": reason,
        },
        application_id=application.id,
        attachments=attachments,
    )


def _not_eligible(application: Application, eligibility: Eligibility) -> NotEligible:
    return NotEligible(
        f"{holder_name(application)} ({application.reference}) cannot receive the certificate "
        f"yet: {'; '.join(eligibility.reasons) or 'the conditions are not met'}.",
        reasons=eligibility.reasons or ["The conditions for the certificate are not met."],
    )


def issue_certificate(
    session: Session,
    *,
    application_id: int,
    actor: str,
    storage: Storage,
    options: CertificateOptions,
    now: datetime | None = None,
) -> IssueResult:
    """Issue one participant's certificate; issuing again returns the one that exists.

    NotEligible (409) lists every unmet condition from the eligibility rules.
    """
    now = now or utcnow()
    application = get_application(session, application_id)
    existing = certificate_of(session, application_id)
    if existing is not None:
        return IssueResult(existing, created=False)
    eligibility = evaluate(session, application, now=now)
    if not eligibility.eligible:
        raise _not_eligible(application, eligibility)
    edition = _edition_of(session, application)
    holder = holder_name(application)
    number = _unique_numbers(session, certificate_numbers.prefix_for(edition.start_date.year), 1)[0]
    page = _page(
        number=number,
        holder=holder,
        version=1,
        issued_on=edition_today(edition, now),
        edition=edition,
        modules=_modules(session, edition),
        options=options,
        language=application.language,
    )
    pdf_key = new_key("certificates", ".pdf")
    storage.put(pdf_key, render_certificates([page])[0])
    try:
        certificate = _record_issue(
            session,
            application=application,
            edition=edition,
            number=number,
            holder=holder,
            pdf_key=pdf_key,
            actor=actor,
            now=now,
            options=options,
            eligibility=eligibility,
        )
        _complete(session, [application_id], now)
        session.commit()
    except IntegrityError:
        # Someone issued it at the same moment (one per application): theirs stands.
        session.rollback()
        storage.delete(pdf_key)
        existing = certificate_of(session, application_id)
        if existing is None:
            raise
        return IssueResult(existing, created=False)
    session.refresh(certificate)
    return IssueResult(certificate, created=True)


def _skipped_entry(application: Application, eligibility: Eligibility) -> dict[str, Any]:
    return {
        "application_id": application.id,
        "reference": application.reference,
        "name": holder_name(application),
        "reasons": eligibility.reasons or ["The conditions for the certificate are not met."],
    }


def issue_for_edition(
    session: Session,
    *,
    edition: Edition,
    actor: str,
    storage: Storage,
    options: CertificateOptions,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> BulkResult:
    """Issue the certificate of every eligible participant of an edition who has none yet.

    Certificates are rendered in batches (one document per batch, split per certificate)
    in `options.render_processes` processes; each batch is stored and committed on its own,
    so a run that stops keeps what it finished and a second run issues only the rest.
    `progress(done, total, issued)` is called after every batch.
    """
    now = now or utcnow()
    result = BulkResult()
    eligibility = evaluate_edition(session, edition, now=now)
    applications = (
        list(
            session.exec(
                select(Application)
                .where(col(Application.id).in_(list(eligibility)))
                .order_by(col(Application.family_name), col(Application.given_name))
            ).all()
        )
        if eligibility
        else []
    )
    issued_ids = set(
        session.exec(
            select(Certificate.application_id).where(Certificate.edition_id == edition.id)
        ).all()
    )
    candidates: list[Application] = []
    for application in applications:
        answer = eligibility[application.id or 0]
        if application.id in issued_ids:
            result.already_issued += 1
        elif answer.eligible:
            candidates.append(application)
        elif application.status in PARTICIPANT_STATUSES:
            result.skipped.append(_skipped_entry(application, answer))
    total = len(candidates)
    if progress:
        progress(0, total, 0)
    if not candidates:
        return result
    issued_on = edition_today(edition, now)
    modules = _modules(session, edition)
    numbers = _unique_numbers(
        session, certificate_numbers.prefix_for(edition.start_date.year), total
    )
    holders = [holder_name(a) for a in candidates]
    pages = [
        _page(
            number=number,
            holder=holder,
            version=1,
            issued_on=issued_on,
            edition=edition,
            modules=modules,
            options=options,
            language=application.language,
        )
        for number, holder, application in zip(numbers, holders, candidates, strict=True)
    ]
    # A batch is one document in one language: batches are cut per language (in name order
    # within each), so a run in several languages still renders one document per batch.
    by_language: dict[str, list[int]] = {}
    for index, page in enumerate(pages):
        by_language.setdefault(page.language, []).append(index)
    groups = [group for indexes in by_language.values() for group in batches(indexes)]
    rendered = render_batches(
        ([pages[i] for i in group] for group in groups), processes=options.render_processes
    )
    done = 0
    for group, pdfs in zip(groups, rendered, strict=True):
        keys = [new_key("certificates", ".pdf") for _ in group]
        for key, pdf in zip(keys, pdfs, strict=True):
            storage.put(key, pdf)
        batch = [candidates[i] for i in group]
        try:
            created = _store_batch(
                session,
                applications=batch,
                edition=edition,
                numbers=[numbers[i] for i in group],
                holders=[holders[i] for i in group],
                keys=keys,
                actor=actor,
                now=now,
                options=options,
                eligibility=eligibility,
            )
        except Exception:
            for key in keys:
                storage.delete(key)
            raise
        # Files of certificates someone else issued meanwhile belong to nobody.
        used = {c.pdf_key for c in created}
        for key in keys:
            if key not in used:
                storage.delete(key)
        result.issued.extend(created)
        done += len(group)
        if progress:
            progress(done, total, len(result.issued))
    result.already_issued += total - len(result.issued)
    return result


def _store_batch(
    session: Session,
    *,
    applications: list[Application],
    edition: Edition,
    numbers: list[str],
    holders: list[str],
    keys: list[str],
    actor: str,
    now: datetime,
    options: CertificateOptions,
    eligibility: dict[int, Eligibility],
) -> list[Certificate]:
    """Record one rendered batch in one transaction; ones issued meanwhile are left alone."""
    ids = [a.id or 0 for a in applications]
    # Issued meanwhile (a single issue, or another run): keep theirs, drop our file.
    taken = set(
        session.exec(
            select(Certificate.application_id).where(col(Certificate.application_id).in_(ids))
        ).all()
    )
    created: list[Certificate] = []
    for application, number, holder, key in zip(applications, numbers, holders, keys, strict=True):
        if application.id in taken:
            continue
        created.append(
            _record_issue(
                session,
                application=application,
                edition=edition,
                number=number,
                holder=holder,
                pdf_key=key,
                actor=actor,
                now=now,
                options=options,
                eligibility=eligibility[application.id or 0],
            )
        )
    _complete(session, [c.application_id for c in created], now)
    try:
        session.commit()
    except IntegrityError:
        # Between the check and the commit another request issued one of these: do the
        # batch again one by one, each in its own savepoint.
        session.rollback()
        return _store_one_by_one(
            session,
            applications=applications,
            edition=edition,
            numbers=numbers,
            holders=holders,
            keys=keys,
            actor=actor,
            now=now,
            options=options,
            eligibility=eligibility,
        )
    return created


def _store_one_by_one(
    session: Session,
    *,
    applications: list[Application],
    edition: Edition,
    numbers: list[str],
    holders: list[str],
    keys: list[str],
    actor: str,
    now: datetime,
    options: CertificateOptions,
    eligibility: dict[int, Eligibility],
) -> list[Certificate]:
    created: list[Certificate] = []
    for application, number, holder, key in zip(applications, numbers, holders, keys, strict=True):
        try:
            with session.begin_nested():
                certificate = _record_issue(
                    session,
                    application=application,
                    edition=edition,
                    number=number,
                    holder=holder,
                    pdf_key=key,
                    actor=actor,
                    now=now,
                    options=options,
                    eligibility=eligibility[application.id or 0],
                )
                _complete(session, [application.id or 0], now)
        except IntegrityError:
            continue
        created.append(certificate)
    session.commit()
    return created


# Revoking and re-issuing


def _written_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise InvalidInput(
            "Give the reason in words.",
            fields={
                "reason": (
                    f"Write the reason in {REASON_MIN} to {REASON_MAX} characters; it is kept "
                    "in the record."
                )
            },
        )
    return text


def revoke(
    session: Session,
    *,
    number: str,
    reason: str,
    actor: str,
    options: CertificateOptions,
    now: datetime | None = None,
) -> Certificate:
    """Revoke a certificate for good, with the reason kept; verification then says revoked."""
    now = now or utcnow()
    text = _written_reason(reason)
    certificate = get_by_number(session, number)
    if certificate.revoked_at is not None:
        raise Conflict(
            f"Certificate {certificate.number} was revoked already, on "
            f"{certificate.revoked_at.date().isoformat()}; nothing was changed."
        )
    result = session.execute(
        update(Certificate)
        .where(col(Certificate.id) == certificate.id, col(Certificate.revoked_at).is_(None))
        .values(revoked_at=now, revoked_by=actor, revoke_reason=text, updated_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(f"Certificate {certificate.number} was revoked by someone else just now.")
    application = get_application(session, certificate.application_id)
    edition = _edition_of(session, application)
    session.refresh(certificate)
    _announce(
        session,
        kind="certificate_revoked",
        subject=N_("Your certificate %(number)s was revoked"),
        application=application,
        edition=edition,
        certificate=certificate,
        options=options,
        reason=text,
    )
    record_change(
        session,
        actor=actor,
        action="certificate.revoked",
        entity="application",
        entity_id=application.id or 0,
        before={"number": certificate.number, "revoked": False},
        after={"number": certificate.number, "revoked": True, "reason": text},
    )
    session.commit()
    session.refresh(certificate)
    return certificate


def _corrected_name(name: str) -> str:
    text = " ".join(name.split())
    if not NAME_MIN <= len(text) <= NAME_MAX:
        raise InvalidInput(
            "Give the corrected name.",
            fields={
                "holder_name": (
                    f"Write the name exactly as it should appear, {NAME_MIN} to {NAME_MAX} "
                    "characters."
                )
            },
        )
    return text


def reissue(
    session: Session,
    *,
    number: str,
    holder: str,
    reason: str,
    actor: str,
    storage: Storage,
    options: CertificateOptions,
    now: datetime | None = None,
) -> Certificate:
    """Issue a new version under the same number with the corrected name.

    The participant's name for the certificate is corrected too. Earlier versions stay on
    record with their PDFs, and verification shows the current version only.
    """
    now = now or utcnow()
    name = _corrected_name(holder)
    text = _written_reason(reason)
    certificate = get_by_number(session, number)
    if certificate.revoked_at is not None:
        raise Conflict(
            f"Certificate {certificate.number} is revoked; a revoked certificate is not issued "
            "again."
        )
    if name == certificate.holder_name:
        raise InvalidInput(
            "The name is the same.",
            fields={"holder_name": f"The certificate already reads {name!r}; nothing to correct."},
        )
    application = get_application(session, certificate.application_id)
    edition = _edition_of(session, application)
    version = certificate.version + 1
    page = _page(
        number=certificate.number,
        holder=name,
        version=version,
        issued_on=edition_today(edition, now),
        edition=edition,
        modules=_modules(session, edition),
        options=options,
        language=application.language,
    )
    key = new_key("certificates", ".pdf")
    storage.put(key, render_certificates([page])[0])
    previous = {"version": certificate.version, "holder_name": certificate.holder_name}
    result = session.execute(
        update(Certificate)
        .where(col(Certificate.id) == certificate.id, col(Certificate.version) == version - 1)
        .values(
            version=version,
            holder_name=name,
            reissued_at=now,
            pdf_key=key,
            updated_at=now,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        storage.delete(key)
        raise Conflict(
            f"Certificate {certificate.number} was re-issued by someone else just now; "
            "reload and check the name."
        )
    session.add(
        CertificateVersion(
            certificate_id=certificate.id or 0,
            version=version,
            holder_name=name,
            issued_on=edition_today(edition, now),
            issued_at=now,
            issued_by=actor,
            reason=text,
            pdf_key=key,
        )
    )
    application.certificate_name = name
    application.updated_at = now
    session.add(application)
    session.refresh(certificate)
    _announce(
        session,
        kind="certificate_reissued",
        subject=N_("Your corrected certificate of the %(course)s"),
        application=application,
        edition=edition,
        certificate=certificate,
        options=options,
        reason=text,
    )
    record_change(
        session,
        actor=actor,
        action="certificate.reissued",
        entity="application",
        entity_id=application.id or 0,
        before=previous,
        after={"version": version, "holder_name": name, "reason": text},
    )
    session.commit()
    session.refresh(certificate)
    return certificate


# Files


def ensure_pdf(
    session: Session, certificate: Certificate, *, storage: Storage, options: CertificateOptions
) -> bytes:
    """The stored PDF of the current version; rendered and stored only if the file is gone."""
    if certificate.pdf_key and storage.exists(certificate.pdf_key):
        return storage.get(certificate.pdf_key)
    application = get_application(session, certificate.application_id)
    edition = _edition_of(session, application)
    current = next(
        (v for v in versions_of(session, certificate) if v.version == certificate.version), None
    )
    page = _page(
        number=certificate.number,
        holder=certificate.holder_name,
        version=certificate.version,
        issued_on=current.issued_on if current else certificate.issued_on,
        edition=edition,
        modules=_modules(session, edition),
        options=options,
        language=application.language,
    )
    pdf = render_certificates([page])[0]
    key = certificate.pdf_key or new_key("certificates", ".pdf")
    storage.put(key, pdf)
    if certificate.pdf_key != key:
        certificate.pdf_key = key
        session.add(certificate)
        if current is not None:
            current.pdf_key = key
            session.add(current)
        session.commit()
    return pdf


def badge_facts(
    session: Session, certificate: Certificate, options: CertificateOptions
) -> open_badges.BadgeFacts:
    """What a certificate's Open Badges credential states."""
    application = get_application(session, certificate.application_id)
    edition = _edition_of(session, application)
    return open_badges.BadgeFacts(
        number=certificate.number,
        version=certificate.version,
        status_index=certificate.id or 0,
        email=application.email,
        edition_slug=edition.slug,
        course=edition.title,
        edition_label=edition.edition_label,
        place=edition.place,
        dates=dates_in_words(edition.start_date, edition.end_date),
        issued_at=certificate.reissued_at or certificate.issued_at,
        verification_url=verification_url(options, certificate.number),
        modules=module_facts(session, edition),
        attendance_min_percent=edition.attendance_min_percent,
    )


def module_facts(session: Session, edition: Edition) -> tuple[open_badges.ModuleFacts, ...]:
    """The edition's modules with their number of sessions, as the badge's criteria name them."""
    counts = dict(
        session.exec(
            select(CourseSession.module_id, func.count())
            .join(Module, col(Module.id) == CourseSession.module_id)
            .where(Module.edition_id == edition.id)
            .group_by(col(CourseSession.module_id))
        ).all()
    )
    return tuple(
        open_badges.ModuleFacts(position=m.position, title=m.title, sessions=counts.get(m.id, 0))
        for m in _modules(session, edition)
    )


def badge(
    session: Session,
    certificate: Certificate,
    options: CertificateOptions,
    *,
    algorithm: str = "RS256",
) -> str:
    """The certificate as a signed Open Badges 3.0 credential in its JWT form."""
    if certificate.revoked_at is not None:
        raise Conflict(f"Certificate {certificate.number} is revoked; it has no badge.")
    document = open_badges.credential(options.issuer, badge_facts(session, certificate, options))
    return credentials.vc_jwt(options.issuer, document, algorithm=algorithm)


def status_list(
    session: Session, options: CertificateOptions, *, now: datetime | None = None
) -> dict[str, Any]:
    """The revocation list credential, with a bit set for every revoked certificate."""
    revoked = set(
        session.exec(select(Certificate.id).where(col(Certificate.revoked_at).is_not(None))).all()
    )
    highest = session.exec(select(func.max(Certificate.id))).one() or 0
    return open_badges.status_list_credential(
        options.issuer,
        revoked={i for i in revoked if i is not None},
        highest_index=highest,
        now=now or utcnow(),
    )
