"""Pages through Streamlit's AppTest: signed-out visitors see only the sign-in; every role
signs in with the real form (password + TOTP) and lands on a home page with real data."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

import factories
from cims.security.crypto import load_cipher
from cims.security.models import User
from cims.security.rbac import ROLE_DEFAULTS, Privilege

ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))
TIMEOUT = 60


@pytest.fixture(scope="module")
def demo_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("pages", patients=300, seed=7) as url:
        yield url


def _totp(url: str, username: str) -> str:
    engine = create_engine(url)
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None and user.totp_secret_enc is not None
        secret = load_cipher(session).decrypt_text(
            user.totp_secret_enc, table="users", column="totp_secret", row_id=user.id
        )
        last_step = user.totp_last_step
    engine.dispose()
    return factories.fresh_totp(secret, last_step)


def _shows_only_sign_in(at: AppTest) -> None:
    assert not at.exception
    labels = [w.label for w in at.text_input]
    assert labels[:2] in (["用户名", "密码"], ["Username", "Password"])
    assert len(at.dataframe) == 0 and len(at.metric) == 0


def sign_in(url: str, username: str, password: str, language: str = "en") -> AppTest:
    """Drive the real sign-in form of app.py; returns the app on the user's home page."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["lang"] = language
    at.run()
    _shows_only_sign_in(at)
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    if any(w.key == "signin_code" for w in at.text_input):
        at.text_input(key="signin_code").input(_totp(url, username))
        at.button[0].click().run()
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGE_FILES)
def test_page_opened_signed_out_shows_only_the_sign_in(page: str, demo_url: str) -> None:
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT).run()
    _shows_only_sign_in(at)


def test_app_signed_out_shows_only_the_sign_in(demo_url: str) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    _shows_only_sign_in(at)
    assert "nav" not in str(at.sidebar).lower() or len(at.sidebar.button) == 0


def test_wrong_password_is_one_clear_message(demo_url: str) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["lang"] = "zh"
    at.run()
    at.text_input[0].input("doctor")
    at.text_input[1].input("not-the-password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["用户名或密码错误。"]
    _shows_only_sign_in(at)


def _metric(at: AppTest, label: str) -> str:
    for metric in at.metric:
        if metric.label == label:
            return str(metric.value)
    raise AssertionError(f"no metric {label!r} in {[m.label for m in at.metric]}")


def test_doctor_sees_todays_clinic(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    at = sign_in(demo_url, "doctor", DEMO_LOGINS["doctor"][0])
    assert at.title[0].value.startswith("Good day, Dr")
    assert int(_metric(at, "Booked today")) > 0
    assert len(at.dataframe[0].value) == int(_metric(at, "Booked today"))


def test_registrar_sees_todays_appointments(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    at = sign_in(demo_url, "registrar", DEMO_LOGINS["registrar"][0])
    assert at.title[0].value == "Today's appointments"
    assert len(at.dataframe[0].value) > 0


def test_finance_sees_todays_takings(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    at = sign_in(demo_url, "finance", DEMO_LOGINS["finance"][0])
    assert at.title[0].value == "Today's takings"
    assert _metric(at, "Hospital total today") != "¥0.00"
    assert len(at.dataframe[0].value) > 0


def test_manager_sees_headline_counts(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    at = sign_in(demo_url, "manager", DEMO_LOGINS["manager"][0])
    assert int(_metric(at, "Registered patients").replace(",", "")) >= 300
    assert int(_metric(at, "Visits").replace(",", "")) > 0
    assert len(at.dataframe) == 0  # aggregates only, no patient rows


def test_admin_sees_users(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    at = sign_in(demo_url, "admin", DEMO_LOGINS["admin"][0])
    usernames = set(at.dataframe[0].value["Username"])
    assert {"admin", "doctor", "nurse", "registrar", "finance", "manager", "analyst"} <= usernames


@pytest.mark.parametrize("username", ["nurse", "analyst", "patient"])
def test_other_roles_land_on_their_home(username: str, demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    titles = {"nurse": "Hello, ", "analyst": "Data desk", "patient": "Hello, "}
    at = sign_in(demo_url, username, DEMO_LOGINS[username][0])
    assert at.title[0].value.startswith(titles[username])
    assert len(at.metric) > 0 or len(at.dataframe) > 0


def test_chinese_home_page_has_no_missing_strings(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS

    at = sign_in(demo_url, "doctor", DEMO_LOGINS["doctor"][0], language="zh")
    assert "医生" in at.title[0].value
    texts = [m.label for m in at.metric] + [s.value for s in at.subheader]
    assert all("." not in text or " " in text for text in texts), texts


def test_a_session_revoked_on_the_server_is_refused(demo_url: str) -> None:
    # AppTest does not show the sidebar of an st.navigation app, so the sign-out button
    # itself is clicked in the browser journey; here the session row is revoked directly.
    from cims.base import utcnow
    from cims.demo.seed import DEMO_LOGINS
    from cims.security.models import AuthSession

    at = sign_in(demo_url, "finance", DEMO_LOGINS["finance"][0])
    engine = create_engine(demo_url)
    with Session(engine) as session:
        row = session.get(AuthSession, at.session_state["auth_session_id"])
        assert row is not None
        row.revoked_at = utcnow()
        session.commit()
    engine.dispose()
    at.run()
    _shows_only_sign_in(at)
    assert "Your session timed out or was ended. Please sign in again." in [
        i.value for i in at.info
    ]


def test_idle_session_is_signed_out(demo_url: str) -> None:
    from cims.base import utcnow
    from cims.demo.seed import DEMO_LOGINS
    from cims.security.models import AuthSession

    at = sign_in(demo_url, "registrar", DEMO_LOGINS["registrar"][0])
    engine = create_engine(demo_url)
    with Session(engine) as session:
        row = session.get(AuthSession, at.session_state["auth_session_id"])
        assert row is not None
        row.last_seen_at = utcnow() - dt.timedelta(hours=2)
        session.commit()
    engine.dispose()
    at.run()
    _shows_only_sign_in(at)


def _signed_in_page(url: str, username: str, page: str) -> AppTest:
    """Open a page file directly with a real server-side session for ``username``."""
    from cims.security import signin

    engine = create_engine(url)
    with Session(engine) as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        assert user_id is not None
        session_id, actor = signin.start_session(session=session, user_id=user_id)
        session.commit()
    engine.dispose()
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    at.session_state["lang"] = "en"
    at.session_state["actor"] = actor
    at.session_state["auth_session_id"] = session_id
    return at.run()


def test_every_page_as_every_role(demo_url: str) -> None:
    from cims.demo.seed import DEMO_LOGINS
    from ui.shell import PAGES

    for username, (_, role) in DEMO_LOGINS.items():
        for spec in PAGES:
            at = _signed_in_page(demo_url, username, spec.path)
            assert not at.exception, (username, spec.path, at.exception)
            denied = "Your role is not allowed to do this." in [e.value for e in at.error]
            # Refused exactly when the role lacks the privilege the page's guard names ...
            needed = _guard_privileges(spec.path)
            assert denied == (not needed <= ROLE_DEFAULTS[role]), (username, spec.path)
            # ... and the navigation never offers a page that would refuse.
            if role in spec.roles:
                assert not denied, (username, spec.path)
            if denied:
                assert len(at.dataframe) == 0 and len(at.metric) == 0


def _guard_privileges(page: str) -> set[Privilege]:
    """The privileges named in a page file's ``page_guard(...)`` call."""
    source = (ROOT / page).read_text("utf-8")
    call = re.search(r"page_guard\(([^)]*)\)", source)
    assert call is not None, f"{page} has no page_guard"
    return {Privilege[name] for name in re.findall(r"Privilege\.([A-Z_]+)", call.group(1))}


def test_admin_lockdown_signs_everyone_out(demo_url: str) -> None:
    at = _signed_in_page(demo_url, "admin", "pages/admin_security.py")
    assert at.title[0].value == "Security and incident response"
    at.text_input[0].input("drill: suspected credential leak")
    at.checkbox[0].check()
    at.button[0].click().run()
    _shows_only_sign_in(at)
    at = _signed_in_page(demo_url, "admin", "pages/admin_security.py")
    assert any("locked down" in e.value for e in at.error)
    at.button[0].click().run()  # lift it again
    assert "Normal operation: no lockdown in force." in [i.value for i in at.info]


def test_unexpected_errors_become_one_translated_message() -> None:
    def script() -> None:
        import streamlit as st

        from ui.errors import run_safely

        st.session_state["lang"] = "en"

        def boom() -> None:
            raise RuntimeError("internal detail 42")

        run_safely(boom)

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Something unexpected went wrong; nothing was changed.")
    assert "internal detail" not in at.error[0].value


def _new_user(url: str, role: str) -> tuple[str, int]:
    """A fresh staff account in the demo database (so lockouts do not touch demo logins)."""
    import factories

    engine = create_engine(url)
    with Session(engine) as session:
        user = factories.user(session, role)
        session.commit()
        result = (user.username, user.id)
    engine.dispose()
    return result


def _submit_password(at: AppTest, username: str, password: str) -> None:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()


def test_the_form_locks_after_repeated_failures_and_admin_unlock_reopens(demo_url: str) -> None:
    from cims.config import get_settings
    from cims.security import admin
    from cims.security.accounts import build_actor

    username, user_id = _new_user(demo_url, "nurse")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["lang"] = "en"
    at.run()
    for _ in range(get_settings().lockout_failures):
        _submit_password(at, username, "not-my-password")
    import factories

    _submit_password(at, username, factories.PASSWORD)
    assert [e.value for e in at.error][-1].startswith("Too many failed attempts")
    engine = create_engine(demo_url)
    with Session(engine) as session:
        boss = session.scalar(select(User).where(User.username == "admin"))
        assert boss is not None
        admin.unlock_account(session=session, actor=build_actor(session, boss), user_id=user_id)
        session.commit()
    engine.dispose()
    _submit_password(at, username, factories.PASSWORD)
    assert any(w.key == "signin_code" for w in at.text_input)  # on to the second factor


def test_a_recovery_code_signs_in_once(demo_url: str) -> None:
    import factories
    from cims.security import signin

    username, user_id = _new_user(demo_url, "registrar")
    engine = create_engine(demo_url)
    with Session(engine) as session:
        codes = signin.issue_recovery_codes(session=session, user_id=user_id)
        session.commit()
    engine.dispose()
    for attempt in ("first", "second"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        # Chinese: AppTest formats radio options outside the session (default language).
        at.session_state["lang"] = "zh"
        at.run()
        _submit_password(at, username, factories.PASSWORD)
        at.text_input(key="signin_code").input(codes[0])
        at.radio(key="signin_method").set_value("恢复码")
        at.button[0].click().run()
        if attempt == "first":
            at.run()
            assert at.title[0].value == "今日预约"
        else:
            assert "验证码不正确或已过期。" in [e.value for e in at.error]
