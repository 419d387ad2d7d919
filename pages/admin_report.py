"""Admin security report for a chosen period (the quarterly security audit)."""

import datetime as dt

import streamlit as st

from cims.clock import day_bounds, local_today
from cims.db import session_scope
from cims.security.rbac import Privilege
from cims.security.reviews import security_report
from ui.auth import page_guard
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.VIEW_AUDIT)
st.title(tr("report.title"))
today = local_today()
chosen = st.date_input(
    tr("report.period"), value=(today - dt.timedelta(days=90), today), max_value=today
)
first, last = (chosen[0], chosen[-1]) if isinstance(chosen, tuple) and chosen else (today, today)
with session_scope() as db:
    report = security_report(
        session=db, actor=actor, start=day_bounds(first)[0], end=day_bounds(last)[1]
    )

cols = st.columns(5)
cols[0].metric(tr("report.failed_sign_ins"), report.failed_sign_ins)
cols[1].metric(tr("report.lockouts"), report.lockouts)
cols[2].metric(tr("report.break_glass"), report.break_glass_uses)
cols[3].metric(tr("report.unreviewed"), report.break_glass_unreviewed)
cols[4].metric(tr("report.denied"), report.denied_actions)

left, right = st.columns(2)
with left:
    st.subheader(tr("report.failed_by_user"))
    st.dataframe(
        [{tr("col.username"): u, tr("report.count"): n} for u, n in report.failed_by_username],
        hide_index=True,
    )
    st.subheader(tr("report.risky_accounts"))
    st.write(tr("report.without_mfa", names=", ".join(report.staff_without_mfa) or "—"))
    st.write(tr("report.dormant", names=", ".join(report.dormant_accounts) or "—"))
    st.write(
        tr(
            "report.over_privileged",
            names=", ".join(f"{u} ({'+'.join(r)})" for u, r in report.over_privileged) or "—",
        )
    )
with right:
    st.subheader(tr("report.privilege_changes"))
    st.dataframe(
        [
            {tr("col.time"): when(at), tr("col.username"): who, tr("report.action"): action}
            for at, who, action in report.privilege_changes
        ],
        hide_index=True,
    )
