"""Who may read a patient's clinical detail: the care relationship and break-glass.

A doctor or nurse reads clinical detail only for patients in their care — an encounter or
appointment with them or their department within the care window, or a current admission
to one of their department's wards — or through a time-limited, reasoned break-glass grant
that lands in the admin's review queue. A patient reads only their own record.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.config import get_settings
from cims.org.models import Bed, Ward
from cims.records.models import BedAssignment, Encounter
from cims.security import audit
from cims.security.models import BreakGlassGrant, User
from cims.security.rbac import AccessDenied, Actor, Privilege, requires
from cims.text_limits import MAX_REASON, TOO_LONG_KEY, too_long

Basis = Literal["care", "break_glass", "self"]


def in_care(session: Session, actor: Actor, patient_id: int, now: dt.datetime) -> bool:
    """Whether the patient is in the actor's care (see module docstring)."""
    since = now - dt.timedelta(days=get_settings().care_window_days)
    departments = actor.department_ids or (-1,)
    encounter = exists().where(
        Encounter.patient_id == patient_id,
        Encounter.voided.is_(False),
        or_(Encounter.attending_id == actor.user_id, Encounter.department_id.in_(departments)),
        or_(Encounter.ended_at.is_(None), Encounter.ended_at >= since),
    )
    appointment = exists().where(
        Appointment.patient_id == patient_id,
        or_(Appointment.doctor_id == actor.user_id, Appointment.department_id.in_(departments)),
        Appointment.scheduled_at >= since,
        Appointment.status != "cancelled",
    )
    admitted = (
        exists()
        .where(
            BedAssignment.patient_id == patient_id,
            BedAssignment.end_at.is_(None),
            BedAssignment.voided.is_(False),
            Ward.department_id.in_(departments),
        )
        .where(Bed.id == BedAssignment.bed_id, Ward.id == Bed.ward_id)
    )
    return bool(session.scalar(select(or_(encounter, appointment, admitted))))


def active_grant(
    session: Session, actor: Actor, patient_id: int, now: dt.datetime
) -> BreakGlassGrant | None:
    """The actor's unexpired break-glass grant for this patient, if any."""
    return session.scalar(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.user_id == actor.user_id,
            BreakGlassGrant.patient_id == patient_id,
            BreakGlassGrant.expires_at > now,
        )
        .order_by(BreakGlassGrant.expires_at.desc())
        .limit(1)
    )


def clinical_access(session: Session, actor: Actor, patient_id: int) -> Basis:
    """The basis on which the actor may read this patient's clinical detail, or AccessDenied.

    Refusals are audited in their own transaction so they survive the caller's rollback.
    """
    if actor.patient_id is not None and actor.can(Privilege.PORTAL_SELF):
        if actor.patient_id == patient_id:
            return "self"
    elif actor.can(Privilege.VIEW_CLINICAL):
        now = utcnow()
        if in_care(session, actor, patient_id, now):
            return "care"
        if active_grant(session, actor, patient_id, now) is not None:
            return "break_glass"
    audit.record_separately(
        session.get_bind(),
        actor,
        "clinical.access",
        patient_id=patient_id,
        outcome="denied",
        object_type="patient",
        object_id=patient_id,
    )
    raise AccessDenied(Privilege.VIEW_CLINICAL, actor)


@requires(Privilege.BREAK_GLASS)
def open_break_glass(
    *, session: Session, actor: Actor, patient_id: int, reason: str
) -> BreakGlassGrant:
    """Emergency access outside the care relationship: reasoned, time-limited, reviewed."""
    if len(reason.strip()) < 10:
        raise ValueError("break_glass.reason_too_short")
    if too_long(reason, MAX_REASON):
        raise ValueError(TOO_LONG_KEY)
    now = utcnow()
    grant = BreakGlassGrant(
        user_id=actor.user_id,
        patient_id=patient_id,
        reason=reason.strip(),
        granted_at=now,
        expires_at=now + dt.timedelta(minutes=get_settings().break_glass_minutes),
    )
    session.add(grant)
    session.flush()
    audit.record(
        session,
        actor,
        "clinical.break_glass",
        patient_id=patient_id,
        object_type="break_glass",
        object_id=grant.id,
        detail={"reason_length": len(reason)},
    )
    return grant


@requires(Privilege.VIEW_AUDIT)
def list_break_glass_for_review(
    *, session: Session, actor: Actor
) -> list[tuple[BreakGlassGrant, str]]:
    """Break-glass grants not yet reviewed, oldest first, with who opened them."""
    rows = session.execute(
        select(BreakGlassGrant, User.username)
        .join(User, User.id == BreakGlassGrant.user_id)
        .where(BreakGlassGrant.reviewed_at.is_(None))
        .order_by(BreakGlassGrant.granted_at)
    ).all()
    audit.record(session, actor, "audit.list_break_glass", object_type="break_glass")
    return [(grant, username) for grant, username in rows]


@requires(Privilege.VIEW_AUDIT)
def review_break_glass(
    *, session: Session, actor: Actor, grant_id: int, justified: bool, note: str = ""
) -> None:
    """Record the admin's verdict on one break-glass use."""
    grant = session.get(BreakGlassGrant, grant_id)
    if grant is None:
        raise LookupError(grant_id)
    grant.reviewed_at = utcnow()
    grant.reviewed_by_id = actor.user_id
    grant.review_outcome = "justified" if justified else "unjustified"
    grant.review_note = note.strip() or None
    audit.record(
        session,
        actor,
        "audit.review_break_glass",
        patient_id=grant.patient_id,
        object_type="break_glass",
        object_id=grant.id,
        detail={"outcome": grant.review_outcome},
    )
