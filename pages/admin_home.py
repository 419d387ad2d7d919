"""Admin home: every account, its roles, MFA state and last sign-in."""

import streamlit as st

from cims.base import utcnow
from cims.clock import to_local
from cims.db import session_scope
from cims.security.admin import (
    list_accounts,
    reset_mfa,
    set_account_active,
    sign_out_everywhere,
    unlock_account,
)
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.MANAGE_USERS)
with session_scope() as db:
    accounts = list_accounts(session=db, actor=actor, now=utcnow())

st.title(tr("admin.title"))
staff = [a for a in accounts if a.kind == "staff"]
cols = st.columns(4)
cols[0].metric(tr("admin.staff_accounts"), len(staff))
cols[1].metric(tr("admin.portal_accounts"), len(accounts) - len(staff))
cols[2].metric(tr("admin.without_mfa"), sum(not a.mfa_enrolled for a in staff))
cols[3].metric(tr("admin.locked"), sum(a.locked for a in accounts))
st.dataframe(
    [
        {
            tr("col.username"): a.username,
            tr("col.name"): a.display_name,
            tr("col.roles"): ", ".join(tr(f"role.{r}") for r in a.roles),
            tr("col.mfa"): "✅" if a.mfa_enrolled else "—",
            tr("col.active"): "✅" if a.is_active else "⛔",
            tr("col.last_login"): when(to_local(a.last_login_at)),
        }
        for a in accounts
    ],
    hide_index=True,
)

st.subheader(tr("admin.actions"))
by_id = {a.user_id: a for a in accounts}
chosen = st.selectbox(
    tr("admin.choose_account"),
    list(by_id),
    format_func=lambda uid: f"{by_id[uid].username} — {by_id[uid].display_name}",
)
target = by_id[chosen]
cols = st.columns(4)
action = None
if cols[0].button(tr("admin.unlock"), disabled=not target.locked, use_container_width=True):
    action = unlock_account
if cols[1].button(tr("admin.reset_mfa"), disabled=target.kind != "staff", use_container_width=True):
    action = reset_mfa
if cols[2].button(tr("admin.sign_out_everywhere"), use_container_width=True):
    action = sign_out_everywhere
reason = cols[3].text_input(tr("admin.disable_reason"), key="disable_reason")
if cols[3].button(
    tr("admin.enable") if not target.is_active else tr("admin.disable"), use_container_width=True
):
    try:
        with session_scope() as db:
            set_account_active(
                session=db,
                actor=actor,
                user_id=target.user_id,
                active=not target.is_active,
                reason=reason,
            )
    except ValueError as problem:
        st.error(tr(str(problem)))
    else:
        st.rerun()
if action is not None:
    with session_scope() as db:
        action(session=db, actor=actor, user_id=target.user_id)
    st.success(tr("admin.done", username=target.username))
