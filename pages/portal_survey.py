"""Patient portal: rate a completed visit (1–5 ratings, 0–10 recommendation, a comment)."""

import streamlit as st

from cims.db import session_scope
from cims.engagement.errors import InvalidEngagement
from cims.engagement.surveys import list_visits_to_rate, submit_survey
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.errors import run_safely
from ui.format import localised
from ui.i18n import tr

FLASH = "portal_survey_flash"
RATINGS = ("waiting", "doctor", "environment", "billing")
actor = page_guard(Privilege.PORTAL_SELF)


def render() -> None:
    st.title(tr("survey.title"))
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    with session_scope() as db:
        visits = list_visits_to_rate(session=db, actor=actor)
    if not visits:
        st.info(tr("survey.none"))
        return
    labels = {
        tr(
            "survey.visit_label", date=f"{v.ended_at:%Y-%m-%d}",
            department=localised(v.department_zh, v.department_en),
        ): v.encounter_id
        for v in visits
    }  # fmt: skip
    with st.form("survey"):
        visit = st.selectbox(tr("survey.visit"), list(labels), key="survey_visit")
        scores = {
            name: st.slider(tr(f"survey.{name}"), 1, 5, 4, key=f"survey_{name}") for name in RATINGS
        }
        recommend = st.slider(tr("survey.recommend"), 0, 10, 8, key="survey_recommend")
        comment = st.text_area(tr("survey.comment"), key="survey_comment")
        submitted = st.form_submit_button(tr("survey.submit"), type="primary")
    if submitted:
        try:
            with session_scope() as db:
                submit_survey(
                    session=db, actor=actor, encounter_id=labels[str(visit)],
                    recommend=recommend, comment=comment, **scores,
                )  # fmt: skip
        except InvalidEngagement as refusal:
            for problem in refusal.problems:
                st.error(tr(problem))
        else:
            st.session_state[FLASH] = tr("survey.thanks")
            st.rerun()


run_safely(render)
