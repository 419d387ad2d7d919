"""Care relationship and break-glass: who may read a patient's clinical detail."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.org.models import Bed, Ward
from cims.records.models import BedAssignment, Encounter
from cims.security import care
from cims.security.models import AuditEvent, BreakGlassGrant
from cims.security.rbac import AccessDenied


def _encounter(
    session: Session, patient_id: int, department_id: int, **fields: object
) -> Encounter:
    values: dict[str, object] = {
        "patient_id": patient_id,
        "encounter_type": "outpatient",
        "department_id": department_id,
        "started_at": utcnow() - dt.timedelta(days=3),
        "ended_at": utcnow() - dt.timedelta(days=3),
        "status": "closed",
    }
    values.update(fields)
    row = Encounter(**values)
    session.add(row)
    session.flush()
    return row


def test_department_encounter_puts_a_patient_in_care(session: Session) -> None:
    endo = factories.department(session, "ENDO")
    other = factories.department(session, "SURG")
    doctor = factories.actor(session, "doctor", departments=(endo.id,))
    mine, theirs, old = (factories.patient(session) for _ in range(3))
    _encounter(session, mine.id, endo.id)
    _encounter(session, theirs.id, other.id)
    long_ago = utcnow() - dt.timedelta(days=400)
    _encounter(session, old.id, endo.id, started_at=long_ago, ended_at=long_ago)
    assert care.clinical_access(session, doctor, mine.id) == "care"
    for patient in (theirs, old):
        with pytest.raises(AccessDenied):
            care.clinical_access(session, doctor, patient.id)


def test_own_appointment_and_current_admission_count(session: Session) -> None:
    endo = factories.department(session, "ENDO")
    surgery = factories.department(session, "SURG")
    doctor = factories.actor(session, "doctor", departments=(surgery.id,))
    nurse = factories.actor(session, "nurse", departments=(endo.id,))
    booked, admitted = factories.patient(session), factories.patient(session)
    session.add(
        Appointment(
            patient_id=booked.id,
            department_id=endo.id,
            doctor_id=doctor.user_id,
            booked_at=utcnow(),
            scheduled_at=utcnow() + dt.timedelta(days=2),
            status="booked",
        )
    )
    ward = Ward(
        code="E1", name_zh="内分泌一病区", name_en="Endocrine ward 1", department_id=endo.id
    )
    session.add(ward)
    session.flush()
    bed = Bed(ward_id=ward.id, code="01")
    session.add(bed)
    session.flush()
    stay = _encounter(
        session, admitted.id, surgery.id, encounter_type="inpatient", ended_at=None, status="open"
    )
    session.add(
        BedAssignment(
            encounter_id=stay.id, patient_id=admitted.id, bed_id=bed.id, start_at=utcnow()
        )
    )
    session.flush()
    assert care.clinical_access(session, doctor, booked.id) == "care"
    assert care.clinical_access(session, nurse, admitted.id) == "care"


def test_break_glass_is_reasoned_time_limited_and_reviewed(session: Session) -> None:
    endo = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor", departments=(endo.id,))
    stranger = factories.patient(session)
    with pytest.raises(AccessDenied):
        care.clinical_access(session, doctor, stranger.id)
    with pytest.raises(ValueError, match="reason_too_short"):
        care.open_break_glass(session=session, actor=doctor, patient_id=stranger.id, reason="x")
    grant = care.open_break_glass(
        session=session,
        actor=doctor,
        patient_id=stranger.id,
        reason="Unconscious in ED, need allergy history",
    )
    assert care.clinical_access(session, doctor, stranger.id) == "break_glass"
    grant.expires_at = utcnow() - dt.timedelta(seconds=1)
    session.flush()
    with pytest.raises(AccessDenied):
        care.clinical_access(session, doctor, stranger.id)
    admin = factories.actor(session, "admin")
    queue = care.list_break_glass_for_review(session=session, actor=admin)
    assert grant.id in [g.id for g, _ in queue]
    care.review_break_glass(session=session, actor=admin, grant_id=grant.id, justified=True)
    assert session.get(BreakGlassGrant, grant.id).review_outcome == "justified"  # type: ignore[union-attr]
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == stranger.id)
    ).all()
    assert "clinical.break_glass" in actions and "audit.review_break_glass" in actions


def test_roles_without_clinical_privilege_never_get_access(session: Session) -> None:
    endo = factories.department(session, "ENDO")
    patient = factories.patient(session)
    _encounter(session, patient.id, endo.id)
    for role in ("registrar", "finance", "manager", "data_staff", "admin"):
        actor = factories.actor(session, role, departments=(endo.id,))
        with pytest.raises(AccessDenied):
            care.clinical_access(session, actor, patient.id)
        with pytest.raises(AccessDenied):
            care.open_break_glass(
                session=session, actor=actor, patient_id=patient.id, reason="curious about it"
            )


def test_a_patient_reads_only_their_own_record(session: Session) -> None:
    me, other = factories.patient(session), factories.patient(session)
    actor = factories.actor(session, "patient", patient_id=me.id)
    assert care.clinical_access(session, actor, me.id) == "self"
    with pytest.raises(AccessDenied):
        care.clinical_access(session, actor, other.id)
