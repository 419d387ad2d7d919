"""Creating accounts and resolving a signed-in user into an Actor."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.security.crypto import FieldCipher
from cims.security.models import Permission, Role, RolePermission, User, UserDepartment, UserRole
from cims.security.passwords import hash_password, password_problems
from cims.security.rbac import Actor, Privilege


class InvalidAccount(ValueError):
    """Account data rejected; ``problems`` holds translation keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


def create_account(
    *,
    session: Session,
    username: str,
    display_name: str,
    password: str,
    roles: Iterable[str],
    department_ids: Iterable[int] = (),
    totp_secret: str | None = None,
    cipher: FieldCipher | None = None,
    patient_id: int | None = None,
    password_hash: str | None = None,
    title: str | None = None,
) -> User:
    """Create a user with roles and departments; optionally pre-enrolled for TOTP."""
    username = username.strip().lower()
    problems = [] if password_hash else password_problems(password, username=username)
    if not username or not username.replace("_", "").replace(".", "").isalnum():
        problems.append("account.bad_username")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        problems.append("account.username_taken")
    role_rows = session.execute(select(Role).where(Role.code.in_(list(roles)))).scalars().all()
    if not role_rows:
        problems.append("account.no_role")
    if problems:
        raise InvalidAccount(problems)
    user = User(
        username=username,
        display_name=display_name,
        kind="patient" if patient_id else "staff",
        password_hash=password_hash or hash_password(password),
        password_changed_at=utcnow(),
        patient_id=patient_id,
        title=title,
    )
    session.add(user)
    session.flush()
    if totp_secret is not None:
        if cipher is None:
            raise ValueError("a cipher is needed to store a TOTP secret")
        user.totp_secret_enc = cipher.encrypt(
            totp_secret, table="users", column="totp_secret", row_id=user.id
        )
        user.mfa_enrolled_at = utcnow()
    session.add_all(UserRole(user_id=user.id, role_id=role.id) for role in role_rows)
    session.add_all(
        UserDepartment(user_id=user.id, department_id=dep, is_primary=i == 0)
        for i, dep in enumerate(department_ids)
    )
    session.flush()
    return user


def role_order(code: str) -> int:
    """Stable order so the most specific clinical role is a user's primary role."""
    order = ["doctor", "nurse", "registrar", "finance", "manager", "data_staff", "admin", "patient"]
    return order.index(code) if code in order else len(order)


def build_actor(session: Session, user: User) -> Actor:
    """Load a user's roles, effective privileges and departments into an Actor."""
    roles = sorted(
        session.execute(
            select(Role.code)
            .join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user.id)
        ).scalars(),
        key=role_order,
    )
    codes = session.execute(
        select(Permission.code)
        .join(RolePermission, RolePermission.permission_id == Permission.id)
        .join(UserRole, UserRole.role_id == RolePermission.role_id)
        .where(UserRole.user_id == user.id)
    ).scalars()
    known = {p.value for p in Privilege}
    departments = session.execute(
        select(UserDepartment.department_id)
        .where(UserDepartment.user_id == user.id)
        .order_by(UserDepartment.is_primary.desc())
    ).scalars()
    return Actor(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=tuple(roles),
        privileges=frozenset(Privilege(c) for c in codes if c in known),
        patient_id=user.patient_id,
        department_ids=tuple(departments),
    )
