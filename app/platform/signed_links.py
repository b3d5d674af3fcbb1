"""Private links: the applicant's portal and a group coordinator's page, signed and revocable."""

from datetime import UTC, date, datetime, time, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from app.clock import utcnow

PORTAL_SALT = "diplomat.portal"
GROUP_SALT = "diplomat.group"


def link_expiry(edition_end: date) -> datetime:
    """Links work until a year after the edition ends."""
    return datetime.combine(edition_end + timedelta(days=366), time(0), tzinfo=UTC)


def make_token(
    *, secret_key: str, salt: str, subject_id: int, version: int, expires: datetime
) -> str:
    """A signed token naming one record and the version of its links."""
    payload = {"i": subject_id, "v": version, "e": int(expires.timestamp())}
    return URLSafeSerializer(secret_key, salt=salt).dumps(payload)


def read_token(
    token: str, *, secret_key: str, salt: str, now: datetime | None = None
) -> tuple[int, int] | None:
    """(record id, link version) of a valid, unexpired token; None otherwise."""
    try:
        payload = URLSafeSerializer(secret_key, salt=salt).loads(token)
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    subject, version, expires = payload.get("i"), payload.get("v"), payload.get("e")
    if not all(isinstance(v, int) for v in (subject, version, expires)):
        return None
    if (now or utcnow()).timestamp() >= expires:  # type: ignore[operator]
        return None
    return subject, version  # type: ignore[return-value]
