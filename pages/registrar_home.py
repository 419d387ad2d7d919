"""Registrar's home: today's appointments across the hospital, filterable by department."""

import streamlit as st

from cims.appointments.service import list_departments, list_front_desk_day, status_counts
from cims.clock import local_today
from cims.db import session_scope
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import localised
from ui.i18n import tr
from ui.tables import appointment_table, table_height

actor = page_guard(Privilege.CHECK_IN)
today = local_today()
st.title(tr("registrar.title"))
st.caption(tr("common.today", day=today.isoformat()))
with session_scope() as db:
    departments = {
        d.id: localised(d.name_zh, d.name_en) for d in list_departments(session=db, actor=actor)
    }
choice = st.selectbox(
    tr("registrar.department"),
    [None, *departments],
    format_func=lambda key: tr("registrar.all_departments") if key is None else departments[key],
)
with session_scope() as db:
    rows = list_front_desk_day(session=db, actor=actor, day=today, department_id=choice)

counts = status_counts(rows)
cols = st.columns(5)
for col, status in zip(cols, ("booked", "checked_in", "seen", "no_show", "cancelled"), strict=True):
    col.metric(tr(f"appointment.{status}"), counts.get(status, 0))
if rows:
    st.dataframe(
        appointment_table(rows, with_doctor=True), hide_index=True, height=table_height(len(rows))
    )
else:
    st.info(tr("registrar.none_today"))
