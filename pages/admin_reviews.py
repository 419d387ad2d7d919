"""Admin access review: certify or revoke every account's access, and review break-glass."""

import streamlit as st

from cims.config import get_settings
from cims.db import get_engine, session_scope
from cims.ops.scheduler import last_runs
from cims.security.care import list_break_glass_for_review, review_break_glass
from cims.security.rbac import Privilege
from cims.security.reviews import decide, open_review, start_access_review
from ui.auth import page_guard
from ui.format import plain, when
from ui.i18n import tr

actor = page_guard(Privilege.MANAGE_USERS, Privilege.VIEW_AUDIT)
st.title(tr("reviews.title"))

st.subheader(tr("reviews.break_glass"))
with session_scope() as db:
    grants = list_break_glass_for_review(session=db, actor=actor)
if not grants:
    st.caption(tr("reviews.no_break_glass"))
for grant, username in grants:
    with st.container(border=True):
        st.write(
            tr(
                "reviews.grant_line",
                user=username,
                patient=grant.patient_id,
                at=when(grant.granted_at),
            )
        )
        st.caption(plain(grant.reason))
        left, right = st.columns(2)
        verdict = None
        if left.button(tr("reviews.justified"), key=f"ok{grant.id}"):
            verdict = True
        if right.button(tr("reviews.unjustified"), key=f"bad{grant.id}"):
            verdict = False
        if verdict is not None:
            with session_scope() as db:
                review_break_glass(session=db, actor=actor, grant_id=grant.id, justified=verdict)
            st.rerun()

st.subheader(tr("reviews.access"))
with session_scope() as db:
    review, items = open_review(session=db, actor=actor)
if review is None:
    st.caption(tr("reviews.none_open"))
    if st.button(tr("reviews.start"), type="primary"):
        with session_scope() as db:
            start_access_review(session=db, actor=actor)
        st.rerun()
else:
    st.caption(tr("reviews.pending", count=len(items)))
    for item, username in items:
        cols = st.columns([3, 3, 2, 1, 1])
        cols[0].write(f"**{username}**")
        cols[1].write(", ".join(tr(f"role.{r}") for r in item.roles_snapshot))
        cols[2].write(when(item.last_login_at))
        if cols[3].button(tr("reviews.certify"), key=f"c{item.id}"):
            with session_scope() as db:
                decide(session=db, actor=actor, item_id=item.id, certify=True)
            st.rerun()
        if cols[4].button(tr("reviews.revoke"), key=f"r{item.id}"):
            with session_scope() as db:
                decide(session=db, actor=actor, item_id=item.id, certify=False)
            st.rerun()

st.subheader(tr("reviews.dormant"))
settings = get_settings()
last = last_runs(get_engine()).get("disable_dormant_accounts")
st.caption(
    tr("reviews.dormant_rule", days=settings.dormant_days, at=f"{settings.daily_jobs_at:%H:%M}")
)
if last is None:
    st.caption(tr("reviews.dormant_never"))
else:
    st.caption(
        tr(
            "reviews.dormant_last",
            at=when(last.finished_at or last.started_at),
            status=tr(f"jobs.status_{last.status}"),
            count=(last.detail or {}).get("disabled", 0),
        )
    )
