"""Medical and treatment records: encounters, beds, diagnoses, labs, notes, orders, plans."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Index, LargeBinary, Numeric, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Imported, Voidable, fk, one_of, pk, void_check

ENCOUNTER_TYPES = ("outpatient", "inpatient", "emergency")
DISPOSITIONS = ("home", "admitted", "transferred", "referred", "deceased", "left_against_advice")
ABNORMAL_FLAGS = ("N", "L", "H", "LL", "HH", "A")
ORDER_TYPES = ("lab", "imaging", "procedure", "medication", "nursing", "consultation")
ORDER_STATUSES = ("ordered", "in_progress", "completed", "cancelled")


def _patient_time(table: str, time_column: str) -> Index:
    """Index for the record's most common access: one patient's rows in time order."""
    return Index(f"ix_{table}_patient_time", "patient_id", time_column)


class Encounter(Voidable, Base):
    """A visit: outpatient, inpatient (admission to discharge) or emergency."""

    __tablename__ = "encounters"
    __table_args__ = (
        void_check(),
        one_of("encounter_type", ENCOUNTER_TYPES),
        one_of("disposition", DISPOSITIONS),
        one_of("status", ("open", "closed")),
        _patient_time("encounters", "started_at"),
        Index("ix_encounters_attending_time", "attending_id", "started_at"),
        Index("ix_encounters_department_time", "department_id", "started_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_type: Mapped[str]
    department_id: Mapped[int] = fk("departments.id", nullable=False)
    attending_id: Mapped[int | None] = fk("users.id")
    appointment_id: Mapped[int | None] = fk("appointments.id", index=True)
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    chief_complaint: Mapped[str | None]
    disposition: Mapped[str | None]
    status: Mapped[str] = mapped_column(default="open")
    source_system: Mapped[str | None]  # import provenance, e.g. synthea
    source_id: Mapped[str | None]


class BedAssignment(Voidable, Base):
    """An inpatient's stay in one bed: admission or transfer until transfer or discharge."""

    __tablename__ = "bed_assignments"
    __table_args__ = (
        void_check(),
        one_of("reason", ("admit", "transfer")),
        _patient_time("bed_assignments", "start_at"),
        # One live occupant per bed at a time.
        Index(
            "uq_bed_assignments_bed_occupied",
            "bed_id",
            unique=True,
            postgresql_where="end_at IS NULL AND NOT voided",
        ),
    )

    id: Mapped[int] = pk()
    encounter_id: Mapped[int] = fk("encounters.id", nullable=False, index=True)
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    bed_id: Mapped[int] = fk("beds.id", nullable=False)
    start_at: Mapped[dt.datetime]
    end_at: Mapped[dt.datetime | None]
    reason: Mapped[str] = mapped_column(default="admit")


class Diagnosis(Imported, Voidable, Base):
    """A coded diagnosis of an encounter (ICD-10 by default; other systems kept as given)."""

    __tablename__ = "diagnoses"
    __table_args__ = (
        void_check(),
        one_of("rank", ("primary", "secondary")),
        _patient_time("diagnoses", "diagnosed_at"),
        Index("ix_diagnoses_code", "code_system", "code"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    code_system: Mapped[str] = mapped_column(default="ICD-10")
    code: Mapped[str]
    description: Mapped[str]
    rank: Mapped[str] = mapped_column(default="primary")
    diagnosed_at: Mapped[dt.datetime]
    diagnosed_by_id: Mapped[int | None] = fk("users.id")


class Allergy(Imported, Voidable, Base):
    """A recorded allergy or intolerance."""

    __tablename__ = "allergies"
    __table_args__ = (
        void_check(),
        one_of("severity", ("mild", "moderate", "severe", "unknown")),
        one_of("status", ("active", "inactive", "refuted")),
        _patient_time("allergies", "noted_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    substance: Mapped[str]
    substance_code: Mapped[str | None]
    reaction: Mapped[str | None]
    severity: Mapped[str] = mapped_column(default="unknown")
    status: Mapped[str] = mapped_column(default="active")
    noted_at: Mapped[dt.datetime]


class Problem(Imported, Voidable, Base):
    """Problem-list entry: a chronic or active condition followed over time."""

    __tablename__ = "problems"
    __table_args__ = (
        void_check(),
        one_of("status", ("active", "resolved", "inactive")),
        _patient_time("problems", "onset_date"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    code_system: Mapped[str] = mapped_column(default="ICD-10")
    code: Mapped[str]
    description: Mapped[str]
    onset_date: Mapped[dt.date | None]
    resolved_date: Mapped[dt.date | None]
    status: Mapped[str] = mapped_column(default="active")


class Observation(Imported, Voidable, Base):
    """A vital sign or lab result with unit, reference range and abnormal flag."""

    __tablename__ = "observations"
    __table_args__ = (
        void_check(),
        one_of("abnormal_flag", ABNORMAL_FLAGS),
        one_of("category", ("vital", "lab", "survey", "other")),
        _patient_time("observations", "observed_at"),
        Index("ix_observations_patient_code_time", "patient_id", "code", "observed_at"),
        Index(
            "ix_observations_unacknowledged",
            "observed_at",
            postgresql_where="abnormal_flag IN ('H','L','HH','LL','A') AND acknowledged_at IS NULL",
        ),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    category: Mapped[str] = mapped_column(default="lab")
    code_system: Mapped[str] = mapped_column(default="LOINC")
    code: Mapped[str]
    name: Mapped[str]
    value_num: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    value_text: Mapped[str | None]
    unit: Mapped[str | None]
    ref_low: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    ref_high: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    abnormal_flag: Mapped[str | None]
    observed_at: Mapped[dt.datetime]
    recorded_by_id: Mapped[int | None] = fk("users.id")
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by_id: Mapped[int | None] = fk("users.id")
    # A laboratory's result status (HL7 OBX-11: F final, P preliminary, C corrected), the
    # range as the lab wrote it ("<200", "Negative"), and the earlier result a correction
    # replaces (that row is voided, never deleted).
    result_status: Mapped[str | None]
    ref_text: Mapped[str | None]
    corrects_id: Mapped[int | None] = fk("observations.id", index=True)


class ClinicalNote(Voidable, Base):
    """A clinical note; its text is stored encrypted."""

    __tablename__ = "clinical_notes"
    __table_args__ = (
        void_check(),
        one_of("status", ("draft", "signed")),
        _patient_time("clinical_notes", "written_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    author_id: Mapped[int | None] = fk("users.id")
    note_type: Mapped[str] = mapped_column(default="progress")
    title: Mapped[str]
    # Plain text, or (is_soap) a JSON object of the four SOAP sections, encrypted either way.
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)
    is_soap: Mapped[bool] = mapped_column(default=False, server_default="false")
    written_at: Mapped[dt.datetime]
    # A signed note is never edited again; corrections are addenda pointing at it.
    status: Mapped[str] = mapped_column(default="draft", server_default="signed")
    signed_at: Mapped[dt.datetime | None]
    signed_by_id: Mapped[int | None] = fk("users.id")
    amends_id: Mapped[int | None] = fk("clinical_notes.id", index=True)


class Attachment(Voidable, Base):
    """An attached document (scan, report); the bytes are stored encrypted."""

    __tablename__ = "attachments"
    __table_args__ = (void_check(), _patient_time("attachments", "uploaded_at"))

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id")
    filename: Mapped[str]
    content_type: Mapped[str]
    size_bytes: Mapped[int]
    sha256: Mapped[str]
    content_enc: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class Order(Voidable, Base):
    """A clinical order (lab, imaging, procedure, medication, nursing)."""

    __tablename__ = "orders"
    __table_args__ = (
        void_check(),
        one_of("order_type", ORDER_TYPES),
        one_of("status", ORDER_STATUSES),
        _patient_time("orders", "ordered_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    order_type: Mapped[str]
    code: Mapped[str]
    description: Mapped[str]
    status: Mapped[str] = mapped_column(default="ordered")
    ordered_by_id: Mapped[int | None] = fk("users.id")
    ordered_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    price_item_code: Mapped[str | None]
    cancel_reason: Mapped[str | None]


class Procedure(Imported, Voidable, Base):
    """A performed procedure, optionally fulfilling an order."""

    __tablename__ = "procedures"
    __table_args__ = (void_check(), _patient_time("procedures", "performed_at"))

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    order_id: Mapped[int | None] = fk("orders.id")
    code_system: Mapped[str] = mapped_column(default="ICD-9-CM-3")
    code: Mapped[str]
    description: Mapped[str]
    performed_at: Mapped[dt.datetime]
    performer_id: Mapped[int | None] = fk("users.id")


class Prescription(Imported, Voidable, Base):
    """A prescription: drug, dose, route, frequency and duration."""

    __tablename__ = "prescriptions"
    __table_args__ = (
        void_check(),
        one_of("status", ("active", "completed", "stopped", "cancelled")),
        _patient_time("prescriptions", "prescribed_at"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id", index=True)
    prescriber_id: Mapped[int | None] = fk("users.id")
    drug_code: Mapped[str]
    drug_name: Mapped[str]
    dose: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    dose_unit: Mapped[str]
    route: Mapped[str]  # oral, iv, im, sc, inhaled, topical
    frequency: Mapped[str]  # qd, bid, tid, qid, qn, prn
    duration_days: Mapped[int]
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    refills: Mapped[int] = mapped_column(default=0, server_default="0")
    prescribed_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(default="active")
    online: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Prescribed despite a recorded allergy: the prescriber's reason, kept with the row.
    allergy_override_reason: Mapped[str | None]
    stop_reason: Mapped[str | None]


class TreatmentPlan(Imported, Voidable, Base):
    """A treatment plan with goals; follow-ups hang off it."""

    __tablename__ = "treatment_plans"
    __table_args__ = (
        void_check(),
        one_of("status", ("active", "completed", "cancelled")),
        _patient_time("treatment_plans", "start_date"),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    encounter_id: Mapped[int | None] = fk("encounters.id")
    author_id: Mapped[int | None] = fk("users.id")
    title: Mapped[str]
    goals: Mapped[str | None]
    start_date: Mapped[dt.date]
    end_date: Mapped[dt.date | None]
    status: Mapped[str] = mapped_column(default="active")


class FollowUp(Voidable, Base):
    """A scheduled follow-up of a treatment plan."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        void_check(),
        one_of("status", ("due", "booked", "done", "missed", "cancelled")),
        _patient_time("follow_ups", "due_date"),
    )

    id: Mapped[int] = pk()
    plan_id: Mapped[int] = fk("treatment_plans.id", nullable=False, index=True)
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    due_date: Mapped[dt.date]
    description: Mapped[str]
    status: Mapped[str] = mapped_column(default="due")
    appointment_id: Mapped[int | None] = fk("appointments.id")
    completed_at: Mapped[dt.datetime | None]


class ClinicalCode(Base):
    """A code of a clinical code system (ICD-10 by default; any imported table fits)."""

    __tablename__ = "clinical_codes"
    __table_args__ = (
        UniqueConstraint("code_system", "code"),
        Index("ix_clinical_codes_code_prefix", "code_system", text("upper(code) text_pattern_ops")),
    )

    id: Mapped[int] = pk()
    code_system: Mapped[str]
    code: Mapped[str]
    title_en: Mapped[str | None]
    title_zh: Mapped[str | None]
    parent_code: Mapped[str | None]
    is_leaf: Mapped[bool] = mapped_column(default=True, server_default="true")
    # Lower-cased code, titles and pinyin initials of the Chinese title, for one search box.
    search_text: Mapped[str]
    source: Mapped[str]  # "who-icd10", or "import:<file name>"
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
