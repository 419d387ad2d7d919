"""Reference data every installation needs: roles, privileges and the default grants."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cims.security.models import Permission, Role, RolePermission
from cims.security.rbac import ROLE_DEFAULTS, ROLES, Privilege


def ensure_roles_and_privileges(session: Session) -> None:
    """Insert missing roles, privileges and default grants; never removes admin edits."""
    fresh_privileges: set[str] = set()
    for privilege in Privilege:
        result = session.execute(
            insert(Permission)
            .values(code=privilege.value)
            .on_conflict_do_nothing()
            .returning(Permission.code)
        )
        fresh_privileges.update(result.scalars())
    fresh_roles: set[str] = set()
    for code, (name_zh, name_en) in ROLES.items():
        result = session.execute(
            insert(Role)
            .values(code=code, name_zh=name_zh, name_en=name_en)
            .on_conflict_do_nothing()
            .returning(Role.code)
        )
        fresh_roles.update(result.scalars())
    role_ids = dict(session.execute(select(Role.code, Role.id)).all())
    permission_ids = dict(session.execute(select(Permission.code, Permission.id)).all())
    for code in ROLES:
        # Default grants only for roles or privileges created now: an admin's edits stand.
        for privilege in ROLE_DEFAULTS[code]:
            if code not in fresh_roles and privilege.value not in fresh_privileges:
                continue
            session.execute(
                insert(RolePermission)
                .values(role_id=role_ids[code], permission_id=permission_ids[privilege.value])
                .on_conflict_do_nothing()
            )
    session.flush()
