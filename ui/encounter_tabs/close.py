"""Close tab: end the encounter with its disposition."""

from __future__ import annotations

import streamlit as st

from cims.db import session_scope
from cims.records.encounters import close_encounter
from cims.records.models import DISPOSITIONS
from cims.security.rbac import Actor
from ui.encounter_tabs.common import act, current_view, labels
from ui.i18n import tr


def render(actor: Actor, patient_id: int, encounter_id: int) -> None:
    """The disposition form, or the closed encounter's outcome."""
    view = current_view(actor, encounter_id)
    names = labels("encounter.disposition_", DISPOSITIONS)
    if view.encounter.status != "open":
        disposition = names.get(view.encounter.disposition or "", "")
        st.info(tr("encounter.closed_banner", disposition=disposition))
        return
    disposition = st.selectbox(
        tr("encounter.disposition"), DISPOSITIONS, format_func=names.__getitem__,
        key="close_disposition",
    )  # fmt: skip
    if st.button(tr("encounter.close"), type="primary", key="close_go"):

        def close() -> None:
            with session_scope() as db:
                close_encounter(
                    session=db, actor=actor, encounter_id=encounter_id, disposition=disposition
                )

        act(close, "encounter.closed")
