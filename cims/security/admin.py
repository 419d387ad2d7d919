"""Administration views of accounts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cims.security import audit
from cims.security.models import Role, User, UserRole
from cims.security.rbac import Actor, Privilege, requires


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
