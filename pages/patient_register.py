"""Register a patient: identified, unidentified emergency, or newborn linked to the mother."""

import datetime as dt

import pandas as pd
import streamlit as st

from cims.clock import local_today
from cims.db import session_scope
from cims.patients.models import BLOOD_TYPES, ID_TYPES, INSURANCE_TYPES, SEXES
from cims.patients.schemas import InvalidPatient, PatientInput
from cims.patients.service import PossibleDuplicate, register_patient
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.i18n import tr

PENDING = "patient_register_pending"  # (input, candidates) awaiting "register anyway"

actor = page_guard(Privilege.REGISTER_PATIENTS)
st.title(tr("patient_register.title"))


def register(data: PatientInput, *, confirmed: bool) -> None:
    """One service call; problems, look-alikes or the new MRN become messages."""
    st.session_state.pop(PENDING, None)
    try:
        with session_scope() as db:
            view = register_patient(
                session=db, actor=actor, data=data, confirm_not_duplicate=confirmed
            )
    except InvalidPatient as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    except PossibleDuplicate as warning:
        st.session_state[PENDING] = (data, warning.candidates)
        return
    st.success(tr("patient_register.done", mrn=view.mrn))
    if view.temporary_label:
        st.info(tr("patient_register.temporary", label=view.temporary_label))


def labels(prefix: str, options: tuple[str, ...]) -> dict[str, str]:
    """Translated option labels, computed now (format_func may run outside this script)."""
    return {option: tr(f"{prefix}.{option}") for option in options}


SEX_LABELS = labels("sex", SEXES)
ID_LABELS = labels("id_type", ID_TYPES)
INSURANCE_LABELS = labels("insurance", INSURANCE_TYPES)
BLOOD_LABELS = {b: tr("blood.unknown") if b == "unknown" else b for b in BLOOD_TYPES}

left, right = st.columns(2)
unidentified = left.toggle(tr("patient_register.unidentified"), key="reg_unidentified")
newborn = right.toggle(tr("patient_register.newborn"), key="reg_newborn")
today = local_today()
with st.form("patient_register"):
    mother_mrn = st.text_input(tr("patient_field.mother_mrn"), key="reg_mother") if newborn else ""
    a, b = st.columns(2)
    family_name = a.text_input(tr("patient_field.family_name"), key="reg_family")
    given_name = b.text_input(tr("patient_field.given_name"), key="reg_given")
    a, b = st.columns(2)
    sex = a.selectbox(
        tr("patient_field.sex"), SEXES, format_func=SEX_LABELS.__getitem__, key="reg_sex"
    )
    birth_date = b.date_input(
        tr("patient_field.birth_date"),
        value=None,
        min_value=dt.date(1900, 1, 1),
        max_value=today,
        key="reg_birth",
    )
    a, b, c = st.columns([1, 2, 1])
    id_type = a.selectbox(
        tr("patient_field.id_type"),
        ID_TYPES,
        format_func=ID_LABELS.__getitem__,
        key="reg_id_type",
    )
    national_id = b.text_input(tr("patient_field.national_id"), key="reg_id")
    nationality = c.text_input(tr("patient_field.nationality"), value="CN", key="reg_nationality")
    mobile = st.text_input(tr("patient_field.mobile"), key="reg_mobile")
    address = st.text_input(tr("patient_field.address"), key="reg_address")
    a, b, c = st.columns(3)
    contact_name = a.text_input(tr("patient_field.contact_name"), key="reg_contact")
    contact_relation = b.text_input(tr("patient_field.contact_relation"), key="reg_relation")
    contact_phone = c.text_input(tr("patient_field.contact_phone"), key="reg_contact_phone")
    a, b, c = st.columns(3)
    insurance_type = a.selectbox(
        tr("patient_field.insurance_type"),
        INSURANCE_TYPES,
        index=INSURANCE_TYPES.index("self_pay"),
        format_func=INSURANCE_LABELS.__getitem__,
        key="reg_insurance",
    )
    insurance_number = b.text_input(tr("patient_field.insurance_number"), key="reg_insurance_no")
    blood_type = c.selectbox(
        tr("patient_field.blood_type"),
        BLOOD_TYPES,
        index=BLOOD_TYPES.index("unknown"),
        format_func=BLOOD_LABELS.__getitem__,
        key="reg_blood",
    )
    submitted = st.form_submit_button(tr("patient_register.submit"), type="primary")

if submitted:
    register(
        PatientInput(
            family_name=family_name,
            given_name=given_name,
            sex=sex,
            birth_date=birth_date,
            id_type=id_type,
            national_id=national_id,
            nationality=nationality.upper(),
            mobile=mobile,
            address=address,
            emergency_contact_name=contact_name,
            emergency_contact_relation=contact_relation,
            emergency_contact_phone=contact_phone,
            insurance_type=insurance_type,
            insurance_number=insurance_number,
            blood_type=blood_type,
            is_unidentified=unidentified,
            is_newborn=newborn,
            mother_mrn=mother_mrn,
        ),
        confirmed=False,
    )

pending = st.session_state.get(PENDING)
if pending:
    data, candidates = pending
    box = st.empty()  # cleared once the registrar decides
    with box.container():
        st.warning(tr("patient_register.duplicates"))
        st.dataframe(
            pd.DataFrame(
                {
                    tr("patient_field.mrn"): [c.mrn for c in candidates],
                    tr("patient_field.full_name"): [c.full_name for c in candidates],
                    tr("patient_field.sex"): [tr(f"sex.{c.sex}") for c in candidates],
                    tr("patient_field.birth_date"): [c.birth_date for c in candidates],
                    tr("patient_field.score"): [f"{c.score:.0%}" for c in candidates],
                    tr("patient_field.reasons"): [
                        "、".join(tr(f"duplicate_reason.{r}") for r in c.reasons)
                        for c in candidates
                    ],
                }
            ),
            hide_index=True,
        )
        anyway = st.button(tr("patient_register.register_anyway"), key="reg_anyway")
    if anyway:
        box.empty()
        register(data, confirmed=True)
