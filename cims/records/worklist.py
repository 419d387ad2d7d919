"""The nurse's worklist: who to check in, whose vitals are due, and the ward's patients."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Subquery, and_, func, select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.clock import age_on, day_bounds, to_local
from cims.org.models import Bed, Department, Ward
from cims.patients.models import Patient
from cims.records.models import BedAssignment, Encounter, Observation
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires


@dataclass(frozen=True)
class ClinicPatient:
    """An outpatient of the day in one of the nurse's departments."""

    appointment_id: int
    patient_id: int
    mrn: str
    name: str
    sex: str
    age: int | None
    scheduled_at: dt.datetime  # local time
    department_zh: str
    department_en: str
    doctor_name: str | None
    status: str  # booked or checked_in
    queue_number: int | None
    checked_in_at: dt.datetime | None  # local time


@dataclass(frozen=True)
class WardPatient:
    """An inpatient on one of the nurse's wards and when their vitals were last taken."""

    patient_id: int
    encounter_id: int
    mrn: str
    name: str
    sex: str
    age: int | None
    ward_zh: str
    ward_en: str
    bed: str
    last_vitals_at: dt.datetime | None  # local time


@dataclass(frozen=True)
class Worklist:
    """The three lists of a nurse's day."""

    day: dt.date
    to_check_in: list[ClinicPatient]
    awaiting_vitals: list[ClinicPatient]
    inpatients: list[WardPatient]


def _last_vitals() -> Subquery:
    """Per patient, the time of the latest recorded (not voided) vital sign."""
    return (
        select(Observation.patient_id, func.max(Observation.observed_at).label("at"))
        .where(Observation.category == "vital", Observation.voided.is_(False))
        .group_by(Observation.patient_id)
        .subquery()
    )


def _clinic(session: Session, actor: Actor, day: dt.date) -> list[tuple[ClinicPatient, bool]]:
    """The day's booked and checked-in appointments, each with 'vitals taken today'."""
    start, end = day_bounds(day)
    vitals_today = (
        select(Observation.id)
        .where(
            Observation.patient_id == Appointment.patient_id,
            Observation.category == "vital",
            Observation.voided.is_(False),
            Observation.observed_at >= start,
            Observation.observed_at < end,
        )
        .exists()
    )
    query = (
        select(Appointment, Patient, Department, User.display_name, vitals_today)
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(Department, Department.id == Appointment.department_id)
        .outerjoin(User, User.id == Appointment.doctor_id)
        .where(
            Appointment.scheduled_at >= start,
            Appointment.scheduled_at < end,
            Appointment.status.in_(("booked", "checked_in")),
            Appointment.department_id.in_(actor.department_ids or (-1,)),
        )
        .order_by(Appointment.queue_number.nulls_last(), Appointment.scheduled_at)
    )
    rows = []
    for appt, patient, dept, doctor, has_vitals in session.execute(query):
        row = ClinicPatient(
            appointment_id=appt.id,
            patient_id=patient.id,
            mrn=patient.mrn,
            name=patient.full_name,
            sex=patient.sex,
            age=age_on(patient.birth_date, day),
            scheduled_at=to_local(appt.scheduled_at) or appt.scheduled_at,
            department_zh=dept.name_zh,
            department_en=dept.name_en,
            doctor_name=doctor,
            status=appt.status,
            queue_number=appt.queue_number,
            checked_in_at=to_local(appt.checked_in_at),
        )
        rows.append((row, bool(has_vitals)))
    return rows


def _ward(session: Session, actor: Actor, day: dt.date) -> list[WardPatient]:
    last = _last_vitals()
    query = (
        select(Patient, Ward, Bed.code, BedAssignment.encounter_id, last.c.at)
        .join(BedAssignment, BedAssignment.patient_id == Patient.id)
        .join(Bed, Bed.id == BedAssignment.bed_id)
        .join(Ward, Ward.id == Bed.ward_id)
        .join(Encounter, Encounter.id == BedAssignment.encounter_id)
        .outerjoin(last, last.c.patient_id == Patient.id)
        .where(
            and_(BedAssignment.end_at.is_(None), BedAssignment.voided.is_(False)),
            Ward.department_id.in_(actor.department_ids or (-1,)),
        )
        .order_by(Ward.code, Bed.code)
    )
    return [
        WardPatient(
            patient_id=patient.id,
            encounter_id=encounter_id,
            mrn=patient.mrn,
            name=patient.full_name,
            sex=patient.sex,
            age=age_on(patient.birth_date, day),
            ward_zh=ward.name_zh,
            ward_en=ward.name_en,
            bed=bed,
            last_vitals_at=to_local(at),
        )
        for patient, ward, bed, encounter_id, at in session.execute(query)
    ]


@requires(Privilege.RECORD_VITALS)
def nurse_worklist(*, session: Session, actor: Actor, day: dt.date) -> Worklist:
    """Today's arrivals to check in, checked-in patients without vitals, and the ward."""
    clinic = _clinic(session, actor, day)
    worklist = Worklist(
        day=day,
        to_check_in=[row for row, _ in clinic if row.status == "booked"],
        awaiting_vitals=[
            row for row, has_vitals in clinic if row.status == "checked_in" and not has_vitals
        ],
        inpatients=_ward(session, actor, day),
    )
    audit.record(
        session,
        actor,
        "records.view_worklist",
        object_type="worklist",
        object_id=day.isoformat(),
        detail={
            "to_check_in": len(worklist.to_check_in),
            "awaiting_vitals": len(worklist.awaiting_vitals),
            "inpatients": len(worklist.inpatients),
        },
    )
    return worklist
