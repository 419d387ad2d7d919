"""The demographics widgets of the patient edit form, prefilled through session state."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import streamlit as st

from cims.clock import local_today
from cims.patients.models import BLOOD_TYPES, ID_TYPES, INSURANCE_TYPES, SEXES
from cims.patients.schemas import PatientInput
from ui.i18n import tr

# PatientInput field -> widget key suffix (the same suffixes as the registration page).
FIELD_KEYS: Final = {
    "family_name": "family",
    "given_name": "given",
    "sex": "sex",
    "birth_date": "birth",
    "id_type": "id_type",
    "national_id": "id",
    "nationality": "nationality",
    "mobile": "mobile",
    "address": "address",
    "emergency_contact_name": "contact",
    "emergency_contact_relation": "relation",
    "emergency_contact_phone": "contact_phone",
    "insurance_type": "insurance",
    "insurance_number": "insurance_no",
    "blood_type": "blood",
}


def option_labels(prefix: str, options: tuple[str, ...]) -> dict[str, str]:
    """Translated option labels, computed now (format_func may run outside this script)."""
    return {option: tr(f"{prefix}.{option}") for option in options}


def prefill(prefix: str, values: PatientInput) -> None:
    """Put ``values`` into the widgets' session state (call before drawing them)."""
    for name, key in FIELD_KEYS.items():
        st.session_state[f"{prefix}_{key}"] = getattr(values, name)


def demographics_fields(prefix: str) -> dict[str, Any]:
    """Draw the demographics widgets (inside the caller's form); returns field -> value."""
    sex_labels = option_labels("sex", SEXES)
    id_labels = option_labels("id_type", ID_TYPES)
    insurance_labels = option_labels("insurance", INSURANCE_TYPES)
    blood_labels = {b: tr("blood.unknown") if b == "unknown" else b for b in BLOOD_TYPES}

    def key(name: str) -> str:
        return f"{prefix}_{FIELD_KEYS[name]}"

    got: dict[str, Any] = {}
    a, b = st.columns(2)
    got["family_name"] = a.text_input(tr("patient_field.family_name"), key=key("family_name"))
    got["given_name"] = b.text_input(tr("patient_field.given_name"), key=key("given_name"))
    a, b = st.columns(2)
    got["sex"] = a.selectbox(
        tr("patient_field.sex"), SEXES, format_func=sex_labels.__getitem__, key=key("sex")
    )
    got["birth_date"] = b.date_input(
        tr("patient_field.birth_date"),
        min_value=dt.date(1900, 1, 1),
        max_value=local_today(),
        key=key("birth_date"),
    )
    a, b, c = st.columns([1, 2, 1])
    got["id_type"] = a.selectbox(
        tr("patient_field.id_type"), ID_TYPES, format_func=id_labels.__getitem__, key=key("id_type")
    )
    got["national_id"] = b.text_input(tr("patient_field.national_id"), key=key("national_id"))
    got["nationality"] = c.text_input(tr("patient_field.nationality"), key=key("nationality"))
    got["mobile"] = st.text_input(tr("patient_field.mobile"), key=key("mobile"))
    got["address"] = st.text_input(tr("patient_field.address"), key=key("address"))
    a, b, c = st.columns(3)
    got["emergency_contact_name"] = a.text_input(
        tr("patient_field.contact_name"), key=key("emergency_contact_name")
    )
    got["emergency_contact_relation"] = b.text_input(
        tr("patient_field.contact_relation"), key=key("emergency_contact_relation")
    )
    got["emergency_contact_phone"] = c.text_input(
        tr("patient_field.contact_phone"), key=key("emergency_contact_phone")
    )
    a, b, c = st.columns(3)
    got["insurance_type"] = a.selectbox(
        tr("patient_field.insurance_type"),
        INSURANCE_TYPES,
        format_func=insurance_labels.__getitem__,
        key=key("insurance_type"),
    )
    got["insurance_number"] = b.text_input(
        tr("patient_field.insurance_number"), key=key("insurance_number")
    )
    got["blood_type"] = c.selectbox(
        tr("patient_field.blood_type"),
        BLOOD_TYPES,
        format_func=blood_labels.__getitem__,
        key=key("blood_type"),
    )
    got["nationality"] = str(got["nationality"]).upper()
    return got
