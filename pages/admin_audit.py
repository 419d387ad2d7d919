"""Admin audit log: who accessed which patient, with filters, and the chain's verification."""

import datetime as dt

import streamlit as st

from cims.clock import day_bounds, local_today, to_local
from cims.db import session_scope
from cims.security.audit_views import search_audit, verify_audit_chain
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.VIEW_AUDIT)
st.title(tr("audit.title"))

with st.container(border=True):
    st.subheader(tr("audit.integrity"))
    st.caption(tr("audit.integrity_help"))
    if st.button(tr("audit.verify_now")):
        with st.spinner(tr("audit.verifying")), session_scope() as db:
            result = verify_audit_chain(session=db, actor=actor)
        if result.ok:
            st.success(
                tr(
                    "audit.chain_ok",
                    rows=f"{result.rows_checked:,}",
                    anchors=result.anchors_checked,
                )
            )
        else:
            st.error(
                tr(
                    "audit.chain_broken",
                    seq=result.first_broken_seq,
                    audit_id=result.first_broken_audit_id,
                    reason=result.reason or "",
                )
            )
        for warning in result.warnings:
            st.warning(warning)

today = local_today()
cols = st.columns([3, 2, 2, 2, 2])
period = cols[0].date_input(
    tr("report.period"), value=(today - dt.timedelta(days=7), today), max_value=today
)
mrn = cols[1].text_input(tr("col.mrn"))
username = cols[2].text_input(tr("col.username"))
action = cols[3].text_input(tr("audit.action_prefix"), placeholder="records.")
denied_only = cols[4].checkbox(tr("audit.denied_only"))
first, last = (period[0], period[-1]) if isinstance(period, tuple) and period else (today, today)
with session_scope() as db:
    rows = search_audit(
        session=db,
        actor=actor,
        start=day_bounds(first)[0],
        end=day_bounds(last)[1],
        mrn=mrn or None,
        username=username or None,
        action_prefix=action or None,
        outcome="denied" if denied_only else None,
    )
st.caption(tr("audit.shown", count=len(rows)))
st.dataframe(
    [
        {
            tr("col.time"): when(to_local(r.occurred_at)),
            tr("col.username"): r.username or "—",
            tr("col.roles"): tr(f"role.{r.role}") if r.role else "—",
            tr("report.action"): r.action,
            tr("audit.outcome"): tr(f"outcome.{r.outcome}"),
            tr("col.mrn"): r.mrn or "—",
            tr("col.name"): r.patient_name or "—",
        }
        for r in rows
    ],
    hide_index=True,
)
