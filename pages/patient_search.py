"""Find a patient with one box (MRN, ID, mobile, name, initials, name+phone4); show details."""

import contextlib

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from cims.db import session_scope
from cims.patients.search import search_patients
from cims.patients.service import get_patient
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.i18n import tr

HITS = "patient_search_hits"

actor = page_guard(Privilege.VIEW_PATIENTS)
st.title(tr("patient_search.title"))

with st.form("patient_search"):
    left, right = st.columns([3, 1])
    query = left.text_input(tr("patient_search.query"), key="search_query")
    birth_date = right.date_input(tr("patient_search.birth_date"), value=None, key="search_birth")
    submitted = st.form_submit_button(tr("patient_search.submit"), type="primary")
if submitted:
    with session_scope() as db:
        st.session_state[HITS] = search_patients(
            session=db, actor=actor, query=query, birth_date=birth_date
        )

hits = st.session_state.get(HITS)
if hits is not None and not hits:
    st.info(tr("patient_search.none"))
if hits:
    st.dataframe(
        pd.DataFrame(
            {
                tr("patient_field.mrn"): [h.mrn for h in hits],
                tr("patient_field.full_name"): [h.full_name for h in hits],
                tr("patient_field.sex"): [tr(f"sex.{h.sex}") for h in hits],
                tr("patient_field.birth_date"): [h.birth_date for h in hits],
                tr("patient_field.national_id"): [h.national_id for h in hits],
                tr("patient_field.mobile"): [h.phone for h in hits],
            }
        ),
        hide_index=True,
    )
    by_id = {h.patient_id: h for h in hits}
    chosen = st.selectbox(
        tr("patient_search.choose"),
        [None, *by_id],
        format_func=lambda pid: "—" if pid is None else f"{by_id[pid].mrn} {by_id[pid].full_name}",
        key="search_choice",
    )
    if chosen is not None:
        with session_scope() as db:
            view = get_patient(session=db, actor=actor, patient_id=chosen)
        if view.masked:
            st.caption(tr("patient_search.masked"))
        contact = view.emergency_contact
        details = {
            "patient_field.mrn": view.mrn,
            "patient_field.full_name": view.full_name,
            "patient_field.sex": tr(f"sex.{view.sex}"),
            "patient_field.birth_date": view.birth_date.isoformat() if view.birth_date else "—",
            "patient_field.id_type": tr(f"id_type.{view.id_type}"),
            "patient_field.national_id": view.national_id or "—",
            "patient_field.mobile": view.phone or "—",
            "patient_field.address": view.address or "—",
            "patient_field.contact_name": " ".join(
                v for v in (contact.get("name"), contact.get("phone")) if v
            )
            or "—",
            "patient_field.insurance_type": tr(f"insurance.{view.insurance_type}"),
            "patient_field.blood_type": tr("blood.unknown")
            if view.blood_type == "unknown"
            else view.blood_type,
        }
        st.table(pd.DataFrame({"": [tr(k) for k in details], " ": list(details.values())}))
        if actor.can(Privilege.EDIT_DEMOGRAPHICS):
            # A link needs the app's navigation; a page run on its own (AppTest) has none.
            with contextlib.suppress(StreamlitPageNotFoundError):
                st.page_link(
                    "pages/patient_edit.py", label=tr("patient_search.edit"),
                    icon=":material/edit:", query_params={"patient": str(view.id)},
                )  # fmt: skip
