"""Admin security: the lockdown switch and the incident timeline."""

import streamlit as st

from cims.clock import to_local
from cims.db import session_scope
from cims.security.incidents import (
    lift_lockdown,
    list_incidents,
    lockdown_state,
    start_lockdown,
)
from cims.security.rbac import Privilege
from ui.auth import page_guard
from ui.format import when
from ui.i18n import tr

actor = page_guard(Privilege.MANAGE_INCIDENTS)
with session_scope() as db:
    state = lockdown_state(db)
    incidents = list_incidents(session=db, actor=actor)

st.title(tr("security.title"))
if state:
    st.error(tr("security.locked_down", reason=str(state.get("reason", ""))))
    note = st.text_input(tr("security.lift_note"))
    if st.button(tr("security.lift"), type="primary"):
        try:
            with session_scope() as db:
                lift_lockdown(session=db, actor=actor, note=note)
        except ValueError as problem:
            st.error(tr(str(problem)))
        else:
            st.rerun()
else:
    st.info(tr("security.normal"))
    with st.form("lockdown"):
        st.write(tr("security.lockdown_help"))
        reason = st.text_input(tr("security.reason"))
        confirm = st.checkbox(tr("security.confirm"))
        go = st.form_submit_button(tr("security.start"), type="primary")
    if go:
        if not reason.strip() or not confirm:
            st.error(tr("security.need_reason"))
        else:
            try:
                with session_scope() as db:
                    start_lockdown(session=db, actor=actor, reason=reason)
            except ValueError as problem:
                st.error(tr(str(problem)))
            else:
                st.rerun()  # our own session was revoked too: sign in again with MFA

st.subheader(tr("security.incidents"))
if not incidents:
    st.caption(tr("security.no_incidents"))
for incident, events in incidents:
    with st.expander(f"#{incident.id} · {incident.title} · {tr('incident.' + incident.status)}"):
        for event in events:
            st.write(
                f"{when(to_local(event.occurred_at))} — {tr('incident.' + event.kind)}"
                + (f" ({event.detail})" if event.detail else "")
            )
