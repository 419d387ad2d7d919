"""Duplicate review: merge likely duplicate pairs, undo a merge, identify an emergency patient."""

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from cims.db import session_scope
from cims.patients.duplicates import identify_unidentified, merge_patients, undo_merge
from cims.patients.review import (
    DuplicatePair,
    InvalidDecision,
    list_duplicate_pairs,
    list_recent_merges,
    list_unidentified,
    mark_not_duplicate,
)
from cims.patients.schemas import InvalidPatient
from cims.patients.search import search_patients
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import when
from ui.i18n import tr

FLASH = "patient_dups_flash"  # success message shown after the rerun an action triggers
MATCHES = "patient_dups_matches"
# Cleared after every action, so a confirmation never carries over to the next pair.
ONE_SHOT = (
    "dups_reason",
    "dups_confirm",
    "dups_undo_confirm",
    "dups_undo_reason",
    "dups_identify_confirm",
)

actor = page_guard(Privilege.MERGE_PATIENTS)
st.title(tr("patient_dups.title"))


def act(action: Callable[..., Any], done_key: str, **kwargs: Any) -> None:
    """One service call; refusals become translated messages, success a flash and a rerun."""
    try:
        with session_scope() as db:
            action(session=db, actor=actor, **kwargs)
    except InvalidPatient as refusal:
        for problem in refusal.problems:
            st.error(tr(problem))
        return
    except InvalidDecision as refusal:
        st.error(tr(refusal.key))
        return
    st.session_state[FLASH] = tr(done_key)  # its presence also clears ONE_SHOT on rerun
    st.rerun()


def pick(label_key: str, labels: dict[int, str], key: str) -> int:
    """A selectbox over ids showing pre-translated labels (format_func runs outside tr)."""
    return int(st.selectbox(tr(label_key), list(labels), format_func=labels.__getitem__, key=key))


def confirmed(pressed: bool, ticked: bool) -> bool:
    """A pressed button counts only with its confirmation ticked."""
    if pressed and not ticked:
        st.warning(tr("patient_dups.tick_to_confirm"))
    return pressed and ticked


def side_by_side(pair: DuplicatePair) -> None:
    """The two records of a pair as one table (masked), fields down the side."""
    rows = {
        "patient_field.mrn": (pair.first.mrn, pair.second.mrn),
        "patient_field.full_name": (pair.first.full_name, pair.second.full_name),
        "patient_field.sex": (tr(f"sex.{pair.first.sex}"), tr(f"sex.{pair.second.sex}")),
        "patient_field.birth_date": (str(pair.first.birth_date), str(pair.second.birth_date)),
        "patient_field.national_id": (pair.first.national_id, pair.second.national_id),
        "patient_field.mobile": (pair.first.phone or "—", pair.second.phone or "—"),
        "patient_dups.registered": (
            when(pair.first.registered_at),
            when(pair.second.registered_at),
        ),
        "patient_dups.encounters": (str(pair.first.encounters), str(pair.second.encounters)),
    }
    st.table(
        pd.DataFrame(
            [[tr(key), *values] for key, values in rows.items()], columns=["", "A", "B"]
        ).set_index("")
    )


def queue() -> None:
    st.subheader(tr("patient_dups.queue"))
    with session_scope() as db:
        pairs = list_duplicate_pairs(session=db, actor=actor)
    if not pairs:
        st.info(tr("patient_dups.queue_empty"))
        return
    sep = tr("patient_dups.separator")
    labels = {
        i: f"{p.first.full_name} {p.first.mrn} ↔ {p.second.full_name} {p.second.mrn} · "
        f"{p.score:.0%} · " + sep.join(tr(f"duplicate_reason.{r}") for r in p.reasons)
        for i, p in enumerate(pairs)
    }
    pair = pairs[pick("patient_dups.choose_pair", labels, "dups_pair")]
    side_by_side(pair)
    survivors = {
        pair.first.patient_id: f"A · {pair.first.mrn} {pair.first.full_name}",
        pair.second.patient_id: f"B · {pair.second.mrn} {pair.second.full_name}",
    }
    with st.form("dups_merge"):
        survivor = st.radio(
            tr("patient_dups.survivor"),
            list(survivors),
            format_func=survivors.__getitem__,
            key="dups_survivor",
        )
        reason = st.text_input(tr("patient_dups.reason"), key="dups_reason")
        ticked = st.checkbox(tr("patient_dups.confirm_merge"), key="dups_confirm")
        merge = st.form_submit_button(tr("patient_dups.merge"), type="primary")
    if confirmed(merge, ticked):
        [merged] = {pair.first.patient_id, pair.second.patient_id} - {survivor}
        act(
            merge_patients,
            "patient_dups.merged",
            survivor_id=survivor,
            merged_id=merged,
            reason=reason,
        )
    st.caption(tr("patient_dups.distinct_help"))
    if st.button(tr("patient_dups.distinct"), icon=":material/call_split:", key="dups_distinct"):
        act(
            mark_not_duplicate,
            "patient_dups.distinct_done",
            first_id=pair.first.patient_id,
            second_id=pair.second.patient_id,
            reason=st.session_state.get("dups_reason", ""),
        )


def recent_merges() -> None:
    st.subheader(tr("patient_dups.recent"))
    with session_scope() as db:
        merges = list_recent_merges(session=db, actor=actor)
    if not merges:
        st.info(tr("patient_dups.no_merges"))
        return
    st.dataframe(
        pd.DataFrame(
            {
                tr("patient_dups.col_when"): [when(m.merged_at) for m in merges],
                tr("patient_dups.col_kept"): [
                    f"{m.survivor_mrn} {m.survivor_name}" for m in merges
                ],
                tr("patient_dups.col_merged"): [f"{m.merged_mrn} {m.merged_name}" for m in merges],
                tr("patient_dups.col_by"): [m.merged_by for m in merges],
                tr("patient_dups.reason"): [m.reason for m in merges],
                tr("patient_dups.col_undone"): [when(m.undone_at) for m in merges],
            }
        ),
        hide_index=True,
    )
    undoable = {
        m.merge_id: f"{m.merged_mrn} → {m.survivor_mrn}" for m in merges if m.undone_at is None
    }
    if not undoable:
        return
    with st.form("dups_undo"):
        merge_id = pick("patient_dups.undo_choose", undoable, "dups_undo_choice")
        why = st.text_input(tr("patient_dups.undo_reason"), key="dups_undo_reason")
        ticked = st.checkbox(tr("patient_dups.confirm_undo"), key="dups_undo_confirm")
        undo = st.form_submit_button(tr("patient_dups.undo"))
    if confirmed(undo, ticked):
        act(undo_merge, "patient_dups.undone", merge_id=merge_id, reason=why)


def identify() -> None:
    st.subheader(tr("patient_dups.identify"))
    with session_scope() as db:
        unknown = list_unidentified(session=db, actor=actor)
    if not unknown:
        st.info(tr("patient_dups.no_unidentified"))
        return
    temporary = {u.patient_id: f"{u.temporary_label} · {when(u.registered_at)}" for u in unknown}
    temporary_id = pick("patient_dups.temporary", temporary, "dups_unknown")
    with st.form("dups_find"):
        query = st.text_input(tr("patient_dups.find_real"), key="dups_identify_query")
        if st.form_submit_button(tr("patient_search.submit")):
            with session_scope() as db:
                hits = search_patients(session=db, actor=actor, query=query)
            st.session_state[MATCHES] = {
                h.patient_id: f"{h.mrn} {h.full_name} {h.birth_date or ''}"
                for h in hits
                if h.patient_id not in temporary
            }
    matches: dict[int, str] = st.session_state.get(MATCHES, {})
    if not matches:
        return
    with st.form("dups_identify"):
        real_id = pick("patient_dups.real", matches, "dups_identify_match")
        ticked = st.checkbox(tr("patient_dups.confirm_identify"), key="dups_identify_confirm")
        submitted = st.form_submit_button(tr("patient_dups.identify_submit"), type="primary")
    if confirmed(submitted, ticked):
        st.session_state.pop(MATCHES, None)
        act(
            identify_unidentified,
            "patient_dups.identified",
            temporary_id=temporary_id,
            patient_id=real_id,
        )


def render() -> None:
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
        for key in ONE_SHOT:
            st.session_state.pop(key, None)
    queue()
    recent_merges()
    identify()


run_safely(render)
