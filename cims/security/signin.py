"""Sign-in: password (with lockout counted in the database), then TOTP, then a session row."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass

import jwt
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import get_settings
from cims.security import audit, otp_channel
from cims.security.accounts import build_actor
from cims.security.crypto import load_cipher
from cims.security.mfa import hash_recovery_code, new_recovery_codes, totp_step
from cims.security.models import AuthSession, RecoveryCode, SignInAttempt, User
from cims.security.passwords import hash_password, password_problems, verify_password
from cims.security.rbac import Actor
from cims.text_guard import without_nul


@dataclass(frozen=True)
class PasswordResult:
    """Outcome of the password step; ``error`` is a translation key when it failed."""

    user_id: int | None
    error: str | None = None
    needs_totp: bool = False
    needs_enrolment: bool = False


def check_password(*, session: Session, username: str, password: str) -> PasswordResult:
    """Verify username and password; wrong, unknown, locked and disabled all look alike."""
    settings = get_settings()
    name = without_nul(username.strip().lower())  # recorded below; no account holds a NUL
    user = session.scalar(select(User).where(User.username == name))
    now = utcnow()
    # Always spend one bcrypt so an unknown name takes as long as a wrong password.
    valid = verify_password(password, user.password_hash if user else None)
    error = None
    if user is None or not valid or not user.is_active:
        error = "signin.invalid"
    elif user.locked_until is not None and user.locked_until > now:
        error = "signin.locked"
    session.add(
        SignInAttempt(
            username=name,
            user_id=user.id if user else None,
            success=error is None,
            stage="password",
            reason=error,
        )
    )
    if error is not None:
        if user is not None and not valid:
            _lock_if_needed(session, user, now)
        audit.record(session, None, "auth.password", outcome="denied", username=name)
        session.flush()
        if settings.login_sleep_seconds:
            time.sleep(settings.login_sleep_seconds)
        return PasswordResult(user_id=None, error=error)
    assert user is not None
    staff = user.kind == "staff"
    # Staff must have a second factor; a patient has one if they turned it on.
    return PasswordResult(
        user_id=user.id,
        needs_totp=user.totp_secret_enc is not None,
        needs_enrolment=staff and user.totp_secret_enc is None,
    )


def _lock_if_needed(session: Session, user: User, now: dt.datetime) -> None:
    """Lock the account once too many failures fall within the lockout window (settings)."""
    settings = get_settings()
    window = dt.timedelta(minutes=settings.lockout_minutes)
    session.flush()
    failures = session.scalar(
        select(func.count(SignInAttempt.id)).where(
            SignInAttempt.user_id == user.id,
            SignInAttempt.success.is_(False),
            SignInAttempt.attempted_at > now - window,
            # An admin's unlock starts a fresh count.
            SignInAttempt.attempted_at
            > (user.unlocked_at or dt.datetime.min.replace(tzinfo=dt.UTC)),
        )
    )
    if (failures or 0) >= settings.lockout_failures:
        user.locked_until = now + window
        audit.record(
            session,
            None,
            "auth.locked",
            object_type="user",
            object_id=user.id,
            username=user.username,
        )


def check_totp(*, session: Session, user_id: int, code: str) -> bool:
    """Verify the second factor of a user who passed the password step."""
    user = session.get(User, user_id)
    if user is None or user.totp_secret_enc is None:
        return False
    secret = load_cipher(session).decrypt_text(
        user.totp_secret_enc, table="users", column="totp_secret", row_id=user.id
    )
    step = totp_step(secret, code)
    # A code is good once: one seen at or before the last accepted step is a replay.
    fresh = step is not None and (user.totp_last_step is None or step > user.totp_last_step)
    if fresh:
        user.totp_last_step = step
    return _second_factor(session, user, fresh, "totp")


def check_message_code(*, session: Session, user_id: int, code: str) -> bool:
    """Verify a one-time code sent over the message channel instead of TOTP."""
    user = session.get(User, user_id)
    if user is None or user.totp_secret_enc is None:
        return False  # a message code stands in for an enrolled factor, never for enrolment
    return _second_factor(
        session,
        user,
        otp_channel.check_code(session=session, user_id=user_id, code=code),
        "message",
    )


def _second_factor(session: Session, user: User, ok: bool, stage: str) -> bool:
    """Record a second-factor attempt; failures count towards the lockout."""
    session.add(
        SignInAttempt(
            username=user.username,
            user_id=user.id,
            success=ok,
            stage=stage,
            reason=None if ok else "signin.bad_code",
        )
    )
    if not ok:
        audit.record(session, None, f"auth.{stage}", outcome="denied", username=user.username)
        _lock_if_needed(session, user, utcnow())
    return ok


def enrol_totp(*, session: Session, user_id: int, secret: str, code: str) -> bool:
    """Store a new TOTP secret once the user proves their app shows the right code."""
    user = session.get(User, user_id)
    step = totp_step(secret, code)
    if user is None or step is None:
        return False
    user.totp_last_step = step  # the enrolment code cannot then be replayed to sign in
    user.totp_secret_enc = load_cipher(session).encrypt(
        secret, table="users", column="totp_secret", row_id=user.id
    )
    user.mfa_enrolled_at = utcnow()
    audit.record(
        session,
        None,
        "auth.mfa_enrolled",
        object_type="user",
        object_id=user.id,
        username=user.username,
    )
    return True


def start_session(*, session: Session, user_id: int) -> tuple[uuid.UUID, Actor]:
    """Open a server-side session after every factor passed; returns its id and the actor."""
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    now = utcnow()
    user.last_login_at = now
    lifetime = dt.timedelta(hours=get_settings().session_absolute_hours)
    row = AuthSession(
        user_id=user.id,
        mfa_passed_at=now if user.kind == "staff" or user.totp_secret_enc is not None else None,
        created_at=now,
        last_seen_at=now,
        cookie_expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    actor = build_actor(session, user)
    audit.record(session, actor, "auth.sign_in", object_type="session", object_id=row.id)
    return row.id, actor


def touch_session(*, session: Session, session_id: uuid.UUID) -> bool:
    """Keep a session alive; False when revoked, idle too long or past its absolute lifetime."""
    settings = get_settings()
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    lifetime = dt.timedelta(hours=settings.session_absolute_hours)
    now = utcnow()
    result = session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.last_seen_at > now - idle,
            AuthSession.created_at > now - lifetime,
        )
        .values(last_seen_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def end_session(*, session: Session, session_id: uuid.UUID, reason: str = "logout") -> None:
    """Revoke a session (sign-out)."""
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
    )


def revoke_user_sessions(session: Session, user_id: int, reason: str) -> int:
    """End every live session of one user (password change, MFA reset, admin sign-out)."""
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def turn_off_own_totp(*, session: Session, user_id: int, password: str) -> bool:
    """A patient switches their optional second factor off again (password required).

    Staff cannot: for them two-step verification is mandatory (an admin resets it).
    """
    user = session.get(User, user_id)
    if user is None or user.kind != "patient" or not verify_password(password, user.password_hash):
        return False
    user.totp_secret_enc = None
    user.mfa_enrolled_at = None
    audit.record(
        session,
        None,
        "auth.mfa_disabled",
        object_type="user",
        object_id=user.id,
        username=user.username,
    )
    return True


def issue_recovery_codes(*, session: Session, user_id: int) -> list[str]:
    """Ten new one-time recovery codes (shown once); earlier unused codes stop working."""
    now = utcnow()
    session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        .values(used_at=now)
    )
    codes = new_recovery_codes()
    session.add_all(RecoveryCode(user_id=user_id, code_hash=hash_recovery_code(c)) for c in codes)
    session.flush()
    return codes


def use_recovery_code(*, session: Session, user_id: int, code: str) -> bool:
    """Accept an unused recovery code instead of TOTP, exactly once."""
    row = session.scalar(
        select(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == hash_recovery_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .with_for_update()
    )
    user = session.get(User, user_id)
    ok = row is not None
    if row is not None:
        row.used_at = utcnow()
    session.add(
        SignInAttempt(
            username=user.username if user else "",
            user_id=user_id,
            success=ok,
            stage="recovery",
            reason=None if ok else "signin.bad_code",
        )
    )
    audit.record(
        session,
        None,
        "auth.recovery_code",
        outcome="success" if ok else "denied",
        object_type="user",
        object_id=user_id,
        username=user.username if user else None,
    )
    if not ok and user is not None:
        _lock_if_needed(session, user, utcnow())
    return ok


def change_password(*, session: Session, user_id: int, current: str, new: str) -> list[str]:
    """Change one's own password; every session is revoked. Returns problems (keys)."""
    user = session.get(User, user_id)
    if user is None or not verify_password(current, user.password_hash):
        return ["password.current_wrong"]
    problems = password_problems(new, username=user.username)
    if problems:
        return problems
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    revoke_user_sessions(session, user.id, "password_change")
    audit.record(
        session,
        None,
        "auth.password_changed",
        object_type="user",
        object_id=user.id,
        username=user.username,
    )
    return []


def session_token(session_id: uuid.UUID, expires_at: dt.datetime) -> str:
    """Signed cookie value naming a server-side session (HS256 under the cookie key)."""
    key = get_settings().key_bytes("cookie_key")
    return jwt.encode({"sid": str(session_id), "exp": int(expires_at.timestamp())}, key, "HS256")


def resume_session(*, session: Session, token: str | None) -> tuple[uuid.UUID, Actor] | None:
    """The session a browser cookie names, if it is still alive on the server; else None.

    The cookie alone proves nothing: logout, password change, admin sign-out, lockdown,
    idle timeout and the absolute lifetime all end the server-side row it points to.
    """
    if not token:
        return None
    try:
        claims = jwt.decode(token, get_settings().key_bytes("cookie_key"), algorithms=["HS256"])
        session_id = uuid.UUID(str(claims["sid"]))
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
    row = session.get(AuthSession, session_id)
    if row is None or not touch_session(session=session, session_id=session_id):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    if user.kind == "staff" and row.mfa_passed_at is None:
        return None
    return session_id, build_actor(session, user)


def session_expiry(*, session: Session, session_id: uuid.UUID) -> dt.datetime:
    """When a session ends at the latest (its absolute lifetime)."""
    row = session.get(AuthSession, session_id)
    if row is None or row.cookie_expires_at is None:
        raise LookupError(session_id)
    return row.cookie_expires_at
