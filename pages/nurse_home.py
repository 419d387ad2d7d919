"""Nurse's home: today's arrivals in my department and the ward census."""

import streamlit as st

from cims.appointments.service import list_front_desk_day, status_counts
from cims.clock import local_today
from cims.db import session_scope
from cims.records.service import list_my_inpatients
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.i18n import tr
from ui.tables import appointment_table, inpatient_table

actor = page_guard(Privilege.CHECK_IN, Privilege.VIEW_CLINICAL)
today = local_today()
department = actor.department_ids[0] if actor.department_ids else None
with session_scope() as db:
    arrivals = list_front_desk_day(session=db, actor=actor, day=today, department_id=department)
    ward = list_my_inpatients(session=db, actor=actor, today=today)

st.title(tr("nurse.title", name=actor.display_name))
st.caption(tr("common.today", day=today.isoformat()))
counts = status_counts(arrivals)
cols = st.columns(3)
cols[0].metric(tr("nurse.expected"), counts.get("booked", 0))
cols[1].metric(tr("nurse.waiting"), counts.get("checked_in", 0))
cols[2].metric(tr("doctor.inpatients"), len(ward))

st.subheader(tr("nurse.census"))
if ward:
    st.dataframe(inpatient_table(ward), hide_index=True)
else:
    st.info(tr("doctor.no_inpatients"))

st.subheader(tr("nurse.arrivals"))
if arrivals:
    st.dataframe(appointment_table(arrivals, with_doctor=True), hide_index=True)
else:
    st.info(tr("registrar.none_today"))
