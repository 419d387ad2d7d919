"""The doctor's one-page history summary of a patient: one query per section, no N+1."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, aliased

from cims.billing.models import Invoice
from cims.clock import age_on
from cims.governance.models import ModelVersion, RiskScore
from cims.org.models import Department
from cims.patients.models import Patient
from cims.records.models import (
    Allergy,
    ClinicalNote,
    Diagnosis,
    Encounter,
    FollowUp,
    Observation,
    Prescription,
    Problem,
)
from cims.records.notes import parse_body
from cims.security import audit
from cims.security.care import Basis, clinical_access
from cims.security.crypto import load_cipher
from cims.security.rbac import AccessDenied, Actor, Privilege, requires

# Key labs by LOINC code (the codes the demo and the lab interface use), in display order.
KEY_LABS: dict[str, str] = {
    "4548-4": "HbA1c",
    "14771-0": "Fasting glucose",
    "14682-9": "Creatinine",
    "2823-3": "Potassium",
    "22748-8": "LDL cholesterol",
    "30934-4": "BNP",
    "8480-6": "Systolic BP",
    "8462-4": "Diastolic BP",
}
# Chronic problem (ICD-10 prefix) -> the key lab that should be measured, and how often.
MONITORING: dict[str, tuple[str, int]] = {
    "E11": ("4548-4", 6),  # diabetes: HbA1c every 6 months
    "N18": ("14682-9", 6),  # CKD: creatinine every 6 months
    "I50": ("30934-4", 12),  # heart failure: BNP yearly
    "I10": ("14682-9", 12),  # hypertension: renal function yearly
    "E78": ("22748-8", 12),  # hyperlipidaemia: LDL yearly
}
SERIES_POINTS = 24  # newest points per lab kept for the sparkline
RECENT_NOTES = 5
ABNORMAL = frozenset({"L", "H", "LL", "HH", "A"})
_OPEN_INVOICE = ("issued", "partly_paid")


@dataclass(frozen=True)
class Header:
    """Who the patient is: the banner line."""

    patient_id: int
    mrn: str
    name: str
    sex: str
    age: int | None
    birth_date: dt.date | None
    blood_type: str
    deceased: bool


@dataclass(frozen=True)
class AllergyItem:
    """An active allergy."""

    id: int
    substance: str
    reaction: str | None
    severity: str


@dataclass(frozen=True)
class ProblemItem:
    """An active problem-list entry."""

    id: int
    code: str
    description: str
    onset_date: dt.date | None


@dataclass(frozen=True)
class Medication:
    """An active prescription."""

    id: int
    drug_name: str
    dose: Decimal
    dose_unit: str
    route: str
    frequency: str
    prescribed_at: dt.datetime


@dataclass(frozen=True)
class LabPoint:
    """One numeric result of a key lab."""

    id: int
    observed_at: dt.datetime
    value: float
    flag: str | None


@dataclass(frozen=True)
class LabSeries:
    """A key lab's recent results, oldest first, with the latest reference range."""

    code: str
    name: str
    unit: str | None
    ref_low: float | None
    ref_high: float | None
    points: tuple[LabPoint, ...]

    @property
    def latest(self) -> LabPoint:
        """The newest result."""
        return self.points[-1]

    @property
    def abnormal(self) -> bool:
        """Whether the newest result is flagged abnormal."""
        return self.latest.flag in ABNORMAL


@dataclass(frozen=True)
class EncounterItem:
    """A visit for the timeline, with its department and primary diagnosis."""

    id: int
    encounter_type: str
    department_zh: str
    department_en: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    chief_complaint: str | None
    diagnosis: str | None


@dataclass(frozen=True)
class NoteItem:
    """A recent note: title and the first line of its decrypted body."""

    id: int
    note_type: str
    title: str
    first_line: str
    written_at: dt.datetime
    status: str = "signed"  # drafts show as such
    amends_id: int | None = None  # an addendum: the note it corrects


@dataclass(frozen=True)
class FollowUpItem:
    """An open (due or booked) or recently missed follow-up."""

    id: int
    description: str
    due_date: dt.date
    status: str

    @property
    def open(self) -> bool:
        """Still to be done."""
        return self.status in ("due", "booked")


@dataclass(frozen=True)
class CareGap:
    """Something the record says should have happened and did not."""

    kind: str  # missed_follow_up | overdue_lab
    source_table: str
    source_id: int
    label: str  # the follow-up description or the lab name
    since: dt.date | None  # due date, or the date the lab was last measured
    problem: str | None = None  # overdue_lab: the problem that needs it


@dataclass(frozen=True)
class Billing:
    """Unpaid (issued or partly paid) invoices."""

    unpaid_count: int
    balance: Decimal
    invoice_ids: tuple[int, ...]


@dataclass(frozen=True)
class RiskItem:
    """The latest score of one risk model, with its reasons."""

    id: int
    model_name: str
    version: int
    score: float
    factors: tuple[Any, ...]
    scored_at: dt.datetime


@dataclass(frozen=True)
class PatientSummary:
    """Everything the summary page shows, and the basis on which it was read."""

    header: Header
    basis: Basis
    today: dt.date
    allergies: tuple[AllergyItem, ...]
    problems: tuple[ProblemItem, ...]
    medications: tuple[Medication, ...]
    labs: tuple[LabSeries, ...]
    encounters: tuple[EncounterItem, ...]
    notes: tuple[NoteItem, ...]
    follow_ups: tuple[FollowUpItem, ...]
    care_gaps: tuple[CareGap, ...]
    billing: Billing
    risks: tuple[RiskItem, ...]


def _assemble(
    session: Session, patient: Patient, basis: Basis, today: dt.date, *, for_staff: bool
) -> PatientSummary:
    """The summary's parts; a patient's own view leaves out staff notes and risk scores."""
    patient_id = patient.id
    problems = _problems(session, patient_id)
    labs = _labs(session, patient_id)
    follow_ups = _follow_ups(session, patient_id, today)
    header = Header(
        patient.id, patient.mrn, patient.full_name, patient.sex,
        age_on(patient.birth_date, patient.death_date or today), patient.birth_date,
        patient.blood_type, patient.death_date is not None,
    )  # fmt: skip
    return PatientSummary(
        header=header,
        basis=basis,
        today=today,
        allergies=_allergies(session, patient_id),
        problems=problems,
        medications=_medications(session, patient_id),
        labs=labs,
        encounters=_encounters(session, patient_id),
        notes=_notes(session, patient_id) if for_staff else (),
        follow_ups=follow_ups,
        care_gaps=_care_gaps(problems, labs, follow_ups, today),
        billing=_billing(session, patient_id),
        risks=_risks(session, patient_id) if for_staff else (),
    )


@requires(Privilege.VIEW_CLINICAL)
def build_summary(
    *, session: Session, actor: Actor, patient_id: int, today: dt.date
) -> PatientSummary:
    """The patient's history summary, read on the actor's care or break-glass basis."""
    basis = clinical_access(session, actor, patient_id)
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided:
        raise LookupError(patient_id)
    summary = _assemble(session, patient, basis, today, for_staff=True)
    audit.record(
        session,
        actor,
        "records.view_summary",
        patient_id=patient_id,
        object_type="patient",
        object_id=patient_id,
        detail={"basis": basis},
    )
    return summary


@requires(Privilege.PORTAL_SELF)
def my_summary(*, session: Session, actor: Actor, today: dt.date) -> PatientSummary:
    """The signed-in patient's own record: everything but staff notes and risk scores."""
    patient = session.get(Patient, actor.patient_id) if actor.patient_id else None
    if patient is None or patient.voided:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    summary = _assemble(session, patient, "self", today, for_staff=False)
    audit.record(
        session,
        actor,
        "portal.view_record",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
    )
    return summary


def _allergies(session: Session, patient_id: int) -> tuple[AllergyItem, ...]:
    rows = session.scalars(
        select(Allergy)
        .where(Allergy.patient_id == patient_id, Allergy.status == "active", ~Allergy.voided)
        .order_by(Allergy.noted_at)
    )
    return tuple(AllergyItem(a.id, a.substance, a.reaction, a.severity) for a in rows)


def _problems(session: Session, patient_id: int) -> tuple[ProblemItem, ...]:
    rows = session.scalars(
        select(Problem)
        .where(Problem.patient_id == patient_id, Problem.status == "active", ~Problem.voided)
        .order_by(Problem.onset_date.nulls_last(), Problem.id)
    )
    return tuple(ProblemItem(p.id, p.code, p.description, p.onset_date) for p in rows)


def _medications(session: Session, patient_id: int) -> tuple[Medication, ...]:
    rows = session.scalars(
        select(Prescription)
        .where(
            Prescription.patient_id == patient_id,
            Prescription.status == "active",
            ~Prescription.voided,
        )
        .order_by(Prescription.prescribed_at.desc())
    )
    return tuple(
        Medication(p.id, p.drug_name, p.dose, p.dose_unit, p.route, p.frequency, p.prescribed_at)
        for p in rows
    )


def _labs(session: Session, patient_id: int) -> tuple[LabSeries, ...]:
    # Newest SERIES_POINTS numeric results per key code in one windowed query.
    rank = (
        func.row_number()
        .over(partition_by=Observation.code, order_by=Observation.observed_at.desc())
        .label("rank")
    )
    inner = (
        select(Observation, rank)
        .where(
            Observation.patient_id == patient_id,
            Observation.code.in_(KEY_LABS),
            Observation.value_num.is_not(None),
            ~Observation.voided,
        )
        .subquery()
    )
    obs = aliased(Observation, inner)
    rows = session.scalars(
        select(obs).where(inner.c.rank <= SERIES_POINTS).order_by(obs.code, obs.observed_at)
    ).all()
    by_code: dict[str, list[Observation]] = {}
    for row in rows:
        by_code.setdefault(row.code, []).append(row)
    series = []
    for code in KEY_LABS:
        if found := by_code.get(code):
            last = found[-1]
            points = tuple(
                LabPoint(o.id, o.observed_at, float(o.value_num or 0), o.abnormal_flag)
                for o in found
            )
            low, high = _float(last.ref_low), _float(last.ref_high)
            series.append(LabSeries(code, last.name, last.unit, low, high, points))
    return tuple(series)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _encounters(session: Session, patient_id: int) -> tuple[EncounterItem, ...]:
    diagnosis = (
        select(Diagnosis.description)
        .where(
            Diagnosis.encounter_id == Encounter.id, Diagnosis.rank == "primary", ~Diagnosis.voided
        )
        .order_by(Diagnosis.diagnosed_at)
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Encounter.id,
            Encounter.encounter_type,
            Department.name_zh,
            Department.name_en,
            Encounter.started_at,
            Encounter.ended_at,
            Encounter.chief_complaint,
            diagnosis,
        )
        .join(Department, Department.id == Encounter.department_id)
        .where(Encounter.patient_id == patient_id, ~Encounter.voided)
        .order_by(Encounter.started_at)
    )
    return tuple(EncounterItem(*row) for row in rows)


def _notes(session: Session, patient_id: int) -> tuple[NoteItem, ...]:
    rows = session.scalars(
        select(ClinicalNote)
        .where(ClinicalNote.patient_id == patient_id, ~ClinicalNote.voided)
        .order_by(ClinicalNote.written_at.desc())
        .limit(RECENT_NOTES)
    ).all()
    if not rows:
        return ()
    cipher = load_cipher(session)
    notes = []
    for note in rows:
        body = cipher.decrypt_text(
            note.body_enc, table="clinical_notes", column="body", row_id=note.id
        )
        soap, text = parse_body(body, is_soap=note.is_soap)
        if soap is not None:  # the assessment says most in one line
            text = soap.assessment or text
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        notes.append(
            NoteItem(
                note.id,
                note.note_type,
                note.title,
                first,
                note.written_at,
                note.status,
                note.amends_id,
            )
        )
    return tuple(notes)


def _follow_ups(session: Session, patient_id: int, today: dt.date) -> tuple[FollowUpItem, ...]:
    # Missed ones matter for a year; open ones whatever their age.
    rows = session.scalars(
        select(FollowUp)
        .where(
            FollowUp.patient_id == patient_id,
            ~FollowUp.voided,
            (FollowUp.status.in_(("due", "booked")))
            | (
                (FollowUp.status == "missed")
                & (FollowUp.due_date >= today - dt.timedelta(days=365))
            ),
        )
        .order_by(FollowUp.due_date)
    )
    return tuple(FollowUpItem(f.id, f.description, f.due_date, f.status) for f in rows)


def _care_gaps(
    problems: tuple[ProblemItem, ...],
    labs: tuple[LabSeries, ...],
    follow_ups: tuple[FollowUpItem, ...],
    today: dt.date,
) -> tuple[CareGap, ...]:
    gaps = [
        CareGap("missed_follow_up", "follow_ups", f.id, f.description, f.due_date)
        for f in follow_ups
        if f.status == "missed" or (f.open and f.due_date < today)
    ]
    latest = {s.code: s.latest for s in labs}
    seen: set[str] = set()
    for problem in problems:
        rule = next((r for p, r in MONITORING.items() if problem.code.startswith(p)), None)
        if rule is None or rule[0] in seen:
            continue
        code, months = rule
        last = latest.get(code)
        last_day = last.observed_at.date() if last else None
        # A month as 30 days: "overdue" is a prompt to look, not a billing deadline.
        if last_day is None or last_day < today - dt.timedelta(days=30 * months):
            seen.add(code)
            label = next((s.name for s in labs if s.code == code), KEY_LABS[code])
            gap = CareGap(
                "overdue_lab", "problems", problem.id, label, last_day, problem.description
            )
            gaps.append(gap)
    return tuple(gaps)


def _billing(session: Session, patient_id: int) -> Billing:
    rows = session.execute(
        select(Invoice.id, Invoice.patient_amount - Invoice.paid_amount).where(
            Invoice.patient_id == patient_id, Invoice.status.in_(_OPEN_INVOICE), ~Invoice.voided
        )
    ).all()
    balance = sum((Decimal(owed) for _, owed in rows), Decimal("0"))
    return Billing(len(rows), balance, tuple(invoice_id for invoice_id, _ in rows))


def _risks(session: Session, patient_id: int) -> tuple[RiskItem, ...]:
    rows = session.execute(
        select(RiskScore, ModelVersion.model_name, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == RiskScore.model_version_id)
        .where(RiskScore.patient_id == patient_id)
        .order_by(ModelVersion.model_name, RiskScore.scored_at.desc())
        .ext(distinct_on(ModelVersion.model_name))
    )
    return tuple(
        RiskItem(r.id, name, version, float(r.score), tuple(r.factors or ()), r.scored_at)
        for r, name, version in rows
    )
