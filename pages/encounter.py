"""Encounter: the doctor opens or resumes a visit and charts it tab by tab."""

import contextlib

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from cims.appointments.service import list_my_clinic
from cims.clock import local_today, to_local
from cims.db import session_scope
from cims.records.encounters import (
    create_encounter,
    list_clinical_departments,
    list_open_encounters,
)
from cims.records.models import ENCOUNTER_TYPES
from cims.security.rbac import AccessDenied, Privilege
from ui.auth import page_guard
from ui.encounter_tabs import close, common, diagnoses, orders, plan, prescriptions
from ui.errors import run_safely
from ui.format import hhmm, localised, when
from ui.i18n import tr

actor = page_guard(Privilege.WRITE_CLINICAL)
today = local_today()
TABS = (
    ("encounter.tab_diagnoses", diagnoses.render),
    ("encounter.tab_prescriptions", prescriptions.render),
    ("encounter.tab_orders", orders.render),
    ("encounter.tab_plan", plan.render),
    ("encounter.tab_close", close.render),
)
CURRENT = "encounter_id"


def chosen_patient() -> tuple[int, int | None] | None:
    """The patient (from ?patient=, the session, or today's clinic) and their open booking."""
    with session_scope() as db:
        clinic = list_my_clinic(session=db, actor=actor, day=today)
    given = st.query_params.get("patient") or st.session_state.get("patient_id")
    if given is not None and str(given).isdigit():
        patient_id = int(given)
    elif clinic:
        labels = {
            r.patient_id: f"{hhmm(r.scheduled_at)} · {r.patient_name} · {r.mrn}" for r in clinic
        }
        patient_id = st.selectbox(
            tr("encounter.choose_patient"), list(labels), format_func=labels.__getitem__,
            key="enc_patient",
        )  # fmt: skip
    else:
        st.info(tr("encounter.no_patient"))
        return None
    waiting = ("booked", "checked_in")
    booking = next(
        (r.appointment_id for r in clinic if r.patient_id == patient_id and r.status in waiting),
        None,
    )
    return patient_id, booking


def start_form(patient_id: int, appointment_id: int | None, departments: dict[int, str]) -> None:
    """Type, department and chief complaint; opening the encounter brings the patient into care."""
    types = common.labels("encounter.type_", ENCOUNTER_TYPES)
    with st.form("start_encounter"):
        st.subheader(tr("encounter.start_heading"))
        kind = st.selectbox(
            tr("encounter.type"), ENCOUNTER_TYPES, format_func=types.__getitem__, key="enc_type"
        )
        department = st.selectbox(
            tr("encounter.department"), list(departments), format_func=departments.__getitem__,
            key="enc_department",
        )  # fmt: skip
        complaint = st.text_input(tr("encounter.complaint"), key="enc_complaint")
        submitted = st.form_submit_button(tr("encounter.start"), type="primary")
    if submitted:

        def start() -> None:
            with session_scope() as db:
                encounter = create_encounter(
                    session=db, actor=actor, patient_id=patient_id, encounter_type=kind,
                    department_id=department, chief_complaint=complaint,
                    appointment_id=appointment_id,
                )  # fmt: skip
                st.session_state[CURRENT] = encounter.id

        common.act(start, "encounter.started")


def render() -> None:
    """Patient, then their open encounter (or the start form), then the charting tabs."""
    chosen = chosen_patient()
    if chosen is None:
        return
    patient_id, appointment_id = chosen
    # A link needs the app's navigation; a page run on its own (AppTest) has none.
    with contextlib.suppress(StreamlitPageNotFoundError):
        st.page_link(
            "pages/patient_summary.py", label=tr("encounter.to_summary"),
            icon=":material/clinical_notes:", query_params={"patient": str(patient_id)},
        )  # fmt: skip
    with session_scope() as db:
        departments = {
            d.id: localised(d.name_zh, d.name_en)
            for d in list_clinical_departments(session=db, actor=actor)
        }
    try:
        with session_scope() as db:
            open_now = list_open_encounters(session=db, actor=actor, patient_id=patient_id)
    except AccessDenied:
        st.info(tr("encounter.not_in_care"))
        open_now = []
    if not open_now:
        start_form(patient_id, appointment_id, departments)
        return
    choices = {
        e.id: f"{when(to_local(e.started_at))} · {e.chief_complaint or ''}" for e in open_now
    }
    ids = list(choices)
    remembered = st.session_state.get(CURRENT)
    encounter_id = st.selectbox(
        tr("encounter.choose_encounter"), ids, index=ids.index(remembered) if remembered in ids
        else 0, format_func=choices.__getitem__,
    )  # fmt: skip
    st.session_state[CURRENT] = encounter_id
    with st.expander(tr("encounter.new")):
        start_form(patient_id, appointment_id, departments)
    encounter = next(e for e in open_now if e.id == encounter_id)
    types = common.labels("encounter.type_", ENCOUNTER_TYPES)
    st.caption(
        tr(
            "encounter.header", type=types[encounter.encounter_type],
            department=departments.get(encounter.department_id, ""),
            start=when(to_local(encounter.started_at)), complaint=encounter.chief_complaint or "",
        )
    )  # fmt: skip
    for tab, (_, draw) in zip(st.tabs([tr(key) for key, _ in TABS]), TABS, strict=True):
        with tab:
            draw(actor, patient_id, encounter_id)


common.forget()
st.title(tr("encounter.title"))
common.show_flash()
run_safely(render)
