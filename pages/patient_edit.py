"""Edit a patient's demographics (only changed fields are saved), see the history, void."""

import pandas as pd
import streamlit as st

from cims.db import session_scope
from cims.patients.editing import EditForm, changed_fields, get_edit_form, save_changes
from cims.patients.history import HistoryEntry, list_patient_changes
from cims.patients.schemas import InvalidPatient
from cims.patients.search import search_patients
from cims.patients.service import void_patient
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import plain, when
from ui.i18n import tr
from ui.patient_form import demographics_fields, prefill

PREFIX = "edit"
LOADED = "patient_edit_loaded"  # the patient id whose values the widgets hold
HITS = "patient_edit_hits"
FLASH = "patient_edit_flash"

actor = page_guard(Privilege.EDIT_DEMOGRAPHICS)
st.title(tr("patient_edit.title"))


def chosen_patient() -> int | None:
    """From the link (?patient=<id>) or a search box."""
    given = st.query_params.get("patient")
    if given is not None and str(given).isdigit():
        return int(given)
    with st.form("edit_find"):
        query = st.text_input(tr("patient_search.query"), key="edit_query")
        if st.form_submit_button(tr("patient_search.submit")):
            with session_scope() as db:
                hits = search_patients(session=db, actor=actor, query=query)
            st.session_state[HITS] = {h.patient_id: f"{h.mrn} {h.full_name}" for h in hits}
    hits: dict[int, str] = st.session_state.get(HITS, {})
    if not hits:
        return None
    labels = {0: "—", **hits}
    choice: int = st.selectbox(
        tr("patient_search.choose"), list(labels), format_func=labels.__getitem__, key="edit_choice"
    )
    return choice or None


def refused(refusal: InvalidPatient) -> None:
    for problem in refusal.problems:
        st.error(tr(problem))


def edit(form: EditForm) -> None:
    if st.session_state.get(LOADED) != form.patient_id:
        prefill(PREFIX, form.values)
        st.session_state["edit_reason"] = ""
        st.session_state[LOADED] = form.patient_id
    if form.masked:
        st.caption(tr("patient_edit.masked"))
    with st.form("patient_edit"):
        submitted = demographics_fields(PREFIX)
        reason = st.text_input(tr("patient_edit.reason"), key="edit_reason")
        save = st.form_submit_button(tr("patient_edit.save"), type="primary")
    if not save:
        return
    changes = changed_fields(form.values, submitted)
    if not changes:
        st.info(tr("patient_edit.nothing_changed"))
        return
    try:
        with session_scope() as db:
            save_changes(
                session=db, actor=actor, patient_id=form.patient_id, changes=changes, reason=reason
            )
    except InvalidPatient as refusal:
        refused(refusal)
        return
    st.session_state.pop(LOADED, None)  # refill the widgets from the saved record
    st.session_state[FLASH] = tr("patient_edit.saved")
    st.rerun()


def history_table(entries: list[HistoryEntry]) -> None:
    st.subheader(tr("patient_edit.history"))

    def fields(entry: HistoryEntry) -> str:
        return tr("patient_dups.separator").join(tr(f"patient_field.{n}") for n in entry.fields)

    def before(entry: HistoryEntry) -> str:
        return "; ".join(f"{tr(f'patient_field.{k}')}: {v}" for k, v in entry.before.items())

    st.dataframe(
        pd.DataFrame(
            {
                tr("patient_edit.col_when"): [when(e.at) for e in entries],
                tr("patient_edit.col_event"): [tr(f"patient_history.{e.event}") for e in entries],
                tr("patient_edit.col_by"): [e.by for e in entries],
                tr("patient_edit.col_fields"): [fields(e) or e.other_mrn for e in entries],
                tr("patient_edit.col_before"): [before(e) for e in entries],
                tr("patient_edit.col_reason"): [e.reason for e in entries],
            }
        ),
        hide_index=True,
        key="edit_history",
    )


def void_section(patient_id: int) -> None:
    st.subheader(tr("patient_edit.void"))
    with st.form("patient_void"):
        reason = st.text_input(tr("patient_edit.void_reason"), key="void_reason")
        confirmed = st.checkbox(tr("patient_edit.void_confirm"), key="void_confirm")
        void = st.form_submit_button(tr("patient_edit.void_submit"))
    if void and not confirmed:
        st.warning(tr("patient_edit.tick_to_confirm"))
    elif void:
        try:
            with session_scope() as db:
                void_patient(session=db, actor=actor, patient_id=patient_id, reason=reason)
        except InvalidPatient as refusal:
            refused(refusal)
            return
        st.session_state[FLASH] = tr("patient_edit.voided")
        st.rerun()


def render() -> None:
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    patient_id = chosen_patient()
    if patient_id is None:
        return
    try:
        with session_scope() as db:
            form = get_edit_form(session=db, actor=actor, patient_id=patient_id)
            entries = list_patient_changes(session=db, actor=actor, patient_id=patient_id)
    except InvalidPatient as refusal:
        refused(refusal)
        return
    st.subheader(f"{plain(form.full_name)} · {form.mrn}")
    if form.live:
        edit(form)
    else:
        st.warning(tr("patient.not_live"))
    history_table(entries)
    if form.live:
        void_section(patient_id)


run_safely(render)
