"""Admin home: every account, its roles, MFA state and last sign-in."""

import streamlit as st

from cims.base import utcnow
from cims.clock import to_local
from cims.db import session_scope
from cims.security.admin import list_accounts
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
