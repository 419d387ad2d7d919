"""Nurse's worklist: check in today's arrivals, take vitals, watch the ward."""

import streamlit as st

from cims.appointments.service import CheckInRefused, check_in_appointment
from cims.clock import local_today
from cims.db import session_scope
from cims.records.vitals import VITALS, InvalidVitals, record_vitals
from cims.records.worklist import Worklist, nurse_worklist
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import hhmm, localised, plain, when
from ui.i18n import tr

FLASH = "worklist_flash"
SAVED = "worklist_saved"  # the readings just recorded, shown after the rerun

actor = page_guard(Privilege.RECORD_VITALS, Privilege.CHECK_IN)
today = local_today()
st.title(tr("worklist.title"))
st.caption(tr("common.today", day=today.isoformat()))


def _check_in(work: Worklist) -> None:
    st.subheader(tr("worklist.to_check_in"))
    if not work.to_check_in:
        st.info(tr("worklist.none_to_check_in"))
    for row in work.to_check_in:
        text, button = st.columns([4, 1])
        dept = localised(row.department_zh, row.department_en)
        text.markdown(f"{hhmm(row.scheduled_at)} · **{plain(row.name)}** · {row.mrn} · {dept}")
        if button.button(tr("worklist.check_in"), key=f"check_in_{row.appointment_id}"):
            try:
                with session_scope() as db:
                    done = check_in_appointment(
                        session=db, actor=actor, appointment_id=row.appointment_id
                    )
                    number = done.queue_number
            except CheckInRefused as refusal:
                for problem in refusal.problems:
                    st.error(tr(problem))
                return
            st.session_state[FLASH] = tr("worklist.checked_in", name=row.name, number=number)
            st.rerun()


def _tables(work: Worklist) -> None:
    st.subheader(tr("worklist.awaiting_vitals"))
    if work.awaiting_vitals:
        rows = [
            {
                tr("worklist.col_queue"): r.queue_number,
                tr("worklist.col_name"): r.name,
                tr("worklist.col_mrn"): r.mrn,
                tr("worklist.col_checked_in"): hhmm(r.checked_in_at),
            }
            for r in work.awaiting_vitals
        ]
        st.dataframe(rows, hide_index=True)
    else:
        st.info(tr("worklist.none_awaiting"))
    st.subheader(tr("worklist.inpatients"))
    if work.inpatients:
        rows = [
            {
                tr("worklist.col_bed"): f"{localised(r.ward_zh, r.ward_en)} {r.bed}",
                tr("worklist.col_name"): r.name,
                tr("worklist.col_mrn"): r.mrn,
                tr("worklist.col_last_vitals"): when(r.last_vitals_at),
            }
            for r in work.inpatients
        ]
        st.dataframe(rows, hide_index=True)
    else:
        st.info(tr("worklist.no_inpatients"))


def _vitals_form(work: Worklist) -> None:
    st.subheader(tr("worklist.record_vitals"))
    patients = {r.patient_id: f"{r.name} · {r.mrn}" for r in work.awaiting_vitals}
    patients.update({r.patient_id: f"{r.name} · {r.mrn} · {r.bed}" for r in work.inpatients})
    if not patients:
        st.info(tr("worklist.no_patient"))
        return
    with st.form("vitals"):
        patient_id = st.selectbox(
            tr("worklist.patient"), list(patients), format_func=patients.get, key="vitals_patient"
        )
        columns = st.columns(3)
        values = {
            spec.field: columns[i % 3].number_input(
                tr(f"vitals.field_{spec.field}", unit=spec.unit),
                value=None,
                step=10.0**-spec.decimals,
                format=f"%.{spec.decimals}f",
                key=f"vitals_{spec.field}",
            )
            for i, spec in enumerate(VITALS)
        }
        submitted = st.form_submit_button(tr("worklist.save_vitals"), type="primary")
    if not submitted:
        return
    try:
        with session_scope() as db:
            saved = record_vitals(session=db, actor=actor, patient_id=patient_id, **values)
    except InvalidVitals as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    st.session_state[SAVED] = (patients[patient_id], saved)
    st.rerun()


def _show_saved() -> None:
    who, saved = st.session_state.pop(SAVED)
    st.success(tr("worklist.vitals_saved", who=who, count=len(saved)))
    for reading in saved:
        text = tr(
            "worklist.reading",
            name=tr(f"vitals.field_{reading.field}", unit=reading.unit),
            value=f"{reading.value:f}",
        )
        if reading.abnormal:
            st.warning(f"{text} · {tr(f'vitals.flag_{reading.flag}')}")
        else:
            st.markdown(f"- {text}")


def render() -> None:
    """The three lists and the vitals form, one worklist read per run."""
    with session_scope() as db:
        work = nurse_worklist(session=db, actor=actor, day=today)
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    if SAVED in st.session_state:
        _show_saved()
    cols = st.columns(3)
    cols[0].metric(tr("worklist.to_check_in"), len(work.to_check_in))
    cols[1].metric(tr("worklist.awaiting_vitals"), len(work.awaiting_vitals))
    cols[2].metric(tr("worklist.inpatients"), len(work.inpatients))
    _check_in(work)
    _tables(work)
    _vitals_form(work)


run_safely(render)
