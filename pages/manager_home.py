"""Manager's home: hospital-wide headline figures (aggregates only)."""

import streamlit as st

from cims.clock import local_today
from cims.db import session_scope
from cims.reporting.service import change_ratio, headline
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import money, percent_change
from ui.i18n import tr

actor = page_guard(Privilege.VIEW_ANALYTICS)
today = local_today()
with session_scope() as db:
    figures = headline(session=db, actor=actor, today=today)

st.title(tr("manager.title"))
st.caption(tr("manager.period", days=30))
row1 = st.columns(4)
row1[0].metric(tr("manager.patients"), f"{figures.patients:,}")
row1[1].metric(
    tr("manager.visits"),
    f"{figures.visits:,}",
    percent_change(change_ratio(figures.visits, figures.visits_previous)),
)
row1[2].metric(
    tr("manager.admissions"),
    f"{figures.admissions:,}",
    percent_change(change_ratio(figures.admissions, figures.admissions_previous)),
)
row1[3].metric(tr("manager.inpatients_now"), f"{figures.inpatients_now:,}")
row2 = st.columns(4)
row2[0].metric(
    tr("manager.collections"),
    money(figures.collections),
    percent_change(change_ratio(figures.collections, figures.collections_previous)),
)
row2[1].metric(tr("manager.outstanding"), money(figures.outstanding))
row2[2].metric(tr("manager.appointments_today"), f"{figures.appointments_today:,}")
row2[3].metric(
    tr("manager.no_show_rate"),
    "—" if figures.no_show_rate is None else f"{figures.no_show_rate:.1%}",
)
st.caption(tr("manager.deidentified"))
