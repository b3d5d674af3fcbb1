"""Staff accounts: passwords, login with throttling, and API tokens."""

import logging
import secrets
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import LoginAttempt, Role, StaffUser
from app.platform.i18n import N_
from app.platform.mail import normalise_email
from app.services.errors import Conflict, DomainError, InvalidInput

log = logging.getLogger("diplomat.auth")
_hasher = PasswordHasher()


@lru_cache
def _dummy_hash() -> str:
    # Verifying against a dummy hash for unknown accounts keeps the timing the same.
    return _hasher.hash(secrets.token_urlsafe(16))


MIN_PASSWORD_LENGTH = 12


class LoginFailed(DomainError):
    """Wrong e-mail or password (never says which)."""


class LoginThrottled(DomainError):
    """Too many recent failures for this account or address."""


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def create_user(
    session: Session, *, email: str, password: str, role: str, full_name: str = ""
) -> StaffUser:
    """A new staff account; a short password or a taken e-mail is refused."""
    email = normalise_email(email)
    faults = {}
    if "@" not in email or len(email) > 254:
        faults["email"] = "Give a valid e-mail address."
    if role not in {r.value for r in Role}:
        faults["role"] = "The role is admin or tutor."
    if len(password) < MIN_PASSWORD_LENGTH:
        faults["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if faults:
        raise InvalidInput("The account cannot be created.", fields=faults)
    if session.exec(select(StaffUser.id).where(StaffUser.email == email)).first() is not None:
        raise Conflict(f"An account for {email} exists already.", fields={"email": "Taken."})
    user = StaffUser(
        email=email, password_hash=hash_password(password), role=role, full_name=full_name
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def _recent_failures(
    session: Session, *, email: str, address: str, window: timedelta
) -> tuple[int, int]:
    since = utcnow() - window
    by_email = session.exec(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.email == email,
            LoginAttempt.at >= since,
            col(LoginAttempt.succeeded).is_(False),
        )
    ).one()
    by_address = session.exec(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.address == address,
            LoginAttempt.at >= since,
            col(LoginAttempt.succeeded).is_(False),
        )
    ).one()
    return by_email, by_address


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of the staff member, wherever it was started (logging out)."""
    session.execute(
        update(StaffUser)
        .where(col(StaffUser.id) == user_id)
        .values(session_generation=StaffUser.session_generation + 1)
    )
    session.commit()


def authenticate(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    max_failures: int,
    window_seconds: int,
) -> StaffUser:
    """The active user with these credentials; throttled after repeated failures."""
    email = normalise_email(email)[:254]
    address = (address or "unknown")[:64]
    window = timedelta(seconds=window_seconds)
    by_email, by_address = _recent_failures(session, email=email, address=address, window=window)
    # An address may try several accounts (an office behind one NAT), so it gets more room.
    if by_email >= max_failures or by_address >= max_failures * 4:
        log.warning("login throttled for %s from %s", email, address)
        session.add(LoginAttempt(email=email, address=address, succeeded=False))
        session.commit()
        minutes = max(1, window_seconds // 60)
        raise LoginThrottled(f"Too many failed attempts. Wait {minutes} minutes and try again.")
    user = session.exec(select(StaffUser).where(StaffUser.email == email)).first()
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(email=email, address=address, succeeded=ok))
    if not ok or user is None:
        session.commit()
        log.warning("failed login for %s from %s", email, address)
        raise LoginFailed(N_("Wrong e-mail or password."))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.add(user)
    session.commit()
    log.info("login for %s from %s", email, address)
    return user


def prune_login_attempts(session: Session, *, older_than: timedelta) -> None:
    """Forget attempts older than the throttling window needs."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - older_than))  # type: ignore[arg-type]
    session.commit()


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="diplomat.api-token")


def issue_token(user: StaffUser, *, secret_key: str) -> str:
    """A signed bearer token naming the user; the user's current state is checked on use."""
    return _serializer(secret_key).dumps({"uid": user.id, "h": user.password_hash[-12:]})


def user_for_token(
    session: Session, token: str, *, secret_key: str, max_age_seconds: int
) -> StaffUser | None:
    """The active user a valid, unexpired token names; None otherwise.

    The token carries a fragment of the password hash, so changing the password ends every
    token issued before.
    """
    try:
        payload = _serializer(secret_key).loads(token, max_age=max_age_seconds)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int):
        return None
    user = session.get(StaffUser, payload["uid"])
    if user is None or not user.active or user.password_hash[-12:] != payload.get("h"):
        return None
    return user


def any_admin_exists(session: Session) -> bool:
    """Whether at least one administrator account exists."""
    found = session.exec(
        select(StaffUser.id).where(StaffUser.role == Role.admin.value).limit(1)
    ).first()
    return found is not None
