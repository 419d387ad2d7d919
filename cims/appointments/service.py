"""Appointment lists for the clinic and the front desk."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.clock import age_on, day_bounds, to_local
from cims.org.models import Department
from cims.patients.models import Patient
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires

DayQuery = Select[Appointment, Patient, Department, str]


@dataclass(frozen=True)
class DayAppointment:
    """One row of a day list: when, who, where, and how far along the visit is."""

    appointment_id: int
    scheduled_at: dt.datetime
    queue_number: int | None
    status: str
    patient_id: int
    mrn: str
    patient_name: str
    sex: str
    age: int | None
    department_zh: str
    department_en: str
    doctor_name: str | None
    checked_in_at: dt.datetime | None


def _day_query(
    day: dt.date,
) -> DayQuery:
    start, end = day_bounds(day)
    return (
        select(Appointment, Patient, Department, User.display_name)
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(Department, Department.id == Appointment.department_id)
        .outerjoin(User, User.id == Appointment.doctor_id)
        .where(Appointment.scheduled_at >= start, Appointment.scheduled_at < end)
        .order_by(Appointment.scheduled_at, Appointment.queue_number)
    )


def _rows(
    session: Session,
    query: DayQuery,
    day: dt.date,
) -> list[DayAppointment]:
    rows = []
    for appt, patient, dept, doctor in session.execute(query):
        rows.append(
            DayAppointment(
                appointment_id=appt.id,
                scheduled_at=to_local(appt.scheduled_at) or appt.scheduled_at,
                queue_number=appt.queue_number,
                status=appt.status,
                patient_id=patient.id,
                mrn=patient.mrn,
                patient_name=patient.full_name,
                sex=patient.sex,
                age=age_on(patient.birth_date, day),
                department_zh=dept.name_zh,
                department_en=dept.name_en,
                doctor_name=doctor,
                checked_in_at=to_local(appt.checked_in_at),
            )
        )
    return rows


@requires(Privilege.VIEW_CLINICAL)
def list_my_clinic(*, session: Session, actor: Actor, day: dt.date) -> list[DayAppointment]:
    """The signed-in doctor's patients booked on ``day`` (their own clinic only)."""
    query = _day_query(day).where(
        Appointment.doctor_id == actor.user_id, Appointment.status != "cancelled"
    )
    rows = _rows(session, query, day)
    audit.record(
        session,
        actor,
        "appointments.list_clinic",
        object_type="clinic_day",
        object_id=day.isoformat(),
        detail={"rows": len(rows)},
    )
    return rows


@requires(Privilege.CHECK_IN)
def list_front_desk_day(
    *, session: Session, actor: Actor, day: dt.date, department_id: int | None = None
) -> list[DayAppointment]:
    """Every appointment on ``day``, optionally for one department (front desk, nurses)."""
    query = _day_query(day)
    if department_id is not None:
        query = query.where(Appointment.department_id == department_id)
    rows = _rows(session, query, day)
    audit.record(
        session,
        actor,
        "appointments.list_day",
        object_type="appointment_day",
        object_id=day.isoformat(),
        detail={"rows": len(rows), "department_id": department_id},
    )
    return rows


def status_counts(rows: list[DayAppointment]) -> dict[str, int]:
    """How many appointments of a day list are in each status."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


@requires(Privilege.CHECK_IN)
def list_departments(*, session: Session, actor: Actor) -> list[Department]:
    """Active clinical departments with appointments (for filters)."""
    return list(
        session.execute(
            select(Department)
            .where(Department.active, Department.kind.in_(("clinical", "emergency")))
            .order_by(Department.code)
        ).scalars()
    )


class CheckInRefused(ValueError):
    """A check-in that cannot be done; ``problems`` are i18n keys (nothing was written)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@requires(Privilege.CHECK_IN)
def check_in_appointment(*, session: Session, actor: Actor, appointment_id: int) -> Appointment:
    """Check in today's booked appointment and give it the department's next queue number."""
    from sqlalchemy import func

    from cims.base import utcnow
    from cims.clock import local_today

    appointment = session.scalar(
        select(Appointment).where(Appointment.id == appointment_id).with_for_update()
    )
    if appointment is None:
        raise CheckInRefused(["checkin.not_found"])
    if appointment.status != "booked":
        raise CheckInRefused(["checkin.not_booked"])
    today = local_today()
    scheduled = to_local(appointment.scheduled_at)
    if scheduled is None or scheduled.date() != today:
        raise CheckInRefused(["checkin.not_today"])
    # Serialise check-ins of one department: the number is read and taken under this lock
    # (FOR NO KEY UPDATE, so rows merely referencing the department are not blocked).
    session.execute(
        select(Department.id)
        .where(Department.id == appointment.department_id)
        .with_for_update(key_share=True)
    )
    last = session.scalar(
        select(func.max(Appointment.queue_number)).where(
            Appointment.department_id == appointment.department_id,
            Appointment.queue_date == today,
        )
    )
    appointment.queue_date = today
    appointment.queue_number = (last or 0) + 1
    appointment.status = "checked_in"
    appointment.checked_in_at = utcnow()
    appointment.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "appointments.check_in",
        patient_id=appointment.patient_id,
        object_type="appointment",
        object_id=appointment.id,
        detail={"queue_number": appointment.queue_number},
    )
    return appointment
