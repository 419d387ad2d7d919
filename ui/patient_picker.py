"""One search box to pick a patient (MRN, ID, mobile, name, initials), shared by pages."""

from __future__ import annotations

import streamlit as st

from cims.db import session_scope
from cims.patients.search import SearchHit, search_patients
from cims.security.rbac import Actor
from ui.i18n import tr


def pick_patient(actor: Actor, key: str) -> SearchHit | None:
    """Search and choose a patient; remembers the choice for this page across reruns."""
    hits_key, chosen_key = f"{key}_hits", f"{key}_chosen"
    with st.form(f"{key}_form"):
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        query = left.text_input(tr("picker.query"), key=f"{key}_query")
        submitted = right.form_submit_button(tr("picker.search"), type="primary")
    if submitted:
        with session_scope() as db:
            st.session_state[hits_key] = search_patients(session=db, actor=actor, query=query)
        st.session_state.pop(chosen_key, None)
    hits: list[SearchHit] = st.session_state.get(hits_key) or []
    if submitted and not hits:
        st.info(tr("picker.none"))
    if not hits:
        return None
    labels = {
        f"{h.mrn} · {h.full_name} · {tr(f'sex.{h.sex}')} · {h.birth_date or '?'} · {h.phone}": h
        for h in hits
    }
    label = st.radio(tr("picker.choose"), list(labels), key=chosen_key)
    return labels.get(str(label))
