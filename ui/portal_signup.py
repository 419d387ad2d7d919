"""On the sign-in screen: patients open their portal account or reset a forgotten password."""

from __future__ import annotations

import streamlit as st

from cims.db import session_scope
from cims.security.portal_accounts import (
    PortalAccountRefused,
    Ticket,
    finish_password_reset,
    finish_signup,
    start_password_reset,
    start_signup,
)
from ui.i18n import tr

SIGNUP, RESET = "portal_signup_ticket", "portal_reset_ticket"


def _show(refusal: PortalAccountRefused) -> None:
    for problem in refusal.problems:
        st.error(tr(problem))


def _signup() -> None:
    if SIGNUP not in st.session_state:
        with st.form("portal_signup_start"):
            mrn = st.text_input(tr("portal_signup.mrn"), key="signup_mrn")
            proof = st.text_input(tr("portal_signup.id_or_phone"), key="signup_proof")
            if st.form_submit_button(tr("portal_signup.send_code")):
                with session_scope() as db:
                    st.session_state[SIGNUP] = start_signup(session=db, mrn=mrn, id_or_phone=proof)
                st.rerun()
        return
    st.info(tr("portal_signup.code_sent"))
    ticket: Ticket | None = st.session_state[SIGNUP]
    with st.form("portal_signup_finish"):
        code = st.text_input(tr("portal_signup.code"), max_chars=6, key="signup_code")
        username = st.text_input(tr("portal_signup.username"), key="signup_username")
        password = st.text_input(tr("signin.password"), type="password", key="signup_password")
        done = st.form_submit_button(tr("portal_signup.open"), type="primary")
    if done:
        if ticket is None:
            st.error(tr("portal_signup.bad_code"))
            return
        try:
            with session_scope() as db:
                finish_signup(
                    session=db, ticket=ticket, code=code, username=username, password=password
                )
        except PortalAccountRefused as refusal:
            _show(refusal)
            return
        st.session_state.pop(SIGNUP)
        st.success(tr("portal_signup.opened"))


def _reset() -> None:
    if RESET not in st.session_state:
        with st.form("portal_reset_start"):
            username = st.text_input(tr("signin.username"), key="reset_username")
            mrn = st.text_input(tr("portal_signup.mrn"), key="reset_mrn")
            if st.form_submit_button(tr("portal_signup.send_code")):
                with session_scope() as db:
                    st.session_state[RESET] = start_password_reset(
                        session=db, username=username, mrn=mrn
                    )
                st.rerun()
        return
    st.info(tr("portal_signup.code_sent"))
    ticket: Ticket | None = st.session_state[RESET]
    with st.form("portal_reset_finish"):
        code = st.text_input(tr("portal_signup.code"), max_chars=6, key="reset_code")
        password = st.text_input(
            tr("portal_signup.new_password"), type="password", key="reset_password"
        )
        done = st.form_submit_button(tr("portal_signup.reset"), type="primary")
    if done:
        if ticket is None:
            st.error(tr("portal_signup.bad_code"))
            return
        try:
            with session_scope() as db:
                finish_password_reset(session=db, ticket=ticket, code=code, password=password)
        except PortalAccountRefused as refusal:
            _show(refusal)
            return
        st.session_state.pop(RESET)
        st.success(tr("portal_signup.reset_done"))


def render_patient_account_help() -> None:
    """Two folded sections under the sign-in form, for patients only."""
    with st.expander(tr("portal_signup.new_heading"), icon=":material/person_add:"):
        st.caption(tr("portal_signup.new_help"))
        _signup()
    with st.expander(tr("portal_signup.reset_heading"), icon=":material/lock_reset:"):
        st.caption(tr("portal_signup.reset_help"))
        _reset()
