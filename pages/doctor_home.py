"""Doctor's home: today's clinic and patients on the ward."""

import streamlit as st

from cims.appointments.service import list_my_clinic, status_counts
from cims.clock import local_today
from cims.db import session_scope
from cims.records.service import list_my_inpatients
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.i18n import tr
from ui.tables import appointment_table, inpatient_table, table_height

actor = page_guard(Privilege.VIEW_CLINICAL)
today = local_today()
with session_scope() as db:
    clinic = list_my_clinic(session=db, actor=actor, day=today)
    ward = list_my_inpatients(session=db, actor=actor, today=today)

st.title(tr("doctor.title", name=actor.display_name))
st.caption(tr("common.today", day=today.isoformat()))
counts = status_counts(clinic)
cols = st.columns(4)
cols[0].metric(tr("doctor.booked_today"), len(clinic))
cols[1].metric(tr("appointment.checked_in"), counts.get("checked_in", 0))
cols[2].metric(tr("appointment.seen"), counts.get("seen", 0))
cols[3].metric(tr("doctor.inpatients"), len(ward))

st.subheader(tr("doctor.clinic_today"))
if clinic:
    st.caption(tr("doctor.pick_patient"))
    picked = st.dataframe(
        appointment_table(clinic, with_doctor=False),
        hide_index=True,
        height=table_height(len(clinic)),
        on_select="rerun",
        selection_mode="single-row",
        key="clinic_table",
    )
    rows = picked.selection.rows if picked else []
    if rows:
        st.switch_page(
            "pages/patient_summary.py", query_params={"patient": str(clinic[rows[0]].patient_id)}
        )
else:
    st.info(tr("doctor.no_clinic"))

st.subheader(tr("doctor.ward"))
if ward:
    st.dataframe(inpatient_table(ward), hide_index=True)
else:
    st.info(tr("doctor.no_inpatients"))
