"""My account: change my password, new recovery codes; patients turn two-step sign-in on."""

import streamlit as st

from cims.db import session_scope
from cims.security import signin
from ui.auth import page_guard, sign_out
from ui.i18n import tr
from ui.two_step import two_step_section

actor = page_guard()
st.title(tr("account.title"))

with st.form("change_password", clear_on_submit=True):
    st.subheader(tr("account.change_password"))
    current = st.text_input(tr("account.current_password"), type="password")
    new = st.text_input(tr("account.new_password"), type="password")
    repeat = st.text_input(tr("account.repeat_password"), type="password")
    st.caption(tr("account.password_rules"))
    submitted = st.form_submit_button(tr("account.save_password"), type="primary")
if submitted:
    if new != repeat:
        st.error(tr("account.passwords_differ"))
    else:
        with session_scope() as db:
            problems = signin.change_password(
                session=db, user_id=actor.user_id, current=current, new=new
            )
        if problems:
            for problem in problems:
                st.error(tr(problem))
        else:
            sign_out()
            st.rerun()

if "patient" in actor.roles:
    two_step_section(actor)

if "patient" not in actor.roles:
    st.subheader(tr("account.recovery_codes"))
    st.write(tr("account.recovery_help"))
    if st.button(tr("account.new_codes")):
        with session_scope() as db:
            codes = signin.issue_recovery_codes(session=db, user_id=actor.user_id)
        st.warning(tr("signin.codes_help"))
        st.code("\n".join(codes), language=None)
