"""A patient turns the optional two-step sign-in (authenticator app) on or off."""

from __future__ import annotations

import io

import qrcode
import streamlit as st
from sqlalchemy import select

from cims.db import session_scope
from cims.security import signin
from cims.security.mfa import new_totp_secret, provisioning_uri
from cims.security.models import User
from cims.security.rbac import Actor
from ui.i18n import tr

SECRET = "two_step_secret"  # noqa: S105 (a session-state key, not a secret)


def two_step_section(actor: Actor) -> None:
    """Staff always have it; for patients it is their choice."""
    st.subheader(tr("two_step.heading"))
    with session_scope() as db:
        enrolled = db.scalar(select(User.mfa_enrolled_at).where(User.id == actor.user_id))
    if enrolled is not None:
        st.success(tr("two_step.on"))
        with st.form("two_step_off"):
            password = st.text_input(tr("account.current_password"), type="password")
            if st.form_submit_button(tr("two_step.turn_off")):
                with session_scope() as db:
                    done = signin.turn_off_own_totp(
                        session=db, user_id=actor.user_id, password=password
                    )
                st.session_state["two_step_flash"] = "two_step.off_done" if done else None
                if done:
                    st.rerun()
                st.error(tr("password.current_wrong"))
        return
    st.write(tr("two_step.help"))
    if flash := st.session_state.pop("two_step_flash", None):
        st.info(tr(flash))
    if SECRET not in st.session_state:
        if st.button(tr("two_step.turn_on"), icon=":material/phonelink_lock:"):
            st.session_state[SECRET] = new_totp_secret()
            st.rerun()
        return
    secret = str(st.session_state[SECRET])
    image = qrcode.make(provisioning_uri(secret, actor.username))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    st.image(buffer.getvalue(), width=200)
    st.code(secret, language=None)
    with st.form("two_step_on"):
        code = st.text_input(tr("signin.totp_code"), max_chars=8, key="two_step_code")
        confirmed = st.form_submit_button(tr("signin.verify"), type="primary")
    if confirmed:
        with session_scope() as db:
            ok = signin.enrol_totp(session=db, user_id=actor.user_id, secret=secret, code=code)
        if not ok:
            st.error(tr("signin.bad_code"))
            return
        st.session_state.pop(SECRET)
        st.rerun()
