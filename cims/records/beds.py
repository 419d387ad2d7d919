"""Inpatient beds: admit to a bed, transfer, discharge, and the bed board of a ward.

One live occupant per bed is enforced twice: the bed row is locked (``SELECT ... FOR
UPDATE``) while the occupancy is checked, and the partial unique index
``uq_bed_assignments_bed_occupied`` catches any race that slips past; both end in the
same translated refusal and nothing written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.clock import age_on, local_today, to_local
from cims.org.models import Bed, Department, Ward
from cims.patients.models import Patient
from cims.records.models import DISPOSITIONS, BedAssignment, Encounter
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires

# Dispositions that end an admission ("admitted" ends an emergency visit, not a stay).
DISCHARGE_DISPOSITIONS: Final = tuple(d for d in DISPOSITIONS if d != "admitted")
_MAX_COMPLAINT: Final = 500
# A clock a few minutes fast on a ward PC is not "in the future".
_CLOCK_SLACK: Final = dt.timedelta(minutes=5)


class BedRefused(ValueError):
    """An admission, transfer or discharge that cannot be done; ``problems`` are i18n keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class WardSummary:
    """A ward for the picker, with its occupancy now."""

    ward_id: int
    code: str
    name_zh: str
    name_en: str
    department_id: int
    beds: int
    occupied: int
    mine: bool  # a ward of one of the actor's departments


@dataclass(frozen=True)
class Occupant:
    """Who is in a bed: enough to recognise the patient at the bedside."""

    patient_id: int
    encounter_id: int
    name: str
    mrn: str
    sex: str
    age: int | None
    admitted_at: dt.datetime  # local time
    days_in: int
    attending: str | None


@dataclass(frozen=True)
class BedTile:
    """One bed of the board: ``free``, ``occupied`` or ``closed``."""

    bed_id: int
    code: str
    status: str
    occupant: Occupant | None


@dataclass(frozen=True)
class BedBoard:
    """A ward's beds in code order."""

    ward_id: int
    code: str
    name_zh: str
    name_en: str
    department_id: int
    beds: list[BedTile]


def _live_assignment(session: Session, **where: int) -> BedAssignment | None:
    """The live (not ended, not voided) assignment of a bed or an encounter."""
    query = select(BedAssignment).where(
        BedAssignment.end_at.is_(None), BedAssignment.voided.is_(False)
    )
    for column, value in where.items():
        query = query.where(getattr(BedAssignment, column) == value)
    return session.scalar(query)


def _lock_free_bed(session: Session, bed_id: int) -> Bed:
    """The bed, row-locked, if it is open and empty; otherwise a refusal."""
    bed = session.scalar(select(Bed).where(Bed.id == bed_id).with_for_update())
    if bed is None:
        raise BedRefused(["beds.bed_not_found"])
    ward = session.get(Ward, bed.ward_id)
    if not bed.active or ward is None or not ward.active:
        raise BedRefused(["beds.bed_closed"])
    if _live_assignment(session, bed_id=bed.id) is not None:
        raise BedRefused(["beds.bed_occupied"])
    return bed


def _open_admission(session: Session, patient_id: int) -> Encounter | None:
    return session.scalar(
        select(Encounter).where(
            Encounter.patient_id == patient_id,
            Encounter.encounter_type == "inpatient",
            Encounter.status == "open",
            Encounter.voided.is_(False),
        )
    )


def _admission_or_raise(session: Session, encounter_id: int) -> Encounter:
    """The open inpatient encounter, row-locked, or a refusal."""
    encounter = session.scalar(
        select(Encounter).where(Encounter.id == encounter_id).with_for_update()
    )
    if (
        encounter is None
        or encounter.voided
        or encounter.encounter_type != "inpatient"
        or encounter.status != "open"
    ):
        raise BedRefused(["beds.not_admitted"])
    return encounter


def _check_admission(
    session: Session,
    patient: Patient | None,
    department_id: int,
    attending_id: int | None,
    chief_complaint: str | None,
) -> list[str]:
    problems = []
    if patient is None or patient.voided or patient.merged_into_id is not None:
        problems.append("beds.patient_inactive")
    elif patient.death_date is not None:
        problems.append("beds.patient_deceased")
    department = session.get(Department, department_id)
    if department is None or not department.active:
        problems.append("beds.department_invalid")
    if attending_id is not None:
        doctor = session.get(User, attending_id)
        if doctor is None or not doctor.is_active:
            problems.append("beds.attending_invalid")
    if chief_complaint is not None and len(chief_complaint) > _MAX_COMPLAINT:
        problems.append("beds.complaint_too_long")
    return problems


def _source_encounter(
    session: Session, patient_id: int, from_encounter_id: int | None
) -> Encounter | None:
    """The emergency/outpatient visit the admission comes from (it ends as 'admitted')."""
    if from_encounter_id is None:
        return None
    source = session.get(Encounter, from_encounter_id)
    if (
        source is None
        or source.voided
        or source.patient_id != patient_id
        or source.encounter_type == "inpatient"
    ):
        raise BedRefused(["beds.source_encounter_invalid"])
    return source


def _occupied_or(race: IntegrityError) -> Exception:
    """A lost race for a bed is the same refusal as a bed seen occupied."""
    if "uq_bed_assignments_bed_occupied" in str(race.orig):
        return BedRefused(["beds.bed_occupied"])
    return race


@requires(Privilege.MANAGE_BEDS)
def admit_patient(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    department_id: int,
    bed_id: int,
    attending_id: int | None = None,
    chief_complaint: str | None = None,
    from_encounter_id: int | None = None,
) -> Encounter:
    """Open an inpatient encounter and put the patient in a free bed."""
    patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update())
    complaint = (chief_complaint or "").strip() or None
    problems = _check_admission(session, patient, department_id, attending_id, complaint)
    if problems:
        raise BedRefused(problems)
    bed = _lock_free_bed(session, bed_id)
    ward = session.get(Ward, bed.ward_id)
    assert ward is not None  # _lock_free_bed checked it
    # Admitting into a ward of one's own department is itself the care relationship.
    if ward.department_id not in actor.department_ids:
        clinical_access(session, actor, patient_id)
    if _open_admission(session, patient_id) is not None:
        raise BedRefused(["beds.already_admitted"])
    source = _source_encounter(session, patient_id, from_encounter_id)
    now = utcnow()
    encounter = Encounter(
        patient_id=patient_id,
        encounter_type="inpatient",
        department_id=department_id,
        attending_id=attending_id,
        started_at=now,
        chief_complaint=complaint,
        status="open",
        created_by_id=actor.user_id,
    )
    savepoint = session.begin_nested()
    try:
        session.add(encounter)
        session.flush()
        session.add(
            BedAssignment(
                encounter_id=encounter.id,
                patient_id=patient_id,
                bed_id=bed.id,
                start_at=now,
                reason="admit",
                created_by_id=actor.user_id,
            )
        )
        session.flush()
    except IntegrityError as race:
        savepoint.rollback()
        raise _occupied_or(race) from race
    savepoint.commit()
    if source is not None and source.status == "open":
        source.status, source.ended_at, source.disposition = "closed", now, "admitted"
        source.updated_by_id = actor.user_id
    audit.record(
        session,
        actor,
        "records.admit",
        patient_id=patient_id,
        object_type="encounter",
        object_id=encounter.id,
        detail={"ward_id": ward.id, "bed_id": bed.id, "from_encounter": source is not None},
    )
    return encounter


@requires(Privilege.MANAGE_BEDS)
def transfer_bed(
    *, session: Session, actor: Actor, encounter_id: int, bed_id: int
) -> BedAssignment:
    """Move an admitted patient to another free bed (same or another ward)."""
    encounter = _admission_or_raise(session, encounter_id)
    clinical_access(session, actor, encounter.patient_id)
    current = _live_assignment(session, encounter_id=encounter.id)
    if current is not None and current.bed_id == bed_id:
        raise BedRefused(["beds.same_bed"])
    bed = _lock_free_bed(session, bed_id)
    now = utcnow()
    moved = BedAssignment(
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        bed_id=bed.id,
        start_at=now,
        reason="transfer",
        created_by_id=actor.user_id,
    )
    savepoint = session.begin_nested()
    try:
        if current is not None:
            current.end_at = now
            current.updated_by_id = actor.user_id
            session.flush()  # the old bed is free before the new one is taken
        session.add(moved)
        session.flush()
    except IntegrityError as race:
        savepoint.rollback()
        raise _occupied_or(race) from race
    savepoint.commit()
    audit.record(
        session,
        actor,
        "records.transfer_bed",
        patient_id=encounter.patient_id,
        object_type="encounter",
        object_id=encounter.id,
        detail={"from_bed_id": current.bed_id if current else None, "to_bed_id": bed.id},
    )
    return moved


@requires(Privilege.MANAGE_BEDS)
def discharge_patient(
    *,
    session: Session,
    actor: Actor,
    encounter_id: int,
    disposition: str,
    ended_at: dt.datetime | None = None,
) -> Encounter:
    """Close an admission with a disposition and free its bed."""
    encounter = _admission_or_raise(session, encounter_id)
    clinical_access(session, actor, encounter.patient_id)
    now = utcnow()
    end = ended_at or now
    problems = []
    if disposition not in DISCHARGE_DISPOSITIONS:
        problems.append("beds.disposition_invalid")
    if end.tzinfo is None or end > now + _CLOCK_SLACK or end < encounter.started_at:
        problems.append("beds.discharge_time_invalid")
    if problems:
        raise BedRefused(problems)
    current = _live_assignment(session, encounter_id=encounter.id)
    if current is not None:
        current.end_at = max(end, current.start_at)
        current.updated_by_id = actor.user_id
    encounter.ended_at = end
    encounter.disposition = disposition
    encounter.status = "closed"
    encounter.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "records.discharge",
        patient_id=encounter.patient_id,
        object_type="encounter",
        object_id=encounter.id,
        detail={"disposition": disposition},
    )
    return encounter


@requires(Privilege.MANAGE_BEDS)
def list_wards(*, session: Session, actor: Actor) -> list[WardSummary]:
    """Open wards with their occupancy, the actor's own departments' wards first."""
    beds = (
        select(Bed.ward_id, func.count().label("beds"))
        .where(Bed.active)
        .group_by(Bed.ward_id)
        .subquery()
    )
    occupied = (
        select(Bed.ward_id, func.count().label("occupied"))
        .join(BedAssignment, BedAssignment.bed_id == Bed.id)
        .where(BedAssignment.end_at.is_(None), BedAssignment.voided.is_(False))
        .group_by(Bed.ward_id)
        .subquery()
    )
    rows = session.execute(
        select(Ward, beds.c.beds, occupied.c.occupied)
        .outerjoin(beds, beds.c.ward_id == Ward.id)
        .outerjoin(occupied, occupied.c.ward_id == Ward.id)
        .where(Ward.active)
        .order_by(Ward.code)
    ).all()
    wards = [
        WardSummary(
            ward_id=ward.id,
            code=ward.code,
            name_zh=ward.name_zh,
            name_en=ward.name_en,
            department_id=ward.department_id,
            beds=n_beds or 0,
            occupied=n_occupied or 0,
            mine=ward.department_id in actor.department_ids,
        )
        for ward, n_beds, n_occupied in rows
    ]
    wards.sort(key=lambda w: not w.mine)
    return wards


@requires(Privilege.MANAGE_BEDS)
def bed_board(
    *, session: Session, actor: Actor, ward_id: int, today: dt.date | None = None
) -> BedBoard:
    """Every bed of a ward: free, closed, or who is in it since when."""
    ward = session.get(Ward, ward_id)
    if ward is None:
        raise LookupError(ward_id)
    day = today or local_today()
    rows = session.execute(
        select(Bed, BedAssignment, Encounter, Patient, User.display_name)
        .outerjoin(
            BedAssignment,
            (BedAssignment.bed_id == Bed.id)
            & BedAssignment.end_at.is_(None)
            & BedAssignment.voided.is_(False),
        )
        .outerjoin(Encounter, Encounter.id == BedAssignment.encounter_id)
        .outerjoin(Patient, Patient.id == BedAssignment.patient_id)
        .outerjoin(User, User.id == Encounter.attending_id)
        .where(Bed.ward_id == ward.id)
        .order_by(Bed.code)
    ).all()
    tiles = []
    for bed, assignment, encounter, patient, attending in rows:
        occupant = None
        if assignment is not None and patient is not None and encounter is not None:
            admitted = to_local(encounter.started_at) or encounter.started_at
            occupant = Occupant(
                patient_id=patient.id,
                encounter_id=encounter.id,
                name=patient.full_name,
                mrn=patient.mrn,
                sex=patient.sex,
                age=age_on(patient.birth_date, day),
                admitted_at=admitted,
                days_in=max((day - admitted.date()).days, 0),
                attending=attending,
            )
        status = "occupied" if occupant else ("free" if bed.active else "closed")
        tiles.append(BedTile(bed_id=bed.id, code=bed.code, status=status, occupant=occupant))
    audit.record(
        session,
        actor,
        "records.view_bed_board",
        object_type="ward",
        object_id=ward.id,
        detail={"beds": len(tiles), "occupied": sum(t.occupant is not None for t in tiles)},
    )
    return BedBoard(
        ward_id=ward.id,
        code=ward.code,
        name_zh=ward.name_zh,
        name_en=ward.name_en,
        department_id=ward.department_id,
        beds=tiles,
    )
