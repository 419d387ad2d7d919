"""Registering, reading, editing and voiding patients (sensitive fields encrypted)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.clock import local_today
from cims.patients.duplicates import WARN_SCORE, DuplicateCandidate, score_candidates
from cims.patients.models import Patient, PatientChange
from cims.patients.mrn import make_mrn
from cims.patients.pinyin import pinyin_initials
from cims.patients.resident_id import mask_mobile, mask_resident_id
from cims.patients.schemas import UNIDENTIFIED_FAMILY_NAME, InvalidPatient, PatientInput
from cims.security import audit
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.rbac import Actor, Privilege, requires

__all__ = [
    "InvalidPatient",
    "PatientView",
    "PossibleDuplicate",
    "get_patient",
    "mask_address",
    "register_patient",
    "update_demographics",
    "void_patient",
]

# Encrypted columns: an edit records that they changed, never their old values.
SENSITIVE_FIELDS: Final = frozenset(
    {"national_id", "mobile", "address", "emergency_contact", "insurance_number"}
)
_PLAIN_FIELDS: Final = (
    "family_name",
    "given_name",
    "sex",
    "birth_date",
    "id_type",
    "nationality",
    "insurance_type",
    "blood_type",
)


class PossibleDuplicate(Exception):
    """Registration paused: these existing patients look like the same person."""

    def __init__(self, candidates: list[DuplicateCandidate]) -> None:
        self.candidates = candidates
        super().__init__(f"{len(candidates)} possible duplicate(s)")


@dataclass(frozen=True)
class PatientView:
    """A patient as shown on screen; ID, phone and address masked unless privileged."""

    id: int
    mrn: str
    full_name: str
    sex: str
    birth_date: dt.date | None
    id_type: str
    national_id: str
    phone: str
    address: str
    emergency_contact: dict[str, str]
    nationality: str
    insurance_type: str
    insurance_number: str
    blood_type: str
    is_unidentified: bool
    temporary_label: str | None
    mother_id: int | None
    merged_into_id: int | None
    voided: bool
    masked: bool


def mask_address(value: str) -> str:
    """Keep the first six characters (province and city), hide the rest."""
    return value if len(value) <= 6 else value[:6] + "****"


def mask_document(value: str, id_type: str) -> str:
    """Mask a resident ID or passport number for display."""
    if not value:
        return ""
    return mask_resident_id(value) if id_type == "resident_id" else value[:2] + "*" * 6


def _decrypt(cipher: FieldCipher, patient: Patient, column: str, blob: bytes | None) -> str:
    return cipher.decrypt_text(blob, table="patients", column=column, row_id=patient.id)


def _plain_values(cipher: FieldCipher, patient: Patient) -> dict[str, str]:
    return {
        "national_id": _decrypt(cipher, patient, "national_id", patient.national_id_enc),
        "mobile": _decrypt(cipher, patient, "phone", patient.phone_enc),
        "address": _decrypt(cipher, patient, "address", patient.address_enc),
        "emergency_contact": _decrypt(
            cipher, patient, "emergency_contact", patient.emergency_contact_enc
        ),
    }


def build_view(cipher: FieldCipher, actor: Actor, patient: Patient) -> PatientView:
    """Decrypt a patient and mask what the actor may not see in full."""
    plain = _plain_values(cipher, patient)
    full = actor.can(Privilege.VIEW_SENSITIVE_IDS)
    contact: dict[str, str] = json.loads(plain["emergency_contact"] or "{}")
    if not full and contact.get("phone"):
        contact["phone"] = mask_mobile(contact["phone"])
    return PatientView(
        id=patient.id,
        mrn=patient.mrn,
        full_name=patient.full_name,
        sex=patient.sex,
        birth_date=patient.birth_date,
        id_type=patient.id_type,
        national_id=plain["national_id"]
        if full
        else mask_document(plain["national_id"], patient.id_type),
        phone=plain["mobile"] if full else mask_mobile(plain["mobile"]) if plain["mobile"] else "",
        address=plain["address"] if full else mask_address(plain["address"]),
        emergency_contact=contact,
        nationality=patient.nationality,
        insurance_type=patient.insurance_type,
        insurance_number=(patient.insurance_number or "")
        if full
        else mask_document(patient.insurance_number or "", "other"),
        blood_type=patient.blood_type,
        is_unidentified=patient.is_unidentified,
        temporary_label=patient.temporary_label,
        mother_id=patient.mother_id,
        merged_into_id=patient.merged_into_id,
        voided=patient.voided,
        masked=not full,
    )


def _mother_id(session: Session, mrn: str) -> int | None:
    return session.scalar(
        select(Patient.id).where(
            Patient.mrn == mrn.strip(), Patient.voided.is_(False), Patient.merged_into_id.is_(None)
        )
    )


def _next_temporary_label(session: Session) -> str:
    # Serialise label numbering: two emergencies registered at once must not share one.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('cims.temporary_label'))"))
    count = session.scalar(select(func.count()).where(Patient.temporary_label.is_not(None)))
    return f"{UNIDENTIFIED_FAMILY_NAME}-急诊-{(count or 0) + 1:04d}"


def _apply(cipher: FieldCipher, patient: Patient, data: PatientInput) -> None:
    """Write the input's values onto the row: encrypted, blind-indexed, initials derived."""
    number = data.document_number or None
    if patient.is_unidentified and not (data.family_name or data.given_name):
        patient.family_name, patient.given_name = UNIDENTIFIED_FAMILY_NAME, ""
        patient.full_name = patient.temporary_label or UNIDENTIFIED_FAMILY_NAME
    else:
        patient.family_name, patient.given_name = data.family_name, data.given_name
        patient.full_name = data.full_name
    patient.name_initials = pinyin_initials([patient.full_name])[0]
    patient.sex = data.sex
    patient.birth_date = data.birth_date
    patient.id_type = data.id_type if number else "none"
    patient.nationality = data.nationality
    patient.insurance_type = data.insurance_type
    patient.insurance_number = data.insurance_number or None
    patient.blood_type = data.blood_type

    def seal(value: str | None, column: str) -> bytes | None:
        if not value:
            return None
        return cipher.encrypt(value, table="patients", column=column, row_id=patient.id)

    def index(value: str | None, purpose: str) -> bytes | None:
        return cipher.blind_index(value, purpose=purpose) if value else None

    mobile = data.mobile or None
    patient.national_id_enc = seal(number, "national_id")
    patient.national_id_bidx = index(number, "national_id")
    patient.phone_enc = seal(mobile, "phone")
    patient.phone_bidx = index(mobile, "phone")
    patient.name_phone4_bidx = (
        index(patient.full_name + mobile[-4:], "name_phone4") if mobile else None
    )
    patient.address_enc = seal(data.address, "address")
    patient.emergency_contact_enc = seal(data.emergency_contact_json, "emergency_contact")


def _refuse_taken_id(
    session: Session, cipher: FieldCipher, data: PatientInput, own_id: int | None
) -> None:
    if not data.document_number:
        return
    query = select(Patient.id).where(
        Patient.national_id_bidx == cipher.blind_index(data.document_number, purpose="national_id"),
        Patient.voided.is_(False),
        Patient.merged_into_id.is_(None),
    )
    if own_id is not None:
        query = query.where(Patient.id != own_id)
    if session.scalar(query.limit(1)) is not None:
        raise InvalidPatient(["patient.duplicate_id"])


@requires(Privilege.REGISTER_PATIENTS)
def register_patient(
    *,
    session: Session,
    actor: Actor,
    data: PatientInput,
    confirm_not_duplicate: bool = False,
    today: dt.date | None = None,
) -> PatientView:
    """Register a new patient; refuses bad input and a taken ID, warns of look-alikes."""
    problems = data.problems(today or local_today())
    mother_id = (
        _mother_id(session, data.mother_mrn) if data.is_newborn and data.mother_mrn else None
    )
    if data.is_newborn and data.mother_mrn and mother_id is None:
        problems.append("patient.mother_not_found")
    if problems:
        raise InvalidPatient(problems)
    cipher = load_cipher(session)
    _refuse_taken_id(session, cipher, data, None)
    candidates: list[DuplicateCandidate] = []
    if not data.is_unidentified:
        phone = cipher.blind_index(data.mobile, purpose="phone") if data.mobile else None
        candidates = [
            c
            for c in score_candidates(
                session, full_name=data.full_name, birth_date=data.birth_date, phone_bidx=phone
            )
            if c.score >= WARN_SCORE
        ]
        if candidates and not confirm_not_duplicate:
            raise PossibleDuplicate(candidates)
    # The id comes first: the MRN and every ciphertext's associated data are bound to it.
    new_id = int(session.scalar(text("SELECT nextval(pg_get_serial_sequence('patients', 'id'))")))
    patient = Patient(
        id=new_id,
        mrn=make_mrn(new_id),
        is_unidentified=data.is_unidentified,
        temporary_label=_next_temporary_label(session) if data.is_unidentified else None,
        mother_id=mother_id,
        registered_at=utcnow(),
        created_by_id=actor.user_id,
    )
    _apply(cipher, patient, data)
    session.add(patient)
    session.flush()
    audit.record(
        session,
        actor,
        "patients.register",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={
            "unidentified": data.is_unidentified,
            "newborn": data.is_newborn,
            "id_type": patient.id_type,
            "overrode_duplicates": [c.patient_id for c in candidates],
        },
    )
    return build_view(cipher, actor, patient)


def _patient_or_raise(session: Session, patient_id: int, *, lock: bool = False) -> Patient:
    patient = session.get(Patient, patient_id, with_for_update=lock)
    if patient is None:
        raise InvalidPatient(["patient.not_found"])
    return patient


@requires(Privilege.VIEW_PATIENTS)
def get_patient(*, session: Session, actor: Actor, patient_id: int) -> PatientView:
    """One patient's demographics, masked per role (an audited read)."""
    patient = _patient_or_raise(session, patient_id)
    view = build_view(load_cipher(session), actor, patient)
    audit.record(
        session,
        actor,
        "patients.view",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={"masked": view.masked},
    )
    return view


@requires(Privilege.EDIT_DEMOGRAPHICS)
def update_demographics(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    data: PatientInput,
    reason: str | None = None,
    today: dt.date | None = None,
) -> PatientView:
    """Replace a live patient's demographics; history keeps field names and plain old values."""
    patient = _patient_or_raise(session, patient_id, lock=True)
    if patient.voided or patient.merged_into_id is not None:
        raise InvalidPatient(["patient.not_live"])
    # Unidentified and newborn status is the record's, not the form's to change.
    mother = session.get(Patient, patient.mother_id) if patient.mother_id else None
    data = data.model_copy(
        update={
            "is_unidentified": patient.is_unidentified,
            "is_newborn": mother is not None,
            "mother_mrn": mother.mrn if mother else "",
        }
    )
    problems = data.problems(today or local_today())
    if problems:
        raise InvalidPatient(problems)
    cipher = load_cipher(session)
    _refuse_taken_id(session, cipher, data, patient.id)
    old_plain = _plain_values(cipher, patient)
    before: dict[str, Any] = {name: getattr(patient, name) for name in _PLAIN_FIELDS}
    old_insurance_number = patient.insurance_number
    _apply(cipher, patient, data)
    changed = [name for name in _PLAIN_FIELDS if getattr(patient, name) != before[name]]
    new_plain = _plain_values(cipher, patient)
    changed += [name for name in sorted(old_plain) if old_plain[name] != new_plain[name]]
    if patient.insurance_number != old_insurance_number:
        changed.append("insurance_number")
    if not changed:
        return build_view(cipher, actor, patient)
    patient.updated_by_id = actor.user_id
    plain_before = {
        name: (value.isoformat() if isinstance(value, dt.date) else value)
        for name, value in before.items()
        if name in changed
    }
    session.add(
        PatientChange(
            patient_id=patient.id,
            changed_by_id=actor.user_id,
            fields=changed,
            before=plain_before,
            reason=(reason or "").strip() or None,
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "patients.update_demographics",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={"fields": changed},
    )
    return build_view(cipher, actor, patient)


@requires(Privilege.EDIT_DEMOGRAPHICS)
def void_patient(*, session: Session, actor: Actor, patient_id: int, reason: str) -> None:
    """Void a registration made in error (never deleted; the reason is kept)."""
    if not reason.strip():
        raise InvalidPatient(["patient.reason_required"])
    patient = _patient_or_raise(session, patient_id, lock=True)
    if patient.voided:
        raise InvalidPatient(["patient.not_live"])
    patient.voided = True
    patient.voided_at = utcnow()
    patient.void_reason = reason.strip()
    patient.voided_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "patients.void",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
    )
