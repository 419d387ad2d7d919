"""Patient portal home: my upcoming appointments and my unpaid bills."""

import streamlit as st

from cims.base import utcnow
from cims.db import session_scope
from cims.engagement.consultation import count_my_unread_replies
from cims.engagement.reminders import count_unread_reminders
from cims.portal.service import portal_overview
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import localised, money, when
from ui.i18n import tr

actor = page_guard(Privilege.PORTAL_SELF)
with session_scope() as db:
    overview = portal_overview(session=db, actor=actor, now=utcnow())
    reminders_waiting = count_unread_reminders(session=db, actor=actor)
    replies_unread = count_my_unread_replies(session=db, actor=actor)

st.title(tr("patient.title", name=overview.patient_name))
st.caption(tr("patient.mrn", mrn=overview.mrn))
if reminders_waiting:
    st.info(
        tr("patient.reminders_waiting", count=reminders_waiting), icon=":material/notifications:"
    )
if replies_unread:
    st.info(tr("patient.messages_unread", count=replies_unread), icon=":material/forum:")
st.subheader(tr("patient.appointments"))
if overview.appointments:
    st.dataframe(
        [
            {
                tr("col.time"): when(a.scheduled_at),
                tr("col.department"): localised(a.department_zh, a.department_en),
                tr("col.doctor"): a.doctor_name or "—",
                tr("col.status"): tr(f"appointment.{a.status}"),
            }
            for a in overview.appointments
        ],
        hide_index=True,
    )
else:
    st.info(tr("patient.no_appointments"))
st.subheader(tr("patient.bills"))
if overview.open_invoices:
    total = sum(
        (i.balance for i in overview.open_invoices), start=overview.open_invoices[0].balance * 0
    )
    st.metric(tr("patient.balance"), money(total))
    st.dataframe(
        [
            {
                tr("col.invoice"): i.invoice_no,
                tr("col.issued"): when(i.issued_at),
                tr("col.due"): i.due_date.isoformat() if i.due_date else "—",
                tr("col.amount"): money(i.patient_amount),
                tr("col.balance"): money(i.balance),
            }
            for i in overview.open_invoices
        ],
        hide_index=True,
    )
else:
    st.success(tr("patient.no_bills"))
