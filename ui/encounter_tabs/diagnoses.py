"""Diagnoses tab: search ICD-10, add primary/secondary, void with a reason."""

from __future__ import annotations

import streamlit as st

from cims.db import session_scope
from cims.records.codes import search_codes
from cims.records.encounters import add_diagnosis, void_diagnosis
from cims.records.narrative import localise_name
from cims.security.rbac import Actor
from ui.encounter_tabs.common import act, current_view, labels, void_control
from ui.i18n import language, tr

RANKS = ("primary", "secondary")


def render(actor: Actor, patient_id: int, encounter_id: int) -> None:
    """The encounter's diagnoses and the coding form."""
    view = current_view(actor, encounter_id)
    lang = language()
    rank_labels = labels("encounter.rank_", RANKS)
    if view.diagnoses:
        st.dataframe(
            [
                {
                    tr("encounter.col_code"): d.code,
                    tr("encounter.col_description"): localise_name(d.description, lang),
                    tr("encounter.col_rank"): rank_labels[d.rank],
                }
                for d in view.diagnoses
            ],
            hide_index=True,
        )
    else:
        st.info(tr("encounter.no_diagnoses"))
    if view.encounter.status != "open":
        return
    _coding_form(actor, encounter_id, has_primary=any(d.rank == "primary" for d in view.diagnoses))

    def void(diagnosis_id: int, reason: str) -> None:
        with session_scope() as db:
            void_diagnosis(session=db, actor=actor, diagnosis_id=diagnosis_id, reason=reason)

    choices = {d.id: f"{d.code} {localise_name(d.description, lang)}" for d in view.diagnoses}
    void_control("void", choices, "void", void)


def _coding_form(actor: Actor, encounter_id: int, *, has_primary: bool) -> None:
    query = st.text_input(tr("encounter.code_search"), key="dx_query")
    if not query.strip():
        return
    with session_scope() as db:
        hits = search_codes(session=db, actor=actor, query=query)
    if not hits:
        st.info(tr("encounter.no_codes"))
        return
    lang = language()
    hit_labels = {hit.code: hit.label(lang) for hit in hits}
    code = st.selectbox(
        tr("encounter.code_choice"), list(hit_labels), format_func=hit_labels.__getitem__,
        key="dx_code",
    )  # fmt: skip
    rank_labels = labels("encounter.rank_", RANKS)
    # A new key once a primary exists: a keyed radio keeps its last value, so after the
    # primary was added it would still offer "primary" for the next one.
    rank = st.radio(
        tr("encounter.rank"), RANKS, index=1 if has_primary else 0,
        format_func=rank_labels.__getitem__, horizontal=True, key=f"dx_rank_{int(has_primary)}",
    )  # fmt: skip
    if st.button(tr("encounter.add_diagnosis"), type="primary", key="dx_add"):

        def add() -> None:
            with session_scope() as db:
                add_diagnosis(
                    session=db, actor=actor, encounter_id=encounter_id, code=code, rank=rank
                )

        act(add, "encounter.diagnosis_added")
