"""Plan & follow-ups tab: a treatment plan with goals and up to three dated follow-ups."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from cims.clock import local_today
from cims.db import session_scope
from cims.records.orders import create_treatment_plan
from cims.security.rbac import Actor
from ui.encounter_tabs.common import act, current_view
from ui.format import plain
from ui.i18n import tr

FOLLOW_UP_ROWS = 3


def render(actor: Actor, patient_id: int, encounter_id: int) -> None:
    """The encounter's plans with their follow-ups, and the plan form."""
    view = current_view(actor, encounter_id)
    for plan, follow_ups in view.plans:
        st.markdown(f"**{plain(plan.title)}** · {plan.start_date.isoformat()}")
        if plan.goals:
            st.caption(plain(plan.goals))
        for item in follow_ups:
            st.markdown(f"- {item.due_date.isoformat()} · {plain(item.description)}")
    if not view.plans:
        st.info(tr("encounter.no_plans"))
    if view.encounter.status != "open":
        return
    today = local_today()
    with st.form("plan_form", clear_on_submit=True):
        title = st.text_input(tr("encounter.plan_title"), key="plan_title")
        goals = st.text_area(tr("encounter.goals"), key="plan_goals")
        rows: list[tuple[dt.date, str]] = []
        for n in range(1, FOLLOW_UP_ROWS + 1):
            left, right = st.columns((1, 3))
            due = left.date_input(
                tr("encounter.follow_up_date", n=n),
                value=today + dt.timedelta(days=14 * n),
                key=f"plan_due_{n}",
            )
            text = right.text_input(tr("encounter.follow_up_text", n=n), key=f"plan_text_{n}")
            if text.strip() and isinstance(due, dt.date):
                rows.append((due, text))
        submitted = st.form_submit_button(tr("encounter.save_plan"), type="primary")
    if submitted:

        def save() -> None:
            with session_scope() as db:
                create_treatment_plan(
                    session=db, actor=actor, encounter_id=encounter_id, title=title,
                    goals=goals, follow_ups=rows, today=today,
                )  # fmt: skip

        act(save, "encounter.plan_saved")
