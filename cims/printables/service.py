"""Gathering what a printout shows, with the privilege and care checks and an audit row."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.clock import age_on, local_today, to_local
from cims.org.models import Department
from cims.patients.models import Patient
from cims.printables.documents import (
    DrugLine,
    PatientLine,
    PrescriptionSheet,
    VisitSummary,
    Wristband,
    prescription_pdf,
    visit_summary_pdf,
    wristband_pdf,
)
from cims.records.models import Allergy, Diagnosis, Encounter, Order, Prescription
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires


class NothingToPrint(LookupError):
    """The patient or visit does not exist (or was voided); ``problems`` are i18n keys."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class VisitOption:
    """An encounter a user may pick to print or to attach a note to."""

    id: int
    encounter_type: str
    department_zh: str
    department_en: str
    started_at: dt.datetime
    status: str


def _patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided:
        raise NothingToPrint(["print.patient_not_found"])
    return patient


def _patient_line(patient: Patient) -> PatientLine:
    return PatientLine(
        name=patient.full_name,
        mrn=patient.mrn,
        sex=patient.sex,
        age=age_on(patient.birth_date, local_today()),
        birth_date=patient.birth_date,
    )


def _encounter(session: Session, actor: Actor, encounter_id: int) -> Encounter:
    encounter = session.get(Encounter, encounter_id)
    if encounter is None or encounter.voided:
        raise NothingToPrint(["print.visit_not_found"])
    clinical_access(session, actor, encounter.patient_id)
    return encounter


def _department(session: Session, department_id: int, language: str) -> str:
    department = session.get(Department, department_id)
    if department is None:
        return "—"
    return department.name_zh if language == "zh" else department.name_en


def _user_name(session: Session, user_id: int | None) -> str:
    return (
        (session.scalar(select(User.display_name).where(User.id == user_id)) or "")
        if user_id
        else ""
    )


def _drugs(session: Session, encounter_id: int) -> tuple[DrugLine, ...]:
    rows = session.scalars(
        select(Prescription)
        .where(
            Prescription.encounter_id == encounter_id,
            Prescription.voided.is_(False),
            Prescription.status != "cancelled",
        )
        .order_by(Prescription.prescribed_at, Prescription.id)
    ).all()
    return tuple(
        DrugLine(
            name=row.drug_name,
            dose=row.dose,
            dose_unit=row.dose_unit,
            route=row.route,
            frequency=row.frequency,
            duration_days=row.duration_days,
            quantity=row.quantity,
        )
        for row in rows
    )


def _diagnoses(session: Session, encounter_id: int) -> list[Diagnosis]:
    return list(
        session.scalars(
            select(Diagnosis)
            .where(Diagnosis.encounter_id == encounter_id, Diagnosis.voided.is_(False))
            .order_by(Diagnosis.rank != "primary", Diagnosis.diagnosed_at, Diagnosis.id)
        ).all()
    )


def _audit(
    session: Session, actor: Actor, action: str, patient_id: int, kind: str, oid: int
) -> None:
    audit.record(session, actor, action, patient_id=patient_id, object_type=kind, object_id=oid)


@requires(Privilege.VIEW_CLINICAL)
def list_visits(*, session: Session, actor: Actor, patient_id: int) -> list[VisitOption]:
    """A patient's live encounters, newest first (to choose what to print or annotate)."""
    clinical_access(session, actor, patient_id)
    rows = session.execute(
        select(Encounter, Department.name_zh, Department.name_en)
        .join(Department, Department.id == Encounter.department_id)
        .where(Encounter.patient_id == patient_id, Encounter.voided.is_(False))
        .order_by(Encounter.started_at.desc())
        .limit(50)
    ).all()
    audit.record(
        session,
        actor,
        "records.list_encounters",
        patient_id=patient_id,
        object_type="encounter",
        detail={"rows": len(rows)},
    )
    return [
        VisitOption(
            id=encounter.id,
            encounter_type=encounter.encounter_type,
            department_zh=zh,
            department_en=en,
            started_at=to_local(encounter.started_at) or encounter.started_at,
            status=encounter.status,
        )
        for encounter, zh, en in rows
    ]


@requires(Privilege.VIEW_CLINICAL)
def print_prescription(
    *, session: Session, actor: Actor, encounter_id: int, language: str
) -> bytes:
    """The prescription slip of one visit as PDF bytes."""
    encounter = _encounter(session, actor, encounter_id)
    patient = _patient(session, encounter.patient_id)
    latest = session.execute(
        select(Prescription.prescriber_id, Prescription.prescribed_at)
        .where(Prescription.encounter_id == encounter_id, Prescription.voided.is_(False))
        .order_by(Prescription.prescribed_at.desc())
        .limit(1)
    ).first()
    prescriber = latest[0] if latest else encounter.attending_id
    issued = to_local(latest[1] if latest else encounter.started_at) or encounter.started_at
    sheet = PrescriptionSheet(
        patient=_patient_line(patient),
        department=_department(session, encounter.department_id, language),
        doctor=_user_name(session, prescriber) or "—",
        diagnoses=tuple(d.description for d in _diagnoses(session, encounter_id)),
        drugs=_drugs(session, encounter_id),
        issued_at=issued,
        number=f"{patient.mrn}-{encounter.id}",
    )
    pdf = prescription_pdf(sheet, language)
    _audit(session, actor, "records.print_prescription", patient.id, "encounter", encounter.id)
    return pdf


@requires(Privilege.VIEW_CLINICAL)
def print_wristband(*, session: Session, actor: Actor, patient_id: int, language: str) -> bytes:
    """The patient's identification wristband (QR code of the MRN) as PDF bytes."""
    patient = _patient(session, patient_id)
    clinical_access(session, actor, patient_id)
    allergies = session.scalars(
        select(Allergy.substance)
        .where(
            Allergy.patient_id == patient_id,
            Allergy.voided.is_(False),
            Allergy.status == "active",
        )
        .order_by(Allergy.noted_at)
    ).all()
    band = Wristband(
        patient=_patient_line(patient), blood_type=patient.blood_type, allergies=tuple(allergies)
    )
    pdf = wristband_pdf(band, language)
    _audit(session, actor, "records.print_wristband", patient.id, "patient", patient.id)
    return pdf


@requires(Privilege.VIEW_CLINICAL)
def print_visit_summary(
    *, session: Session, actor: Actor, encounter_id: int, language: str
) -> bytes:
    """One visit's summary (diagnoses, prescriptions, orders) as PDF bytes."""
    encounter = _encounter(session, actor, encounter_id)
    patient = _patient(session, encounter.patient_id)
    orders = session.scalars(
        select(Order)
        .where(Order.encounter_id == encounter_id, Order.voided.is_(False))
        .order_by(Order.ordered_at, Order.id)
    ).all()
    visit = VisitSummary(
        patient=_patient_line(patient),
        encounter_type=encounter.encounter_type,
        department=_department(session, encounter.department_id, language),
        attending=_user_name(session, encounter.attending_id),
        started_at=to_local(encounter.started_at) or encounter.started_at,
        ended_at=to_local(encounter.ended_at),
        chief_complaint=encounter.chief_complaint or "",
        disposition=encounter.disposition,
        diagnoses=tuple((d.code, d.description, d.rank) for d in _diagnoses(session, encounter_id)),
        drugs=_drugs(session, encounter_id),
        orders=tuple((o.order_type, o.description, o.status) for o in orders),
    )
    pdf = visit_summary_pdf(visit, language)
    _audit(session, actor, "records.print_visit_summary", patient.id, "encounter", encounter.id)
    return pdf
