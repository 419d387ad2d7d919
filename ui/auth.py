"""Sign-in form (password, then TOTP), the page guard and sign-out."""

from __future__ import annotations

import io
import uuid

import qrcode
import streamlit as st

from cims.config import get_settings
from cims.db import session_scope
from cims.security import otp_channel, signin
from cims.security.mfa import new_totp_secret, provisioning_uri
from cims.security.rbac import Actor, Privilege
from ui.i18n import language_switch, tr
from ui.portal_signup import render_patient_account_help

ACTOR = "actor"
SESSION_ID = "auth_session_id"
PENDING_USER = "pending_user_id"
PENDING_STAGE = "pending_stage"  # "totp" | "enrol"
PENDING_NAME = "pending_username"
ENROL_SECRET = "enrol_secret"  # noqa: S105 (a session-state key, not a secret)
FLASH = "signin_flash"
RECOVERY_CODES = "recovery_codes"
COOKIE = "cims_session"
COOKIE_OP = "cookie_op"  # wanted in the browser: ("set", (token, expiry)) or ("delete", None)


def current_actor() -> Actor | None:
    """The signed-in actor if the server-side session is still alive, else None.

    A fresh browser session (reload, new tab) resumes from the session cookie, but only
    while the server-side session row it names is alive.
    """
    actor = st.session_state.get(ACTOR)
    session_id = st.session_state.get(SESSION_ID)
    if not isinstance(actor, Actor) or not isinstance(session_id, uuid.UUID):
        token = st.context.cookies.get(COOKIE) if st.session_state.get(COOKIE_OP) is None else None
        if not token:
            return None
        with session_scope() as db:
            resumed = signin.resume_session(session=db, token=token)
        if resumed is None:
            st.session_state[COOKIE_OP] = ("delete", None)
            return None
        st.session_state[SESSION_ID], st.session_state[ACTOR] = resumed
        return resumed[1]
    with session_scope() as db:
        alive = signin.touch_session(session=db, session_id=session_id)
    if not alive:
        _forget()
        st.session_state[FLASH] = "signin.expired"
        return None
    return actor


def _forget() -> None:
    for key in (
        ACTOR,
        SESSION_ID,
        PENDING_USER,
        PENDING_NAME,
        PENDING_STAGE,
        ENROL_SECRET,
        RECOVERY_CODES,
    ):
        st.session_state.pop(key, None)


def page_guard(*privileges: Privilege) -> Actor:
    """First line of every page: sign-in unless signed in, refusal unless privileged."""
    actor = current_actor()
    if actor is None:
        render_sign_in()
        st.stop()
    for privilege in privileges:
        if not actor.can(privilege):
            st.error(tr("common.access_denied"))
            st.stop()
    return actor


def render_sign_in() -> None:
    """The sign-in screen: hospital name, language, then the current step's form."""
    _, middle, _ = st.columns([1, 2, 1])  # a narrow, centred form on wide screens
    with middle:
        language_switch()
        st.title(tr("app.title"))
        st.caption(tr("app.subtitle"))
        # Kept across reruns (the cookie component causes one) until the next attempt.
        flash = st.session_state.get(FLASH)
        if flash:
            st.info(tr(flash))
        stage = st.session_state.get(PENDING_STAGE)
        if stage == "totp":
            _totp_form()
        elif stage == "enrol":
            _enrol_form()
        elif stage == "codes":
            _show_recovery_codes()
        else:
            _password_form()
            render_patient_account_help()


def _password_form() -> None:
    with st.form("signin_password"):
        st.subheader(tr("signin.heading"))
        username = st.text_input(tr("signin.username"), key="signin_username")
        password = st.text_input(tr("signin.password"), type="password", key="signin_password")
        submitted = st.form_submit_button(tr("signin.submit"), type="primary")
    if not submitted:
        return
    st.session_state.pop(FLASH, None)
    if not username or not password:
        st.error(tr("signin.missing"))
        return
    with session_scope() as db:
        result = signin.check_password(session=db, username=username, password=password)
    if result.error:
        st.error(tr(result.error))
        return
    st.session_state[PENDING_USER] = result.user_id
    st.session_state[PENDING_NAME] = username.strip().lower()
    if result.needs_totp:
        st.session_state[PENDING_STAGE] = "totp"
    elif result.needs_enrolment:
        st.session_state[PENDING_STAGE] = "enrol"
        st.session_state[ENROL_SECRET] = new_totp_secret()
    else:
        _finish(result.user_id)
    st.rerun()


def _totp_form() -> None:
    methods = {
        "totp": signin.check_totp,
        "recovery": signin.use_recovery_code,
    }
    if otp_channel.channel() is not None:
        methods["message"] = signin.check_message_code
    with st.form("signin_totp"):
        st.subheader(tr("signin.totp_heading"))
        code = st.text_input(tr("signin.totp_code"), max_chars=16, key="signin_code")
        # Translated labels as the options themselves (a format_func would be re-run by
        # Streamlit outside this session's language).
        labels = {tr(f"signin.method_{m}"): m for m in methods}
        label = st.radio(tr("signin.method"), list(labels), key="signin_method", horizontal=True)
        method = labels.get(str(label), "totp")
        submitted = st.form_submit_button(tr("signin.verify"), type="primary")
    left, right = st.columns(2)
    if left.button(tr("signin.back")):
        _forget()
        st.rerun()
    user_id = st.session_state.get(PENDING_USER)
    if "message" in methods and right.button(tr("signin.send_message_code")):
        with session_scope() as db:
            sent = user_id is not None and otp_channel.send_code(session=db, user_id=user_id)
        st.info(tr("signin.message_code_sent" if sent else "signin.message_code_wait"))
    if not submitted:
        return
    check = methods[method]
    with session_scope() as db:
        ok = user_id is not None and check(session=db, user_id=user_id, code=code)
    if not ok:
        st.error(tr("signin.bad_code"))
        return
    _finish(user_id)
    st.rerun()


def _enrol_form() -> None:
    secret = st.session_state.get(ENROL_SECRET) or new_totp_secret()
    st.session_state[ENROL_SECRET] = secret
    st.subheader(tr("signin.enrol_heading"))
    st.write(tr("signin.enrol_help"))
    user_id = st.session_state.get(PENDING_USER)
    image = qrcode.make(provisioning_uri(secret, str(st.session_state.get(PENDING_NAME, ""))))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    st.image(buffer.getvalue(), width=220)
    st.code(secret, language=None)
    with st.form("signin_enrol"):
        code = st.text_input(tr("signin.totp_code"), max_chars=8, key="enrol_code")
        submitted = st.form_submit_button(tr("signin.verify"), type="primary")
    if not submitted:
        return
    with session_scope() as db:
        ok = user_id is not None and signin.enrol_totp(
            session=db, user_id=user_id, secret=secret, code=code
        )
        codes = signin.issue_recovery_codes(session=db, user_id=user_id) if ok and user_id else []
    if not ok:
        st.error(tr("signin.bad_code"))
        return
    st.session_state[RECOVERY_CODES] = codes
    st.session_state[PENDING_STAGE] = "codes"
    st.rerun()


def _show_recovery_codes() -> None:
    """Show the ten recovery codes once, then finish signing in."""
    st.subheader(tr("signin.codes_heading"))
    st.warning(tr("signin.codes_help"))
    st.code("\n".join(st.session_state.get(RECOVERY_CODES, [])), language=None)
    if st.button(tr("signin.codes_saved"), type="primary"):
        _finish(st.session_state.get(PENDING_USER))
        st.rerun()


def _finish(user_id: int | None) -> None:
    if user_id is None:
        return
    with session_scope() as db:
        session_id, actor = signin.start_session(session=db, user_id=user_id)
        expires = signin.session_expiry(session=db, session_id=session_id)
    _forget()
    st.session_state[ACTOR] = actor
    st.session_state[SESSION_ID] = session_id
    # Set on the next run: a rerun right away would cancel the cookie component.
    st.session_state[COOKIE_OP] = ("set", (signin.session_token(session_id, expires), expires))


def sign_out() -> None:
    """Revoke the server-side session and clear this browser session."""
    session_id = st.session_state.get(SESSION_ID)
    if isinstance(session_id, uuid.UUID):
        with session_scope() as db:
            signin.end_session(session=db, session_id=session_id)
    _forget()
    st.session_state[COOKIE_OP] = ("delete", None)
    st.session_state[FLASH] = "signin.signed_out"


def sync_cookie() -> None:
    """Keep the browser's session cookie as this session wants it (set, or expired).

    Rendered on every run, not once: the cookie component works in the browser after the
    run, and a rerun that dropped it from the page would cancel it before it acted.
    Repeating the same call with the same arguments does nothing new in the browser.
    """
    pending = st.session_state.get(COOKIE_OP)
    if not pending:
        return
    import extra_streamlit_components as stx

    manager = stx.CookieManager(key="cims_cookies")
    operation, payload = pending
    if operation == "set":
        token, expires = payload
        manager.set(
            COOKIE,
            token,
            expires_at=expires,
            same_site="strict",
            secure=get_settings().env == "production",  # production is served behind TLS
            key="cims_cookie_set",
        )
    else:
        # Overwrite with an already expired cookie: the manager's own delete only knows
        # cookies it has read back from the browser in an earlier run.
        manager.set(COOKIE, "", max_age=0, same_site="strict", key="cims_cookie_delete")
