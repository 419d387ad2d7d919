"""Encounters, diagnoses, allergies and the problem list: every rule, refusals write nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.records.codes import load_who_icd10
from cims.records.encounters import (
    InvalidRecord,
    add_allergy,
    add_diagnosis,
    add_problem,
    close_encounter,
    create_encounter,
    list_clinical_departments,
    list_encounter,
    list_open_encounters,
    resolve_problem,
    void_allergy,
    void_diagnosis,
)
from cims.records.models import Allergy, Diagnosis, Encounter, Problem
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor


@pytest.fixture(scope="module")
def icd10(engine: Engine) -> Iterator[None]:
    """The WHO list committed once (reference data; loading is idempotent)."""
    with Session(engine) as db:
        load_who_icd10(db)
        db.commit()
    yield


def _actions(session: Session, since: int) -> list[str]:
    rows = session.scalars(
        select(AuditEvent.action).where(AuditEvent.id > since).order_by(AuditEvent.id)
    )
    return list(rows)


def _last_audit(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def _doctor(session: Session) -> tuple[Actor, int]:
    department = factories.department(session, "ENDO")
    return factories.actor(session, "doctor", departments=(department.id,)), department.id


def _open(session: Session, doctor: Actor, department_id: int) -> Encounter:
    patient = factories.patient(session)
    return create_encounter(
        session=session, actor=doctor, patient_id=patient.id, encounter_type="outpatient",
        department_id=department_id, chief_complaint="口干多饮  3月",
    )  # fmt: skip


def test_a_doctor_opens_an_encounter_in_their_department(session: Session) -> None:
    doctor, department_id = _doctor(session)
    before = _last_audit(session)
    encounter = _open(session, doctor, department_id)
    assert encounter.attending_id == doctor.user_id and encounter.status == "open"
    assert encounter.chief_complaint == "口干多饮 3月"
    assert _actions(session, before) == ["records.create_encounter"]
    # The encounter brings the patient into the doctor's care: reads now pass.
    found = list_open_encounters(session=session, actor=doctor, patient_id=encounter.patient_id)
    assert [e.id for e in found] == [encounter.id]


def test_an_appointment_with_the_doctor_is_enough_and_is_marked_seen(session: Session) -> None:
    department = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor")  # no department of their own
    patient = factories.patient(session)
    appointment = Appointment(
        patient_id=patient.id, department_id=department.id, doctor_id=doctor.user_id,
        status="checked_in", booked_at=utcnow(), scheduled_at=utcnow(),
    )  # fmt: skip
    session.add(appointment)
    session.flush()
    encounter = create_encounter(
        session=session, actor=doctor, patient_id=patient.id, encounter_type="outpatient",
        department_id=department.id, chief_complaint="复查", appointment_id=appointment.id,
    )  # fmt: skip
    assert encounter.appointment_id == appointment.id
    assert appointment.status == "seen" and appointment.seen_at is not None
    with pytest.raises(InvalidRecord) as again:
        create_encounter(
            session=session, actor=doctor, patient_id=patient.id, encounter_type="outpatient",
            department_id=department.id, chief_complaint="复查", appointment_id=appointment.id,
        )  # fmt: skip
    assert again.value.problems == ["records.appointment_not_open"]


def test_outside_care_and_department_is_refused_and_writes_nothing(session: Session) -> None:
    department = factories.department(session, "ENDO")
    stranger = factories.actor(session, "doctor")
    patient = factories.patient(session)
    with pytest.raises(AccessDenied):
        create_encounter(
            session=session, actor=stranger, patient_id=patient.id, encounter_type="outpatient",
            department_id=department.id, chief_complaint="头痛",
        )  # fmt: skip
    assert session.scalar(select(Encounter.id).where(Encounter.patient_id == patient.id)) is None
    for role in ("nurse", "registrar"):
        with pytest.raises(AccessDenied):
            create_encounter(
                session=session, actor=factories.actor(session, role), patient_id=patient.id,
                encounter_type="outpatient", department_id=department.id, chief_complaint="x",
            )  # fmt: skip


def test_bad_encounter_input_lists_every_problem(session: Session) -> None:
    doctor, department_id = _doctor(session)
    patient = factories.patient(session)
    with pytest.raises(InvalidRecord) as refused:
        create_encounter(
            session=session, actor=doctor, patient_id=patient.id, encounter_type="visit",
            department_id=-1, chief_complaint="   ", appointment_id=-5,
        )  # fmt: skip
    assert refused.value.problems == [
        "records.bad_encounter_type",
        "records.bad_department",
        "records.complaint_required",
        "records.bad_appointment",
    ]
    voided = factories.patient(session, voided=True, voided_at=utcnow(), void_reason="dup")
    with pytest.raises(InvalidRecord) as gone:
        create_encounter(
            session=session, actor=doctor, patient_id=voided.id, encounter_type="outpatient",
            department_id=department_id, chief_complaint="x",
        )  # fmt: skip
    assert gone.value.problems == ["records.patient_unavailable"]
    assert session.scalar(select(func.count()).where(Encounter.patient_id == patient.id)) == 0


def test_diagnoses_come_from_the_code_table_with_one_primary(session: Session, icd10: None) -> None:
    doctor, department_id = _doctor(session)
    encounter = _open(session, doctor, department_id)
    before = _last_audit(session)
    primary = add_diagnosis(session=session, actor=doctor, encounter_id=encounter.id, code="e11.9")
    assert primary.code == "E11.9" and primary.rank == "primary"
    assert primary.description == "2型糖尿病 / Type 2 diabetes mellitus without complications"
    assert _actions(session, before) == ["records.add_diagnosis"]
    for code, rank, problem in (
        ("X99.99", "secondary", "records.unknown_code"),
        ("I10", "primary", "records.primary_exists"),
        ("E11.9", "secondary", "records.duplicate_diagnosis"),
        ("I10", "tertiary", "records.bad_rank"),
    ):
        with pytest.raises(InvalidRecord) as refused:
            add_diagnosis(
                session=session, actor=doctor, encounter_id=encounter.id, code=code, rank=rank
            )
        assert refused.value.problems == [problem]
    add_diagnosis(
        session=session, actor=doctor, encounter_id=encounter.id, code="I10", rank="secondary"
    )
    assert session.scalar(select(func.count()).where(Diagnosis.encounter_id == encounter.id)) == 2
    # Voiding the primary (with a reason) lets another become primary; the row is kept.
    with pytest.raises(InvalidRecord):
        void_diagnosis(session=session, actor=doctor, diagnosis_id=primary.id, reason=" ")
    void_diagnosis(session=session, actor=doctor, diagnosis_id=primary.id, reason="wrong code")
    assert primary.voided and primary.void_reason == "wrong code"
    add_diagnosis(session=session, actor=doctor, encounter_id=encounter.id, code="E11.65")
    # Another doctor with no care relationship is refused.
    with pytest.raises(AccessDenied):
        add_diagnosis(
            session=session, actor=factories.actor(session, "doctor"),
            encounter_id=encounter.id, code="J45.9", rank="secondary",
        )  # fmt: skip


def test_closing_needs_a_primary_and_a_disposition_then_locks(
    session: Session, icd10: None
) -> None:
    doctor, department_id = _doctor(session)
    encounter = _open(session, doctor, department_id)
    with pytest.raises(InvalidRecord) as refused:
        close_encounter(session=session, actor=doctor, encounter_id=encounter.id, disposition="x")
    assert refused.value.problems == ["records.bad_disposition", "records.close_needs_primary"]
    assert encounter.status == "open"
    add_diagnosis(session=session, actor=doctor, encounter_id=encounter.id, code="I10")
    before = _last_audit(session)
    close_encounter(session=session, actor=doctor, encounter_id=encounter.id, disposition="home")
    assert encounter.status == "closed" and encounter.ended_at is not None
    assert _actions(session, before) == ["records.close_encounter"]
    with pytest.raises(InvalidRecord) as locked:
        add_diagnosis(
            session=session, actor=doctor, encounter_id=encounter.id, code="J45.9",
            rank="secondary",
        )  # fmt: skip
    assert locked.value.problems == ["records.encounter_closed"]


def test_allergies_and_problems(session: Session, icd10: None) -> None:
    doctor, department_id = _doctor(session)
    encounter = _open(session, doctor, department_id)
    pid = encounter.patient_id
    before = _last_audit(session)
    allergy = add_allergy(
        session=session, actor=doctor, patient_id=pid, substance=" 青霉素 / Penicillin ",
        reaction="皮疹", severity="moderate",
    )  # fmt: skip
    assert allergy.substance == "青霉素 / Penicillin" and allergy.status == "active"
    with pytest.raises(InvalidRecord) as refused:
        add_allergy(session=session, actor=doctor, patient_id=pid, substance="", severity="bad")
    assert refused.value.problems == ["records.substance_required", "records.bad_severity"]
    problem = add_problem(
        session=session, actor=doctor, patient_id=pid, code="I10", onset_date=dt.date(2020, 1, 1)
    )
    assert problem.description.startswith("原发性高血压")
    with pytest.raises(InvalidRecord) as future:
        add_problem(
            session=session, actor=doctor, patient_id=pid, code="I10",
            onset_date=dt.date.today() + dt.timedelta(days=3),
        )  # fmt: skip
    assert future.value.problems == ["records.date_in_future"]
    resolve_problem(session=session, actor=doctor, problem_id=problem.id)
    assert problem.status == "resolved" and problem.resolved_date is not None
    with pytest.raises(InvalidRecord):
        resolve_problem(session=session, actor=doctor, problem_id=problem.id)
    void_allergy(session=session, actor=doctor, allergy_id=allergy.id, reason="entered twice")
    assert allergy.voided
    assert _actions(session, before) == [
        "records.add_allergy",
        "records.add_problem",
        "records.resolve_problem",
        "records.void_allergy",
    ]
    assert session.scalar(select(func.count()).where(Allergy.patient_id == pid)) == 1
    assert session.scalar(select(func.count()).where(Problem.patient_id == pid)) == 1


def test_list_encounter_shows_what_was_charted(session: Session, icd10: None) -> None:
    doctor, department_id = _doctor(session)
    encounter = _open(session, doctor, department_id)
    add_diagnosis(session=session, actor=doctor, encounter_id=encounter.id, code="I10")
    add_allergy(session=session, actor=doctor, patient_id=encounter.patient_id, substance="花生")
    before = _last_audit(session)
    view = list_encounter(session=session, actor=doctor, encounter_id=encounter.id)
    assert [d.code for d in view.diagnoses] == ["I10"]
    assert [a.substance for a in view.allergies] == ["花生"]
    assert view.prescriptions == [] and view.orders == [] and view.plans == []
    assert _actions(session, before) == ["records.view_encounter"]
    with pytest.raises(AccessDenied):
        list_encounter(
            session=session, actor=factories.actor(session, "doctor"), encounter_id=encounter.id
        )
    departments = list_clinical_departments(session=session, actor=doctor)
    assert departments[0].id == department_id
