"""Patients: identity, demographics (sensitive ones encrypted), merges and edit history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, Index, LargeBinary, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Voidable, fk, one_of, pk, void_check

SEXES = ("M", "F", "U")
ID_TYPES = ("resident_id", "passport", "none")
INSURANCE_TYPES = (
    "urban_employee",  # 城镇职工基本医疗保险
    "urban_rural_resident",  # 城乡居民基本医疗保险
    "commercial",  # 商业保险
    "public",  # 公费医疗
    "self_pay",  # 自费
)
BLOOD_TYPES = ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-", "unknown")


class Patient(Voidable, Base):
    """One person known to the hospital, keyed by a Luhn-checked MRN.

    National ID, phone, address and emergency contact are stored only as AES-GCM
    ciphertext (``*_enc``); exact-match search goes through keyed blind indexes (``*_bidx``).
    """

    __tablename__ = "patients"
    __table_args__ = (
        void_check(),
        one_of("sex", SEXES),
        one_of("id_type", ID_TYPES),
        one_of("insurance_type", INSURANCE_TYPES),
        one_of("blood_type", BLOOD_TYPES),
        Index(
            "ix_patients_full_name_prefix",
            "full_name",
            postgresql_ops={"full_name": "text_pattern_ops"},
        ),
        Index(
            "ix_patients_name_initials",
            "name_initials",
            postgresql_ops={"name_initials": "text_pattern_ops"},
        ),
        Index("ix_patients_birth_date", "birth_date"),
        Index("ix_patients_national_id_bidx", "national_id_bidx"),
        Index("ix_patients_phone_bidx", "phone_bidx"),
        Index("ix_patients_name_phone4_bidx", "name_phone4_bidx"),
        Index("ix_patients_mother", "mother_id", postgresql_where="mother_id IS NOT NULL"),
        Index(
            "uq_patients_national_id_live",
            "national_id_bidx",
            unique=True,
            postgresql_where=(
                "national_id_bidx IS NOT NULL AND NOT voided AND merged_into_id IS NULL"
            ),
        ),
    )

    id: Mapped[int] = pk()
    mrn: Mapped[str] = mapped_column(unique=True)
    family_name: Mapped[str]
    given_name: Mapped[str]
    full_name: Mapped[str]
    name_initials: Mapped[str | None]  # pinyin initials: 张三 -> zs
    sex: Mapped[str]
    birth_date: Mapped[dt.date | None]
    death_date: Mapped[dt.date | None]
    id_type: Mapped[str] = mapped_column(default="resident_id")
    national_id_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    national_id_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    name_phone4_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    emergency_contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    nationality: Mapped[str] = mapped_column(default="CN", server_default="CN")
    insurance_type: Mapped[str] = mapped_column(default="self_pay")
    insurance_number: Mapped[str | None]
    blood_type: Mapped[str] = mapped_column(default="unknown", server_default="unknown")
    is_unidentified: Mapped[bool] = mapped_column(default=False, server_default="false")
    temporary_label: Mapped[str | None]  # e.g. 无名氏-急诊-0042 until identified
    mother_id: Mapped[int | None] = fk("patients.id")
    merged_into_id: Mapped[int | None] = fk("patients.id")
    merged_at: Mapped[dt.datetime | None]
    registered_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PatientChange(Base):
    """Edit history of a patient: which fields changed, by whom, when (no sensitive values)."""

    __tablename__ = "patient_changes"
    __table_args__ = (Index("ix_patient_changes_patient_time", "patient_id", "changed_at"),)

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    changed_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    changed_by_id: Mapped[int | None] = fk("users.id")
    fields: Mapped[list[Any]]
    before: Mapped[dict[str, Any] | None]  # non-sensitive previous values only
    reason: Mapped[str | None]


class PatientMerge(Base):
    """An audited merge of a duplicate into a surviving record, undoable from ``moved``."""

    __tablename__ = "patient_merges"

    id: Mapped[int] = pk()
    survivor_id: Mapped[int] = fk("patients.id", nullable=False, index=True)
    merged_id: Mapped[int] = fk("patients.id", nullable=False, index=True)
    merged_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    merged_by_id: Mapped[int | None] = fk("users.id")
    reason: Mapped[str | None]
    moved: Mapped[dict[str, Any]]  # table -> list of row ids moved to the survivor
    undone_at: Mapped[dt.datetime | None]
    undone_by_id: Mapped[int | None] = fk("users.id")
    undo_reason: Mapped[str | None]


class PatientDistinctPair(Base):
    """Two records a registrar reviewed and found to be different people (not duplicates)."""

    __tablename__ = "patient_distinct_pairs"
    __table_args__ = (
        UniqueConstraint("low_id", "high_id"),
        CheckConstraint("low_id < high_id", name="ordered_pair"),
    )

    id: Mapped[int] = pk()
    low_id: Mapped[int] = fk("patients.id", nullable=False)
    high_id: Mapped[int] = fk("patients.id", nullable=False, index=True)
    decided_by_id: Mapped[int | None] = fk("users.id")
    decided_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    reason: Mapped[str | None]


class PatientIdentifier(Base):
    """Other identifiers (passport, foreign SSN, source-system ids from imports)."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (Index("ix_patient_identifiers_lookup", "system", "value_bidx"),)

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False, index=True)
    system: Mapped[str]
    value_enc: Mapped[bytes] = mapped_column(LargeBinary)
    value_bidx: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
