"""People and access: users, roles, privileges, sessions, MFA, audit and governance rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import INET, UUID
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Tracked, fk, one_of, pk

USER_KINDS = ("staff", "patient")


class Role(Base):
    """A role such as doctor or finance; privileges are granted to roles."""

    __tablename__ = "roles"

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(unique=True)
    name_zh: Mapped[str]
    name_en: Mapped[str]
    description: Mapped[str | None]


class Permission(Base):
    """One privilege (the ``Privilege`` enum mirrored as rows so admins can grant it)."""

    __tablename__ = "permissions"

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str | None]


class RolePermission(Base):
    """Grant of a privilege to a role."""

    __tablename__ = "role_permissions"

    role_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True
    )
    granted_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    granted_by_id: Mapped[int | None] = fk("users.id")


class User(Tracked, Base):
    """A unique account per person: staff, or a patient's portal account."""

    __tablename__ = "users"
    __table_args__ = (one_of("kind", USER_KINDS),)

    id: Mapped[int] = pk()
    username: Mapped[str] = mapped_column(unique=True)
    display_name: Mapped[str]
    email: Mapped[str | None]
    kind: Mapped[str] = mapped_column(default="staff")
    password_hash: Mapped[str]
    password_changed_at: Mapped[dt.datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None]
    locked_until: Mapped[dt.datetime | None]
    unlocked_at: Mapped[dt.datetime | None]  # failures before an admin unlock do not count
    totp_secret_enc: Mapped[bytes | None]
    # The newest TOTP time step accepted: a code is good once, never replayed.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    mfa_enrolled_at: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    preferred_language: Mapped[str | None]
    title: Mapped[str | None]  # e.g. 主任医师 for doctors
    patient_id: Mapped[int | None] = mapped_column(
        BigInteger,
        # use_alter: patients and users refer to each other (created_by / portal link).
        ForeignKey("patients.id", ondelete="RESTRICT", use_alter=True),
        unique=True,
    )


class UserRole(Base):
    """Membership of a user in a role."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    granted_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    granted_by_id: Mapped[int | None] = fk("users.id")


class UserDepartment(Base):
    """A staff member's department(s); drives the care relationship for clinicians."""

    __tablename__ = "user_departments"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    department_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True
    )
    is_primary: Mapped[bool] = mapped_column(default=True, server_default="true")


class RecoveryCode(Base):
    """A one-time MFA recovery code, stored only as a hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = pk()
    user_id: Mapped[int] = fk("users.id", nullable=False, index=True)
    code_hash: Mapped[str]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    used_at: Mapped[dt.datetime | None]


class SignInAttempt(Base):
    """Every sign-in attempt, counted in the database so lockout survives reloads."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_username_at", "username", "attempted_at"),)

    id: Mapped[int] = pk()
    username: Mapped[str]
    user_id: Mapped[int | None] = fk("users.id")
    attempted_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    success: Mapped[bool]
    stage: Mapped[str] = mapped_column(default="password")  # password | totp | recovery
    reason: Mapped[str | None]
    client_address: Mapped[str | None] = mapped_column(INET)


class AuthSession(Base):
    """Server-side sign-in session bound to the browser cookie; holds MFA state."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_active", "user_id", "revoked_at"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    user_id: Mapped[int] = fk("users.id", nullable=False)
    cookie_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    mfa_passed_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoke_reason: Mapped[str | None]
    client_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None]


class BreakGlassGrant(Base):
    """Emergency access to a patient outside the clinician's care, for review by admin."""

    __tablename__ = "break_glass_grants"
    __table_args__ = (Index("ix_break_glass_user_patient", "user_id", "patient_id"),)

    id: Mapped[int] = pk()
    user_id: Mapped[int] = fk("users.id", nullable=False)
    patient_id: Mapped[int] = fk("patients.id", nullable=False, index=True)
    reason: Mapped[str]
    granted_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime]
    reviewed_at: Mapped[dt.datetime | None]
    reviewed_by_id: Mapped[int | None] = fk("users.id")
    review_outcome: Mapped[str | None]  # justified | unjustified
    review_note: Mapped[str | None]


class AccessReview(Base):
    """A periodic review of who holds which access."""

    __tablename__ = "access_reviews"

    id: Mapped[int] = pk()
    started_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    started_by_id: Mapped[int | None] = fk("users.id")
    completed_at: Mapped[dt.datetime | None]
    note: Mapped[str | None]


class AccessReviewItem(Base):
    """The decision about one account within an access review."""

    __tablename__ = "access_review_items"
    __table_args__ = (
        UniqueConstraint("review_id", "user_id"),
        one_of("decision", ("pending", "certify", "revoke")),
    )

    id: Mapped[int] = pk()
    review_id: Mapped[int] = fk("access_reviews.id", nullable=False)
    user_id: Mapped[int] = fk("users.id", nullable=False)
    roles_snapshot: Mapped[list[Any]]
    last_login_at: Mapped[dt.datetime | None]
    mfa_enrolled: Mapped[bool]
    decision: Mapped[str] = mapped_column(default="pending")
    decided_by_id: Mapped[int | None] = fk("users.id")
    decided_at: Mapped[dt.datetime | None]
    note: Mapped[str | None]


class Incident(Tracked, Base):
    """A security incident; lockdown is recorded as one."""

    __tablename__ = "incidents"
    __table_args__ = (
        one_of("status", ("open", "contained", "closed")),
        one_of("severity", ("low", "medium", "high", "critical")),
    )

    id: Mapped[int] = pk()
    title: Mapped[str]
    severity: Mapped[str] = mapped_column(default="medium")
    status: Mapped[str] = mapped_column(default="open")
    lockdown: Mapped[bool] = mapped_column(default=False, server_default="false")
    opened_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    closed_at: Mapped[dt.datetime | None]
    summary: Mapped[str | None]


class IncidentEvent(Base):
    """One entry in an incident's timeline."""

    __tablename__ = "incident_events"

    id: Mapped[int] = pk()
    incident_id: Mapped[int] = fk("incidents.id", nullable=False, index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[int | None] = fk("users.id")
    kind: Mapped[str]
    detail: Mapped[str | None]


class SystemFlag(Base):
    """Cluster-wide switches (e.g. lockdown) shared by every app process."""

    __tablename__ = "system_flags"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_by_id: Mapped[int | None] = fk("users.id")


class DataKey(Base):
    """A data-encryption key, stored only wrapped by the master key (never in clear)."""

    __tablename__ = "data_keys"

    version: Mapped[int] = mapped_column(primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    retired_at: Mapped[dt.datetime | None]


class AuditEvent(Base):
    """Append-only audit row: who did what to which patient/object, and the outcome.

    Never holds sensitive values; sealing into the hash chain happens in ``audit_seals``.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_patient_time", "patient_id", "occurred_at"),
        Index("ix_audit_log_actor_time", "actor_id", "occurred_at"),
        Index("ix_audit_log_time", "occurred_at"),
        one_of("outcome", ("success", "denied", "failure")),
    )

    id: Mapped[int] = pk()
    occurred_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_username: Mapped[str | None]
    actor_role: Mapped[str | None]
    action: Mapped[str]
    outcome: Mapped[str] = mapped_column(default="success")
    patient_id: Mapped[int | None] = mapped_column(BigInteger)
    object_type: Mapped[str | None]
    object_id: Mapped[str | None]
    detail: Mapped[dict[str, Any] | None]
    client_address: Mapped[str | None]
    session_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class AuditSeal(Base):
    """Hash-chain link sealing one audit row: hash(prev_hash || canonical row)."""

    __tablename__ = "audit_seals"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    audit_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    row_hash: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class OneTimeCode(Base):
    """A sign-in code sent over a message channel (SMS, email); stored only as a hash."""

    __tablename__ = "one_time_codes"
    __table_args__ = (Index("ix_one_time_codes_user_time", "user_id", "created_at"),)

    id: Mapped[int] = pk()
    user_id: Mapped[int] = fk("users.id", nullable=False)
    channel: Mapped[str]
    code_hash: Mapped[str]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
