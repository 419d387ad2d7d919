"""Administration views of accounts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.security import audit
from cims.security.models import RecoveryCode, Role, User, UserRole
from cims.security.rbac import Actor, Privilege, requires
from cims.security.signin import revoke_user_sessions
from cims.text_limits import MAX_REASON, TOO_LONG_KEY, too_long


@dataclass(frozen=True)
class AccountRow:
    """An account as an administrator reviews it."""

    user_id: int
    username: str
    display_name: str
    kind: str
    roles: tuple[str, ...]
    mfa_enrolled: bool
    is_active: bool
    locked: bool
    last_login_at: dt.datetime | None


@requires(Privilege.MANAGE_USERS)
def list_accounts(*, session: Session, actor: Actor, now: dt.datetime) -> list[AccountRow]:
    """Every account with its roles, MFA state and last sign-in."""
    roles = func.array_remove(func.array_agg(Role.code), None)
    query = (
        select(User, roles)
        .outerjoin(UserRole, UserRole.user_id == User.id)
        .outerjoin(Role, Role.id == UserRole.role_id)
        .group_by(User.id)
        .order_by(User.kind.desc(), User.username)
    )
    rows = [
        AccountRow(
            user_id=user.id,
            username=user.username,
            display_name=user.display_name,
            kind=user.kind,
            roles=tuple(sorted(codes or [])),
            mfa_enrolled=user.mfa_enrolled_at is not None,
            is_active=user.is_active,
            locked=user.locked_until is not None and user.locked_until > now,
            last_login_at=user.last_login_at,
        )
        for user, codes in session.execute(query)
    ]
    audit.record(session, actor, "admin.list_accounts", object_type="users")
    return rows


def _target(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    return user


@requires(Privilege.MANAGE_USERS)
def unlock_account(*, session: Session, actor: Actor, user_id: int) -> None:
    """Lift a lockout now; earlier failures no longer count towards the next one."""
    user = _target(session, user_id)
    user.locked_until = None
    user.unlocked_at = utcnow()
    audit.record(session, actor, "admin.unlock", object_type="user", object_id=user.id)


@requires(Privilege.MANAGE_USERS)
def reset_mfa(*, session: Session, actor: Actor, user_id: int) -> None:
    """Forget a user's authenticator and recovery codes; they enrol again at next sign-in."""
    user = _target(session, user_id)
    user.totp_secret_enc = None
    user.mfa_enrolled_at = None
    session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    revoke_user_sessions(session, user.id, "mfa_reset")
    audit.record(session, actor, "admin.mfa_reset", object_type="user", object_id=user.id)


@requires(Privilege.MANAGE_USERS)
def sign_out_everywhere(*, session: Session, actor: Actor, user_id: int) -> int:
    """Revoke every live session of a user; returns how many were ended."""
    user = _target(session, user_id)
    ended = revoke_user_sessions(session, user.id, "admin_sign_out")
    audit.record(
        session,
        actor,
        "admin.sign_out_everywhere",
        object_type="user",
        object_id=user.id,
        detail={"sessions": ended},
    )
    return ended


@requires(Privilege.MANAGE_USERS)
def set_account_active(
    *, session: Session, actor: Actor, user_id: int, active: bool, reason: str
) -> None:
    """Disable (with a reason) or re-enable an account; disabling ends its sessions."""
    user = _target(session, user_id)
    if user.id == actor.user_id and not active:
        raise ValueError("admin.cannot_disable_self")
    if not active and not reason.strip():
        raise ValueError("admin.reason_required")
    if not active and too_long(reason, MAX_REASON):
        raise ValueError(TOO_LONG_KEY)
    user.is_active = active
    user.disabled_at = None if active else utcnow()
    user.disabled_reason = None if active else reason.strip()
    if not active:
        revoke_user_sessions(session, user.id, "disabled")
    audit.record(
        session,
        actor,
        "admin.enable" if active else "admin.disable",
        object_type="user",
        object_id=user.id,
    )
