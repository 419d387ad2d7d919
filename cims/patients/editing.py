"""The edit form's view of a patient, and saving only what the user changed.

A nurse edits demographics but may not see ID, mobile or address in full: the form
shows those masked, and the page sends back only the fields the user actually changed.
The unchanged plain values are filled in here, server-side, so they never reach the page.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from cims.patients.models import Patient
from cims.patients.schemas import UNIDENTIFIED_FAMILY_NAME, InvalidPatient, PatientInput
from cims.patients.service import PatientView, build_view, update_demographics
from cims.security import audit
from cims.security.crypto import FieldCipher, load_cipher
from cims.security.rbac import Actor, Privilege, requires

# The fields of PatientInput a demographic edit may change.
EDITABLE: Final = (
    "family_name",
    "given_name",
    "sex",
    "birth_date",
    "id_type",
    "national_id",
    "nationality",
    "mobile",
    "address",
    "emergency_contact_name",
    "emergency_contact_relation",
    "emergency_contact_phone",
    "insurance_type",
    "insurance_number",
    "blood_type",
)
MASKABLE: Final = frozenset(
    {"national_id", "mobile", "address", "emergency_contact_phone", "insurance_number"}
)


@dataclass(frozen=True)
class EditForm:
    """A patient's current demographics as the edit form shows them (masked per role)."""

    patient_id: int
    mrn: str
    full_name: str
    values: PatientInput
    masked: frozenset[str]  # fields shown masked: leave them as shown to keep them
    is_unidentified: bool
    live: bool


def _plain_input(cipher: FieldCipher, patient: Patient) -> PatientInput:
    def plain(column: str, blob: bytes | None) -> str:
        return cipher.decrypt_text(blob, table="patients", column=column, row_id=patient.id)

    contact: dict[str, str] = json.loads(
        plain("emergency_contact", patient.emergency_contact_enc) or "{}"
    )
    # An unnamed emergency record keeps its temporary label until a name is entered.
    unnamed = patient.is_unidentified and patient.family_name == UNIDENTIFIED_FAMILY_NAME
    return PatientInput(
        family_name="" if unnamed else patient.family_name,
        given_name="" if unnamed else patient.given_name,
        sex=patient.sex,
        birth_date=patient.birth_date,
        id_type=patient.id_type,
        national_id=plain("national_id", patient.national_id_enc),
        nationality=patient.nationality,
        mobile=plain("phone", patient.phone_enc),
        address=plain("address", patient.address_enc),
        emergency_contact_name=contact.get("name", ""),
        emergency_contact_relation=contact.get("relation", ""),
        emergency_contact_phone=contact.get("phone", ""),
        insurance_type=patient.insurance_type,
        insurance_number=patient.insurance_number or "",
        blood_type=patient.blood_type,
        is_unidentified=patient.is_unidentified,
    )


def _patient_or_raise(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise InvalidPatient(["patient.not_found"])
    return patient


@requires(Privilege.EDIT_DEMOGRAPHICS)
def get_edit_form(*, session: Session, actor: Actor, patient_id: int) -> EditForm:
    """The values to prefill the edit form with, masked unless the role may see them."""
    patient = _patient_or_raise(session, patient_id)
    cipher = load_cipher(session)
    values = _plain_input(cipher, patient)
    view = build_view(cipher, actor, patient)
    masked: frozenset[str] = frozenset()
    if view.masked:
        masked = MASKABLE
        values = values.model_copy(
            update={
                "national_id": view.national_id,
                "mobile": view.phone,
                "address": view.address,
                "emergency_contact_phone": view.emergency_contact.get("phone", ""),
                "insurance_number": view.insurance_number,
            }
        )
    audit.record(
        session,
        actor,
        "patients.view",
        patient_id=patient.id,
        object_type="patient",
        object_id=patient.id,
        detail={"masked": view.masked, "for": "edit"},
    )
    return EditForm(
        patient_id=patient.id,
        mrn=patient.mrn,
        full_name=patient.full_name,
        values=values,
        masked=masked,
        is_unidentified=patient.is_unidentified,
        live=not patient.voided and patient.merged_into_id is None,
    )


def changed_fields(shown: PatientInput, submitted: Mapping[str, Any]) -> dict[str, Any]:
    """The submitted values that differ from what the form showed (strings compared trimmed)."""

    def norm(value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    return {
        name: value
        for name, value in submitted.items()
        if name in EDITABLE and norm(value) != norm(getattr(shown, name))
    }


@requires(Privilege.EDIT_DEMOGRAPHICS)
def save_changes(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    changes: Mapping[str, Any],
    reason: str | None = None,
    today: dt.date | None = None,
) -> PatientView:
    """Apply only ``changes`` (field -> new value) over the stored values; validated, audited."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValueError(f"not editable: {unknown}")
    patient = _patient_or_raise(session, patient_id)
    current = _plain_input(load_cipher(session), patient)
    data = PatientInput(**{**current.model_dump(), **changes})
    return update_demographics(
        session=session, actor=actor, patient_id=patient_id, data=data, reason=reason, today=today
    )
