"""The role → privilege matrix, stored in the database and edited by admins (audited)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cims.security import audit
from cims.security.models import Permission, Role, RolePermission
from cims.security.rbac import Actor, Privilege, requires


@requires(Privilege.MANAGE_ROLES)
def privilege_matrix(*, session: Session, actor: Actor) -> dict[str, set[str]]:
    """Each role code with the privilege codes granted to it."""
    matrix: dict[str, set[str]] = {
        code: set() for code in session.scalars(select(Role.code).order_by(Role.id))
    }
    for role, privilege in session.execute(
        select(Role.code, Permission.code)
        .join(RolePermission, RolePermission.role_id == Role.id)
        .join(Permission, Permission.id == RolePermission.permission_id)
    ):
        matrix[role].add(privilege)
    audit.record(session, actor, "roles.view_matrix", object_type="roles")
    return matrix


def _ids(session: Session, role: str, privilege: Privilege) -> tuple[int, int]:
    role_id = session.scalar(select(Role.id).where(Role.code == role))
    permission_id = session.scalar(select(Permission.id).where(Permission.code == privilege.value))
    if role_id is None or permission_id is None:
        raise LookupError(f"{role}/{privilege}")
    return role_id, permission_id


@requires(Privilege.MANAGE_ROLES)
def set_grant(
    *, session: Session, actor: Actor, role: str, privilege: Privilege, granted: bool
) -> bool:
    """Grant or revoke one privilege of one role; returns whether anything changed."""
    if role == "admin" and privilege is Privilege.MANAGE_ROLES and not granted:
        # Someone must always be able to repair the matrix.
        raise ValueError("roles.keep_admin")
    role_id, permission_id = _ids(session, role, privilege)
    if granted:
        changed = (
            session.execute(
                insert(RolePermission)
                .values(role_id=role_id, permission_id=permission_id, granted_by_id=actor.user_id)
                .on_conflict_do_nothing()
                .returning(RolePermission.role_id)
            ).first()
            is not None
        )
    else:
        changed = bool(
            session.execute(
                delete(RolePermission).where(
                    RolePermission.role_id == role_id,
                    RolePermission.permission_id == permission_id,
                )
            ).rowcount  # type: ignore[attr-defined]
        )
    if changed:
        audit.record(
            session,
            actor,
            "roles.grant" if granted else "roles.revoke",
            object_type="role",
            object_id=role,
            detail={"privilege": privilege.value},
        )
    return changed
