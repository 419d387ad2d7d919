"""Data staff home: the de-identified headline figures their reports start from."""

import streamlit as st

from cims.clock import local_today
from cims.db import session_scope
from cims.reporting.service import headline
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import money
from ui.i18n import tr

actor = page_guard(Privilege.VIEW_ANALYTICS)
today = local_today()
with session_scope() as db:
    figures = headline(session=db, actor=actor, today=today, days=90)

st.title(tr("analyst.title"))
st.caption(tr("manager.period", days=90))
cols = st.columns(4)
cols[0].metric(tr("manager.patients"), f"{figures.patients:,}")
cols[1].metric(tr("manager.visits"), f"{figures.visits:,}")
cols[2].metric(tr("manager.admissions"), f"{figures.admissions:,}")
cols[3].metric(
    tr("manager.no_show_rate"),
    "—" if figures.no_show_rate is None else f"{figures.no_show_rate:.1%}",
)
st.metric(tr("manager.collections"), money(figures.collections))
st.info(tr("analyst.next_steps"))
