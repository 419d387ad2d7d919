"""Bed board: a ward's beds at a glance; admit, transfer and discharge with confirmation."""

import streamlit as st

from cims.db import session_scope
from cims.patients.search import search_patients
from cims.patients.service import get_patient
from cims.records.beds import (
    DISCHARGE_DISPOSITIONS,
    BedBoard,
    BedRefused,
    admit_patient,
    bed_board,
    discharge_patient,
    list_wards,
    transfer_bed,
)
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import localised, plain
from ui.i18n import tr

FLASH = "beds_flash"  # (kind, message) shown after the rerun that follows an action
PENDING = "beds_pending"  # ("transfer" | "discharge", encounter_id, value, label) to confirm

actor = page_guard(Privilege.MANAGE_BEDS)
st.title(tr("beds.title"))
DISPOSITION_LABELS = {d: tr(f"beds.disposition_{d}") for d in DISCHARGE_DISPOSITIONS}


def _act(action: str, **kwargs: object) -> None:
    """One service call; a refusal shows its messages, success reruns with a flash."""
    calls = {"admit": admit_patient, "transfer": transfer_bed, "discharge": discharge_patient}
    try:
        with session_scope() as db:
            calls[action](session=db, actor=actor, **kwargs)
    except BedRefused as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    st.session_state.pop(PENDING, None)
    st.session_state[FLASH] = tr(f"beds.done_{action}")
    st.rerun()


def _grid(board: BedBoard) -> None:
    columns = st.columns(4)
    for index, tile in enumerate(board.beds):
        with columns[index % 4].container(border=True):
            st.markdown(f"**{tr('beds.bed', code=tile.code)}**")
            who = tile.occupant
            if who is None:
                st.caption(tr(f"beds.status_{tile.status}"))
                continue
            st.markdown(f":material/bed: {plain(who.name)}  \n{who.mrn}")
            age = "?" if who.age is None else who.age
            st.caption(
                tr("beds.occupant", sex=tr(f"sex.{who.sex}"), age=age, days=who.days_in)
                + (f" · {who.attending}" if who.attending else "")
            )


def _admit(board: BedBoard, free: dict[int, str]) -> None:
    given = st.query_params.get("patient")
    mrn = ""
    if given and str(given).isdigit():
        with session_scope() as db:
            mrn = get_patient(session=db, actor=actor, patient_id=int(given)).mrn
    with st.form("beds_admit"):
        bed_id = st.selectbox(
            tr("beds.free_bed"), list(free), format_func=free.get, key="beds_free"
        )
        typed = st.text_input(tr("beds.patient_mrn"), value=mrn, key="beds_mrn")
        complaint = st.text_input(tr("beds.chief_complaint"), key="beds_complaint")
        submitted = st.form_submit_button(tr("beds.admit"), type="primary")
    if not submitted:
        return
    with session_scope() as db:
        hits = search_patients(session=db, actor=actor, query=typed.strip())
        hits = [h for h in hits if h.mrn == typed.strip()]
    if not hits:
        st.error(tr("beds.patient_not_found"))
        return
    attending = actor.user_id if "doctor" in actor.roles else None
    _act(
        "admit",
        patient_id=hits[0].patient_id,
        department_id=board.department_id,
        bed_id=bed_id,
        attending_id=attending,
        chief_complaint=complaint,
    )


def _occupied_actions(board: BedBoard, free: dict[int, str]) -> None:
    labels = {
        t.occupant.encounter_id: f"{tr('beds.bed', code=t.code)} · {t.occupant.name}"
        for t in board.beds
        if t.occupant is not None
    }
    encounter_id = st.selectbox(
        tr("beds.occupied_bed"), list(labels), format_func=labels.__getitem__, key="beds_occ"
    )
    left, right = st.columns(2)
    target = left.selectbox(
        tr("beds.transfer_to"), list(free), format_func=free.get, key="beds_target"
    )
    if left.button(tr("beds.transfer"), key="beds_transfer", disabled=target is None):
        label = tr("beds.confirm_transfer", who=labels[encounter_id], bed=free[target])
        st.session_state[PENDING] = ("transfer", encounter_id, target, label)
    disposition = right.selectbox(
        tr("beds.disposition"),
        list(DISPOSITION_LABELS),
        format_func=DISPOSITION_LABELS.get,
        key="beds_disposition",
    )
    if right.button(tr("beds.discharge"), key="beds_discharge"):
        label = tr(
            "beds.confirm_discharge", who=labels[encounter_id], how=DISPOSITION_LABELS[disposition]
        )
        st.session_state[PENDING] = ("discharge", encounter_id, disposition, label)


def _confirm() -> None:
    pending = st.session_state.get(PENDING)
    if pending is None:
        return
    action, encounter_id, value, label = pending
    st.warning(label)
    yes, no = st.columns(2)
    if no.button(tr("beds.cancel"), key="beds_cancel"):
        st.session_state.pop(PENDING, None)
        st.rerun()
    if yes.button(tr("beds.confirm"), key="beds_confirm", type="primary"):
        if action == "transfer":
            _act("transfer", encounter_id=encounter_id, bed_id=value)
        else:
            _act("discharge", encounter_id=encounter_id, disposition=value)


def render() -> None:
    """Ward picker, the grid of beds, then the actions."""
    with session_scope() as db:
        wards = list_wards(session=db, actor=actor)
    if not wards:
        st.info(tr("beds.no_wards"))
        return
    names = {w.ward_id: f"{localised(w.name_zh, w.name_en)} · {w.occupied}/{w.beds}" for w in wards}
    ward_id = st.selectbox(tr("beds.ward"), list(names), format_func=names.get, key="beds_ward")
    with session_scope() as db:
        board = bed_board(session=db, actor=actor, ward_id=ward_id)
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    _grid(board)
    free = {t.bed_id: tr("beds.bed", code=t.code) for t in board.beds if t.status == "free"}
    admit, manage = st.tabs([tr("beds.admit_tab"), tr("beds.manage_tab")])
    with admit:
        if free:
            _admit(board, free)
        else:
            st.info(tr("beds.ward_full"))
    with manage:
        if any(t.occupant for t in board.beds):
            _occupied_actions(board, free)
            _confirm()
        else:
            st.info(tr("beds.ward_empty"))


run_safely(render)
