"""Staff accounts: passwords, login with throttling, and API tokens."""

import logging
import math
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import LoginAttempt, Role, StaffUser
from app.platform.i18n import N_
from app.platform.mail import normalise_email, queue_email
from app.services.errors import Conflict, DomainError, InvalidInput, NotFound

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
    """Too many recent failures for this account from this address, or from this address."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def _failures_since(session: Session, *conditions: Any) -> tuple[int, datetime | None]:
    """How many failed attempts match, and when the latest was."""
    count, latest = session.execute(
        select(func.count(), func.max(LoginAttempt.at)).where(
            col(LoginAttempt.succeeded).is_(False), *conditions
        )
    ).one()
    return int(count), latest


def login_delay(failures: int, *, max_failures: int, delay_seconds: int, cap_seconds: int) -> int:
    """Seconds one address must wait after its latest failure on one account: none below
    `max_failures`, then `delay_seconds`, doubling with each further failure, up to the cap."""
    if failures < max_failures:
        return 0
    doublings = min(failures - max_failures, 30)
    return min(cap_seconds, delay_seconds * (1 << doublings))


def _warn_owner(session: Session, user: StaffUser, *, failures: int, address: str) -> None:
    """An e-mail to the account's owner, in the caller's transaction (sent after the commit)."""
    queue_email(
        session,
        kind="login_failures",
        to=user.email,
        subject=N_("Failed log-ins to your course office account"),
        subject_values={},
        context={"user": user, "failures": failures, "address": address},
    )


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of the staff member, wherever it was started (logging out)."""
    session.execute(
        update(StaffUser)
        .where(col(StaffUser.id) == user_id)
        .values(session_generation=StaffUser.session_generation + 1)
    )
    session.commit()


def change_password(session: Session, *, email: str, password: str) -> StaffUser:
    """Set a new password; every session and API token of the account ends with the old one."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "The password is too short.",
            fields={"password": f"Use at least {MIN_PASSWORD_LENGTH} characters."},
        )
    user = _account(session, email)
    user.password_hash = hash_password(password)
    user.session_generation += 1
    session.add(user)
    session.commit()
    log.info("password changed for %s", user.email)
    return user


def deactivate_user(session: Session, *, email: str) -> StaffUser:
    """Close an account: it can no longer log in, and its sessions and tokens end now."""
    user = _account(session, email)
    user.active = False
    user.session_generation += 1
    session.add(user)
    session.commit()
    log.info("account %s deactivated", user.email)
    return user


def _account(session: Session, email: str) -> StaffUser:
    email = normalise_email(email)
    user = session.exec(select(StaffUser).where(StaffUser.email == email)).first()
    if user is None:
        raise NotFound(f"There is no staff account {email}.")
    return user


def authenticate(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    max_failures: int,
    window_seconds: int,
    delay_seconds: int = 30,
) -> StaffUser:
    """The active user with these credentials; throttled after repeated failures."""
    email = normalise_email(email)[:254]
    address = (address or "unknown")[:64]
    now = utcnow()
    since = now - timedelta(seconds=window_seconds)
    # Throttled by account and address together: failures from elsewhere never keep the
    # account's owner out, so no outsider can lock an account. An address may try several
    # accounts (an office behind one NAT), so it gets more room across accounts.
    by_pair, last_failure = _failures_since(
        session,
        LoginAttempt.email == email,
        LoginAttempt.address == address,
        LoginAttempt.at >= since,
    )
    by_address, _ = _failures_since(
        session, LoginAttempt.address == address, LoginAttempt.at >= since
    )
    wait = login_delay(
        by_pair,
        max_failures=max_failures,
        delay_seconds=delay_seconds,
        cap_seconds=window_seconds,
    )
    if last_failure is not None and wait:
        wait = max(0, math.ceil((last_failure + timedelta(seconds=wait) - now).total_seconds()))
    if by_address >= max_failures * 4:
        wait = max(wait, window_seconds)
    if wait:
        log.warning("login throttled for %s from %s", email, address)
        session.add(LoginAttempt(email=email, address=address, succeeded=False))
        session.commit()
        raise LoginThrottled(
            f"Too many failed attempts. Wait {max(1, math.ceil(wait / 60))} minutes and try again.",
            retry_after=wait,
        )
    user = session.exec(select(StaffUser).where(StaffUser.email == email)).first()
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(email=email, address=address, succeeded=ok))
    if not ok or user is None:
        if user is not None and user.active:
            by_account, _ = _failures_since(
                session, LoginAttempt.email == email, LoginAttempt.at >= since
            )
            # Once per run of failures: the attempt that reaches the limit tells the owner.
            if by_account == max_failures:
                _warn_owner(session, user, failures=by_account, address=address)
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
    return _serializer(secret_key).dumps(
        {"uid": user.id, "h": user.password_hash[-12:], "g": user.session_generation}
    )


def user_for_token(
    session: Session, token: str, *, secret_key: str, max_age_seconds: int
) -> StaffUser | None:
    """The active user a valid, unexpired token names; None otherwise.

    The token carries a fragment of the password hash and the account's session generation,
    so changing the password, logging out or deactivating ends every token issued before.
    """
    try:
        payload = _serializer(secret_key).loads(token, max_age=max_age_seconds)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int):
        return None
    user = session.get(StaffUser, payload["uid"])
    if (
        user is None
        or not user.active
        or user.password_hash[-12:] != payload.get("h")
        or user.session_generation != payload.get("g")
    ):
        return None
    return user


def any_admin_exists(session: Session) -> bool:
    """Whether at least one administrator account exists."""
    found = session.exec(
        select(StaffUser.id).where(StaffUser.role == Role.admin.value).limit(1)
    ).first()
    return found is not None
