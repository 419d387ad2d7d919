"""Encounters and what a doctor charts on them: diagnoses, allergies, the problem list.

Who may chart: every function needs the privilege on its decorator and the care
relationship (``cims.security.care.clinical_access``: care or break-glass). Opening a NEW
encounter is how a patient enters a doctor's care, so ``create_encounter`` also accepts a
patient without prior care when the encounter is in one of the doctor's own departments
(a walk-in to their clinic) or fulfils an appointment booked with the doctor or their
department; anyone else needs an existing care relationship or a break-glass grant.
Closed encounters take no new diagnoses, prescriptions or orders (late lab results still
arrive: ``orders.record_result``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.clock import local_today
from cims.org.models import Department
from cims.patients.models import Patient
from cims.records.codes import find_code
from cims.records.models import (
    DISPOSITIONS,
    ENCOUNTER_TYPES,
    Allergy,
    Diagnosis,
    Encounter,
    FollowUp,
    Observation,
    Order,
    Prescription,
    Problem,
    TreatmentPlan,
)
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.rbac import Actor, Privilege, requires
from cims.text_limits import MAX_CLINICAL_REASON, TOO_LONG_KEY, too_long

SEVERITIES: Final = ("mild", "moderate", "severe", "unknown")
MIN_REASON: Final = 3
MAX_TEXT: Final = 500


class InvalidRecord(ValueError):
    """Charting input that cannot be accepted; ``problems`` are i18n keys. Nothing is written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


def refuse_if(problems: list[str]) -> None:
    if problems:
        raise InvalidRecord(problems)


def clean_reason(reason: str) -> str:
    """A void/stop reason, stripped; too short or too long is refused."""
    cleaned = " ".join(reason.split())
    refuse_if(["records.reason_required"] if len(cleaned) < MIN_REASON else [])
    refuse_if([TOO_LONG_KEY] if too_long(cleaned, MAX_CLINICAL_REASON) else [])
    return cleaned


def _live_patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided or patient.merged_into_id is not None:
        raise InvalidRecord(["records.patient_unavailable"])
    return patient


def encounter_in_care(session: Session, actor: Actor, encounter_id: int) -> Encounter:
    """The (non-voided) encounter, once the actor passes the care check; LookupError if none."""
    encounter = session.get(Encounter, encounter_id)
    if encounter is None or encounter.voided:
        raise LookupError(encounter_id)
    clinical_access(session, actor, encounter.patient_id)
    return encounter


def open_encounter_in_care(session: Session, actor: Actor, encounter_id: int) -> Encounter:
    """As ``encounter_in_care``, and the encounter must still be open."""
    encounter = encounter_in_care(session, actor, encounter_id)
    refuse_if(["records.encounter_closed"] if encounter.status != "open" else [])
    return encounter


def _may_open(
    session: Session, actor: Actor, patient_id: int, department_id: int, appt: Appointment | None
) -> None:
    """The care check for a new encounter (see the module docstring)."""
    if department_id in actor.department_ids:
        return
    if appt is not None and (
        appt.doctor_id == actor.user_id or appt.department_id in actor.department_ids
    ):
        return
    clinical_access(session, actor, patient_id)


@requires(Privilege.WRITE_CLINICAL)
def create_encounter(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    encounter_type: str,
    department_id: int,
    chief_complaint: str,
    appointment_id: int | None = None,
) -> Encounter:
    """Open an encounter attended by the actor; a given appointment is marked seen."""
    _live_patient(session, patient_id)
    complaint = " ".join(chief_complaint.split())
    problems = []
    if encounter_type not in ENCOUNTER_TYPES:
        problems.append("records.bad_encounter_type")
    department = session.get(Department, department_id)
    if department is None or not department.active:
        problems.append("records.bad_department")
    if not complaint:
        problems.append("records.complaint_required")
    elif len(complaint) > MAX_TEXT:
        problems.append("records.text_too_long")
    appt = session.get(Appointment, appointment_id) if appointment_id is not None else None
    if appointment_id is not None and (appt is None or appt.patient_id != patient_id):
        problems.append("records.bad_appointment")
    elif appt is not None and appt.status not in ("booked", "checked_in"):
        problems.append("records.appointment_not_open")
    refuse_if(problems)
    _may_open(session, actor, patient_id, department_id, appt)
    now = utcnow()
    encounter = Encounter(
        patient_id=patient_id,
        encounter_type=encounter_type,
        department_id=department_id,
        attending_id=actor.user_id,
        appointment_id=appointment_id,
        started_at=now,
        chief_complaint=complaint,
        status="open",
        created_by_id=actor.user_id,
    )
    session.add(encounter)
    if appt is not None:
        appt.status = "seen"
        appt.seen_at = now
        appt.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "records.create_encounter",
        patient_id=patient_id,
        object_type="encounter",
        object_id=encounter.id,
        detail={"type": encounter_type, "from_appointment": appt is not None},
    )
    return encounter


@requires(Privilege.WRITE_CLINICAL)
def close_encounter(
    *, session: Session, actor: Actor, encounter_id: int, disposition: str
) -> Encounter:
    """End an open encounter with its disposition; it needs a primary diagnosis first."""
    encounter = open_encounter_in_care(session, actor, encounter_id)
    problems = []
    if disposition not in DISPOSITIONS:
        problems.append("records.bad_disposition")
    if _primary(session, encounter_id) is None:
        problems.append("records.close_needs_primary")
    refuse_if(problems)
    encounter.status = "closed"
    encounter.disposition = disposition
    encounter.ended_at = utcnow()
    encounter.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "records.close_encounter",
        patient_id=encounter.patient_id,
        object_type="encounter",
        object_id=encounter.id,
        detail={"disposition": disposition},
    )
    return encounter


def _primary(session: Session, encounter_id: int) -> Diagnosis | None:
    return session.scalar(
        select(Diagnosis).where(
            Diagnosis.encounter_id == encounter_id,
            Diagnosis.rank == "primary",
            Diagnosis.voided.is_(False),
        )
    )


@requires(Privilege.WRITE_CLINICAL)
def add_diagnosis(
    *,
    session: Session,
    actor: Actor,
    encounter_id: int,
    code: str,
    code_system: str = "ICD-10",
    rank: str = "primary",
) -> Diagnosis:
    """Code a diagnosis on an open encounter from the code table; one primary at most."""
    encounter = open_encounter_in_care(session, actor, encounter_id)
    found = find_code(session, code, code_system)
    problems = []
    if found is None:
        problems.append("records.unknown_code")
    if rank not in ("primary", "secondary"):
        problems.append("records.bad_rank")
    elif rank == "primary" and _primary(session, encounter_id) is not None:
        problems.append("records.primary_exists")
    if found is not None:
        same = session.scalar(
            select(Diagnosis.id).where(
                Diagnosis.encounter_id == encounter_id,
                Diagnosis.code_system == found.code_system,
                Diagnosis.code == found.code,
                Diagnosis.voided.is_(False),
            )
        )
        if same is not None:
            problems.append("records.duplicate_diagnosis")
    refuse_if(problems)
    assert found is not None
    diagnosis = Diagnosis(
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        code_system=found.code_system,
        code=found.code,
        description=found.description,
        rank=rank,
        diagnosed_at=utcnow(),
        diagnosed_by_id=actor.user_id,
        created_by_id=actor.user_id,
    )
    session.add(diagnosis)
    session.flush()
    audit.record(
        session,
        actor,
        "records.add_diagnosis",
        patient_id=encounter.patient_id,
        object_type="diagnosis",
        object_id=diagnosis.id,
        detail={"rank": rank, "code_system": found.code_system},
    )
    return diagnosis


def _void(row: Diagnosis | Allergy | Problem, actor: Actor, reason: str) -> None:
    row.voided = True
    row.voided_at = utcnow()
    row.voided_by_id = actor.user_id
    row.void_reason = reason


@requires(Privilege.WRITE_CLINICAL)
def void_diagnosis(*, session: Session, actor: Actor, diagnosis_id: int, reason: str) -> None:
    """Void a diagnosis entered in error (kept, marked, with the reason)."""
    diagnosis = session.get(Diagnosis, diagnosis_id)
    if diagnosis is None or diagnosis.voided:
        raise LookupError(diagnosis_id)
    clinical_access(session, actor, diagnosis.patient_id)
    _void(diagnosis, actor, clean_reason(reason))
    session.flush()
    audit.record(
        session,
        actor,
        "records.void_diagnosis",
        patient_id=diagnosis.patient_id,
        object_type="diagnosis",
        object_id=diagnosis.id,
    )


@requires(Privilege.WRITE_CLINICAL)
def add_allergy(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    substance: str,
    substance_code: str | None = None,
    reaction: str = "",
    severity: str = "unknown",
) -> Allergy:
    """Record an active allergy of a patient in the actor's care."""
    _live_patient(session, patient_id)
    clinical_access(session, actor, patient_id)
    name = " ".join(substance.split())
    problems = []
    if not name:
        problems.append("records.substance_required")
    elif len(name) > MAX_TEXT or len(reaction) > MAX_TEXT:
        problems.append("records.text_too_long")
    if severity not in SEVERITIES:
        problems.append("records.bad_severity")
    refuse_if(problems)
    allergy = Allergy(
        patient_id=patient_id,
        substance=name,
        substance_code=(substance_code or "").strip() or None,
        reaction=" ".join(reaction.split()) or None,
        severity=severity,
        status="active",
        noted_at=utcnow(),
        created_by_id=actor.user_id,
    )
    session.add(allergy)
    session.flush()
    audit.record(
        session,
        actor,
        "records.add_allergy",
        patient_id=patient_id,
        object_type="allergy",
        object_id=allergy.id,
        detail={"severity": severity},
    )
    return allergy


@requires(Privilege.WRITE_CLINICAL)
def void_allergy(*, session: Session, actor: Actor, allergy_id: int, reason: str) -> None:
    """Void an allergy recorded in error."""
    allergy = session.get(Allergy, allergy_id)
    if allergy is None or allergy.voided:
        raise LookupError(allergy_id)
    clinical_access(session, actor, allergy.patient_id)
    _void(allergy, actor, clean_reason(reason))
    session.flush()
    audit.record(
        session,
        actor,
        "records.void_allergy",
        patient_id=allergy.patient_id,
        object_type="allergy",
        object_id=allergy.id,
    )


@requires(Privilege.WRITE_CLINICAL)
def add_problem(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    code: str,
    code_system: str = "ICD-10",
    onset_date: dt.date | None = None,
    today: dt.date | None = None,
) -> Problem:
    """Put a coded condition on the patient's problem list (active)."""
    _live_patient(session, patient_id)
    clinical_access(session, actor, patient_id)
    found = find_code(session, code, code_system)
    problems = [] if found is not None else ["records.unknown_code"]
    if onset_date is not None and onset_date > (today or local_today()):
        problems.append("records.date_in_future")
    refuse_if(problems)
    assert found is not None
    problem = Problem(
        patient_id=patient_id,
        code_system=found.code_system,
        code=found.code,
        description=found.description,
        onset_date=onset_date,
        status="active",
        created_by_id=actor.user_id,
    )
    session.add(problem)
    session.flush()
    audit.record(
        session,
        actor,
        "records.add_problem",
        patient_id=patient_id,
        object_type="problem",
        object_id=problem.id,
    )
    return problem


@requires(Privilege.WRITE_CLINICAL)
def resolve_problem(
    *, session: Session, actor: Actor, problem_id: int, resolved_date: dt.date | None = None
) -> Problem:
    """Mark an active problem resolved (on ``resolved_date``, default today)."""
    problem = session.get(Problem, problem_id)
    if problem is None or problem.voided:
        raise LookupError(problem_id)
    clinical_access(session, actor, problem.patient_id)
    day = resolved_date or local_today()
    problems = [] if problem.status == "active" else ["records.problem_not_active"]
    if problem.onset_date is not None and day < problem.onset_date:
        problems.append("records.resolved_before_onset")
    refuse_if(problems)
    problem.status = "resolved"
    problem.resolved_date = day
    problem.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "records.resolve_problem",
        patient_id=problem.patient_id,
        object_type="problem",
        object_id=problem.id,
    )
    return problem


@dataclass(frozen=True)
class EncounterView:
    """One encounter as the doctor's page shows it, with everything charted on it."""

    encounter: Encounter
    diagnoses: list[Diagnosis]
    prescriptions: list[Prescription]
    orders: list[Order]
    results: list[Observation]
    plans: list[tuple[TreatmentPlan, list[FollowUp]]]
    allergies: list[Allergy]  # the patient's active allergies (prescribing checks these)
    problems: list[Problem]  # the patient's active problem list


def _live(model: Any, *where: Any) -> list[Any]:
    return [*where, model.voided.is_(False)]


@requires(Privilege.VIEW_CLINICAL)
def list_encounter(*, session: Session, actor: Actor, encounter_id: int) -> EncounterView:
    """The encounter with its diagnoses, prescriptions, orders, results and plans."""
    encounter = encounter_in_care(session, actor, encounter_id)
    pid = encounter.patient_id

    def rows(model: Any, *where: Any, order: Any) -> list[Any]:
        return list(session.scalars(select(model).where(*_live(model, *where)).order_by(order)))

    plans = rows(TreatmentPlan, TreatmentPlan.encounter_id == encounter_id, order=TreatmentPlan.id)
    follow_ups = rows(
        FollowUp,
        FollowUp.plan_id.in_([p.id for p in plans] or [-1]),
        order=FollowUp.due_date,
    )
    view = EncounterView(
        encounter=encounter,
        diagnoses=rows(Diagnosis, Diagnosis.encounter_id == encounter_id, order=Diagnosis.id),
        prescriptions=rows(
            Prescription, Prescription.encounter_id == encounter_id, order=Prescription.id
        ),
        orders=rows(Order, Order.encounter_id == encounter_id, order=Order.id),
        results=rows(
            Observation,
            Observation.encounter_id == encounter_id,
            Observation.category == "lab",
            order=Observation.observed_at,
        ),
        plans=[(p, [f for f in follow_ups if f.plan_id == p.id]) for p in plans],
        allergies=rows(
            Allergy, Allergy.patient_id == pid, Allergy.status == "active", order=Allergy.id
        ),
        problems=rows(
            Problem, Problem.patient_id == pid, Problem.status == "active", order=Problem.id
        ),
    )
    audit.record(
        session,
        actor,
        "records.view_encounter",
        patient_id=pid,
        object_type="encounter",
        object_id=encounter_id,
    )
    return view


@requires(Privilege.VIEW_CLINICAL)
def list_open_encounters(*, session: Session, actor: Actor, patient_id: int) -> list[Encounter]:
    """The patient's open encounters, newest first (the doctor resumes one of them)."""
    clinical_access(session, actor, patient_id)
    found = list(
        session.scalars(
            select(Encounter)
            .where(
                Encounter.patient_id == patient_id,
                Encounter.status == "open",
                Encounter.voided.is_(False),
            )
            .order_by(Encounter.started_at.desc())
        )
    )
    audit.record(
        session,
        actor,
        "records.list_encounters",
        patient_id=patient_id,
        object_type="patient",
        object_id=patient_id,
        detail={"rows": len(found)},
    )
    return found


@requires(Privilege.WRITE_CLINICAL)
def list_clinical_departments(*, session: Session, actor: Actor) -> list[Department]:
    """Departments an encounter can be opened in, the actor's own first (reference data)."""
    found = session.scalars(
        select(Department)
        .where(Department.active.is_(True), Department.kind.in_(("clinical", "emergency")))
        .order_by(Department.code)
    )
    return sorted(found, key=lambda d: d.id not in actor.department_ids)


def latest_open_encounter_id(session: Session, patient_id: int) -> int | None:
    """The patient's most recently started open (not voided) encounter, if any."""
    return session.scalar(
        select(Encounter.id)
        .where(
            Encounter.patient_id == patient_id,
            Encounter.status == "open",
            Encounter.voided.is_(False),
        )
        .order_by(Encounter.started_at.desc())
        .limit(1)
    )
