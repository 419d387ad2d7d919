"""Ward views for nurses and doctors: who is in which bed now."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.clock import age_on, to_local
from cims.org.models import Bed, Ward
from cims.patients.models import Patient
from cims.records.models import BedAssignment, Encounter
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires


@dataclass(frozen=True)
class Inpatient:
    """A currently admitted patient in a bed of one of the actor's departments."""

    patient_id: int
    mrn: str
    patient_name: str
    sex: str
    age: int | None
    ward_zh: str
    ward_en: str
    bed: str
    admitted_at: dt.datetime
    chief_complaint: str | None


@requires(Privilege.VIEW_CLINICAL)
def list_my_inpatients(*, session: Session, actor: Actor, today: dt.date) -> list[Inpatient]:
    """Patients now in beds of the actor's departments (their care team's ward)."""
    query = (
        select(Patient, Ward, Bed.code, Encounter)
        .join(BedAssignment, BedAssignment.patient_id == Patient.id)
        .join(Bed, Bed.id == BedAssignment.bed_id)
        .join(Ward, Ward.id == Bed.ward_id)
        .join(Encounter, Encounter.id == BedAssignment.encounter_id)
        .where(
            BedAssignment.end_at.is_(None),
            BedAssignment.voided.is_(False),
            Ward.department_id.in_(actor.department_ids or (-1,)),
        )
        .order_by(Ward.code, Bed.code)
    )
    rows = [
        Inpatient(
            patient_id=patient.id,
            mrn=patient.mrn,
            patient_name=patient.full_name,
            sex=patient.sex,
            age=age_on(patient.birth_date, today),
            ward_zh=ward.name_zh,
            ward_en=ward.name_en,
            bed=bed,
            admitted_at=to_local(encounter.started_at) or encounter.started_at,
            chief_complaint=encounter.chief_complaint,
        )
        for patient, ward, bed, encounter in session.execute(query)
    ]
    audit.record(
        session,
        actor,
        "records.list_inpatients",
        object_type="ward_census",
        detail={"rows": len(rows)},
    )
    return rows
