"""Admin roles: the role → privilege matrix, edited in place (every change audited)."""

import pandas as pd
import streamlit as st

from cims.db import session_scope
from cims.security.rbac import Privilege
from cims.security.roles import privilege_matrix, set_grant
from ui.auth import page_guard
from ui.i18n import tr

actor = page_guard(Privilege.MANAGE_ROLES)
st.title(tr("roles.title"))
st.caption(tr("roles.help"))
with session_scope() as db:
    matrix = privilege_matrix(session=db, actor=actor)
roles = list(matrix)
table = pd.DataFrame(
    {tr(f"role.{r}"): [p.value in matrix[r] for p in Privilege] for r in roles},
    index=[tr(f"privilege.{p.value}") for p in Privilege],
)
edited = st.data_editor(table, use_container_width=True, height=38 + 35 * len(Privilege))
if st.button(tr("roles.save"), type="primary"):
    changes = 0
    try:
        with session_scope() as db:
            for i, privilege in enumerate(Privilege):
                for role in roles:
                    wanted = bool(edited.iloc[i][tr(f"role.{role}")])
                    if wanted != (privilege.value in matrix[role]):
                        set_grant(
                            session=db, actor=actor, role=role, privilege=privilege, granted=wanted
                        )
                        changes += 1
    except ValueError as problem:
        st.error(tr(str(problem)))
    else:
        st.success(tr("roles.saved", count=changes))
